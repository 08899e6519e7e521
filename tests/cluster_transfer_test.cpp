// State transfer between real tuttid processes: a new node joins a running cluster by snapshot,
// a node that was down comes back by incremental transfer, a donor or a joiner dies mid-way, and
// every node is killed at once; each ends with every node holding the same content.
#include "cluster.hpp"
#include "core/transfer.hpp"

namespace {

// The log a snapshot is needed past: 1 MiB of write-sets.
const std::vector<std::string> kSmallLog{"--wscache-size", "1"};

// Every sync of the process waits this long: a joiner whose transfer takes seconds.
std::vector<std::string> slow_disk(int ms) {
  return {"/usr/bin/env", std::string("LD_PRELOAD=") + SLOW_SYNC_LIB,
          "TUTTI_TEST_SYNC_DELAY_MS=" + std::to_string(ms),
          "ASAN_OPTIONS=verify_asan_link_order=0"};
}

void start_writers(Cluster& c, Writer& w, std::vector<std::thread>& threads,
                   const std::vector<size_t>& through) {
  for (size_t i : through)
    threads.emplace_back([&, i] {
      w.run(core::parse_host_port(c.nodes[i].client_addr()), "w" + std::to_string(i) + "/");
    });
}

}  // namespace

TEST_CASE("transfer: an empty node joins a running cluster by snapshot while writes go on") {
  Cluster c(3, kSmallLog);
  c.load(0, 200, 64 << 10);  // 12.5 MiB: far past the 1 MiB log
  Writer w;
  std::vector<std::thread> threads;
  StopAndJoin join{w, threads};
  start_writers(c, w, threads, {0, 1});
  c.wait_until([&] { return w.count() > 500; }, "writes flowing");
  const size_t j = c.add(kSmallLog);
  c.wait_until([&] { return c.primary_size(j) == 4 && c.state(j) == "SYNCED"; },
               "n4 SYNCED in a primary view of 4", std::chrono::seconds(60));
  const size_t at_sync = w.count();
  c.wait_until([&] { return w.count() > at_sync + 200; }, "writes after the join");
  w.stop = true;
  for (auto& t : threads) t.join();
  CHECK(c.log_has(j, "streams a snapshot"));
  CHECK(c.log_has(j, "installed"));
  CHECK(c.log_has(j, "state transfer done"));
  // It counted for nothing until it caught up, and says so in gcs-tool.
  auto m = c.members(0);
  bool listed = false;
  for (auto& e : m["members"])
    if (e["name"] == "n4") listed = e["state"] == "SYNCED";
  CHECK(listed);
  CHECK(w.surprises == 0);
  check_converged(c, {0, 1, 2, j});
  check_acked_present(c, j, w);
  CHECK(c.cli(j, {"get", "bulk/199"}).code == 0);
}

TEST_CASE("transfer: a node that missed 1,000 writes comes back by incremental transfer") {
  Cluster c(3);
  c.nodes[2].process.kill9();
  c.wait_until([&] { return c.primary_size(0) == 2; }, "n1 and n2 go on");
  c.load(0, 1000, 100, "missed/");
  c.nodes[2].start();
  c.wait_until([&] { return c.primary_size(2) == 3 && c.state(2) == "SYNCED"; },
               "n3 back and SYNCED", std::chrono::seconds(30));
  CHECK(c.log_has(2, "from its log"));
  CHECK(!c.log_has(2, "streams a snapshot"));
  check_converged(c, {0, 1, 2});
  CHECK(c.cli(2, {"get", "--local", "missed/999"}).out == std::string(100, 'x') + "\n");
}

TEST_CASE(
    "transfer: the donor is killed mid-transfer - the joiner turns to another, keeping what it "
    "staged") {
  Cluster c(3, kSmallLog);
  c.load(0, 400, 64 << 10);  // 25 MiB
  // A slow disk makes the joiner's transfer take seconds: each staged chunk waits for it.
  const size_t j = c.add(kSmallLog, slow_disk(400));
  c.wait_until(
      [&] {
        auto s = c.status(j);
        return !s.empty() && s["transfer"].is_object() &&
               s["transfer"]["done"].get<uint64_t>() >= 8'000'000;
      },
      "the snapshot under way", std::chrono::seconds(30));
  size_t donor = 0;
  for (size_t i = 0; i < 3; ++i)
    if (c.log_has(i, "donor: snapshot")) donor = i;
  REQUIRE(c.log_has(donor, "donor: snapshot"));
  c.nodes[donor].process.kill9();
  std::vector<size_t> rest;
  for (size_t i = 0; i < 3; ++i)
    if (i != donor) rest.push_back(i);
  c.wait_until([&] { return c.state(j) == "SYNCED"; }, "the joiner SYNCED through another donor",
               std::chrono::seconds(90));
  CHECK(c.log_has(j, "failed"));
  // What it had staged stayed: the other donor sent again only what changed in it.
  INFO(c.nodes[j].log_text());
  CHECK(c.log_has(j, "is kept: the next snapshot sends again only what changed"));
  CHECK(c.log_has(j, "comes again only where it changed"));
  rest.push_back(j);
  check_converged(c, rest);
  CHECK(c.cli(j, {"get", "--local", "bulk/399"}).code == 0);
}

TEST_CASE(
    "transfer: the joiner is killed mid-transfer - the cluster never notices, it resumes the "
    "snapshot where it stopped") {
  Cluster c(3, kSmallLog);
  c.load(0, 400, 64 << 10);
  const size_t j = c.add(kSmallLog, slow_disk(400));
  // Four 4 MiB chunks received: the first is staged on the joiner's disk (one write at a time,
  // and at most kMaxPendingWrites more received).
  static_assert(tutti::core::kMaxPendingWrites == 2);
  c.wait_until(
      [&] {
        auto s = c.status(j);
        return !s.empty() && s["transfer"].is_object() &&
               s["transfer"]["done"].get<uint64_t>() >= 16'000'000;
      },
      "the snapshot under way", std::chrono::seconds(30));
  c.nodes[j].process.kill9();
  // A learner has no vote: the three that hold the state are still all of the voters.
  CHECK(c.cli(1, {"put", "while-the-joiner-is-dead", "1"}).code == 0);
  c.nodes[j].wrapper.clear();
  c.nodes[j].start();
  // A killed joiner serves nothing partial: until it has the whole snapshot it holds none of
  // the state and refuses (exit 3, unavailable), and then it serves the snapshot's.
  auto local = c.cli(j, {"get", "--local", "bulk/0"});
  CHECK((local.code == 0 || local.code == 3));
  if (local.code == 3) CHECK_THAT(local.err, Catch::Contains("holds none of the cluster's state"));
  c.wait_until([&] { return c.primary_size(j) == 4 && c.state(j) == "SYNCED"; },
               "the joiner SYNCED after its restart", std::chrono::seconds(60));
  check_converged(c, {0, 1, 2, j});
  CHECK(c.cli(j, {"get", "while-the-joiner-is-dead"}).out == "1\n");
  // It went on in the donor's session, from what it had staged: one snapshot in all.
  const std::string log = c.nodes[j].log_text();
  INFO(log);
  CHECK(log.find("resuming the snapshot at seqno") != std::string::npos);
  size_t streams = 0;
  for (size_t at = 0; (at = log.find("streams a snapshot", at)) != std::string::npos; ++at)
    ++streams;
  CHECK(streams == 1);
}

TEST_CASE(
    "transfer: a joiner past its backlog bound is evicted at once - the writes never stop - and "
    "comes back, also after a kill -9 outside the view") {
  Cluster c(3, kSmallLog);
  // Past the 1 MiB log: a snapshot of 7 chunks, each written in 400 ms or more below, while the
  // writes pass the joiner's bound (1,000 write-sets) several times over. (A disk much slower
  // than that could not even persist the joiner's promise within the install timeout.)
  c.load(0, 400, 64 << 10);
  Writer w;
  std::vector<std::thread> threads;
  StopAndJoin join{w, threads};
  start_writers(c, w, threads, {0, 1, 2});
  c.wait_until([&] { return w.count() > 500; }, "writes flowing");
  const size_t j = c.add({"--wscache-size", "1", "--joiner-backlog", "1000"}, slow_disk(400));
  // The longest time without an acknowledged write, from the join to the eviction and a second
  // after it: a pause for the joiner would last --max-flow-pause (5 s).
  Clock::duration longest{};
  auto sample = [&] {
    const auto gap = Clock::now() - Clock::time_point(Clock::duration(w.last_ack.load()));
    longest = std::max(longest, gap);
  };
  c.wait_until(
      [&] {
        sample();
        return c.log_has(0, "left the view while it held the group paused");
      },
      "n4 past its bound and evicted", std::chrono::seconds(60));
  const auto evicted_at = Clock::now();
  c.wait_until(
      [&] {
        sample();
        return Clock::now() - evicted_at > std::chrono::seconds(1);
      },
      "a second of writes after the eviction");
  w.stop = true;
  for (auto& t : threads) t.join();
  CHECK(c.log_has(j, "over the bound of 1000 write-sets"));
  INFO("longest gap between acknowledged writes: "
       << std::chrono::duration_cast<std::chrono::milliseconds>(longest).count() << " ms");
  CHECK(longest < std::chrono::seconds(3));
  // Restarted outside the view with its backlog still on disk: it waits for a view to start its
  // transfer again before it asks for a pause (the group would hold it out for minutes).
  c.nodes[j].process.kill9();
  c.nodes[j].start({"--peers", c.gcs_addr(0), "--wscache-size", "1", "--joiner-backlog", "1000"});
  c.wait_until([&] { return c.primary_size(j) == 4 && c.state(j) == "SYNCED"; },
               "n4 back and SYNCED", std::chrono::seconds(90));
  CHECK(w.surprises == 0);
  check_converged(c, {0, 1, 2, j});
  check_acked_present(c, j, w);
}

TEST_CASE(
    "transfer: kill -9 of every node - restarted with their usual flags they re-form the "
    "primary by themselves and lose nothing acknowledged") {
  Cluster c(3);
  Writer w;
  std::vector<std::thread> threads;
  StopAndJoin join{w, threads};
  start_writers(c, w, threads, {0, 1, 2});
  c.wait_until([&] { return w.count() > 1000; }, "writes flowing");
  for (auto& n : c.nodes) n.process.kill9();
  w.stop = true;
  for (auto& t : threads) t.join();
  for (auto& n : c.nodes) n.start();
  // Members that were behind catch up by transfer, then get their vote: all SYNCED.
  c.wait_until([&] { return c.all_synced(); }, "one primary of all three again, all SYNCED",
               std::chrono::seconds(30));
  check_converged(c, {0, 1, 2});
  for (size_t i = 0; i < 3; ++i) check_acked_present(c, i, w);
}

TEST_CASE(
    "recovery: --recover reads a data dir without changing it - --bootstrap --force is "
    "refused while a member it remembers holds newer commits") {
  Cluster c(3);
  REQUIRE(c.cli(0, {"put", "a", "1"}).code == 0);
  // n1 answers once the commit is certified; n3 applies it in its own time (its log has it).
  c.wait_until([&] { return c.cli(2, {"get", "--local", "a"}).out == "1\n"; }, "n3 applied a");
  c.nodes[2].process.kill9();
  c.wait_until([&] { return c.primary_size(0) == 2; }, "n1 and n2 go on");
  c.load(0, 50, 100, "later/");
  // Applied on both (answered at certification, a commit may still be on its way to the store).
  c.wait_until(
      [&] {
        return c.status(0)["last_committed"].get<uint64_t>() == 51 &&
               c.status(1)["last_committed"].get<uint64_t>() == 51;
      },
      "n1 and n2 applied all 51");
  c.nodes[0].process.kill9();
  c.nodes[1].process.kill9();

  auto recover = [&](size_t i) {
    auto r = run({TUTTID_BIN, "--data-dir", c.nodes[i].data_dir.string(), "--recover", "--json"});
    REQUIRE(r.code == 0);
    return json::parse(r.out);
  };
  const json r3 = recover(2), r1 = recover(0);
  CHECK(r3["history_uuid"] == r1["history_uuid"]);
  CHECK(r1["last_committed"].get<uint64_t>() == r3["last_committed"].get<uint64_t>() + 50);
  CHECK(r3["safe_to_bootstrap"] == false);
  CHECK_THAT(r3["reason"].get<std::string>(), Catch::Contains("re-form the primary"));
  CHECK(!r1["last_primary_view"].is_null());
  CHECK(recover(2) == r3);  // it changed nothing
  auto text = run({TUTTID_BIN, "--data-dir", c.nodes[2].data_dir.string(), "--recover"});
  CHECK_THAT(text.out, Catch::Contains("safe to bootstrap: no"));

  // n1 alone is back: not primary (one of three), but ahead of n3.
  c.nodes[0].start();
  const std::vector<std::string> force = {"/usr/bin/timeout",
                                          "30",
                                          TUTTID_BIN,
                                          "--name",
                                          "n3",
                                          "--data-dir",
                                          c.nodes[2].data_dir.string(),
                                          "--client-addr",
                                          c.nodes[2].client_addr(),
                                          "--gcs-addr",
                                          "127.0.0.1:" + std::to_string(c.nodes[2].gcs_port),
                                          "--bootstrap",
                                          "--force"};
  // Frozen, n1 takes the connection but answers nothing: it cannot be asked, so it may hold
  // newer commits, and the bootstrap is refused all the same (it once went ahead after 1 s).
  c.nodes[0].process.signal(SIGSTOP);
  auto frozen = run(force);
  c.nodes[0].process.signal(SIGCONT);
  CHECK(frozen.code != 0);
  CHECK_THAT(frozen.err, Catch::Contains("could not be asked for its state"));
  auto forced = run(force);
  CHECK(forced.code != 0);
  CHECK_THAT(forced.err, Catch::Contains("would lose 50 commits"));
  CHECK_THAT(forced.err, Catch::Contains("--discard-newer-commits"));
  // Started as usual instead, the three re-form the primary by themselves and n3 catches up.
  c.nodes[1].start();
  c.nodes[2].start();
  c.wait_until([&] { return c.all_synced(); }, "one primary of three, all SYNCED",
               std::chrono::seconds(30));
  check_converged(c, {0, 1, 2});
  CHECK(c.cli(2, {"get", "later/49"}).code == 0);
}

TEST_CASE(
    "transfer: a node whose data dir is of another history moves its store aside, never "
    "deletes it, and joins by snapshot") {
  Cluster c(3);
  c.load(0, 50, 100, "new/");
  // n4's data dir: of a 2-node cluster of its own (same cluster name), with a commit; its other
  // member is gone for good, so n4 alone is no primary of that history.
  NodeProcess old, gone;
  old.name = "n4";
  old.data_dir = c.dir / "n4";
  old.start({"--bootstrap"});
  gone.name = "n5";
  gone.data_dir = c.dir / "n5";
  gone.start({"--peers", "127.0.0.1:" + std::to_string(old.gcs_port)});
  c.nodes.push_back(std::move(old));
  const size_t j = c.nodes.size() - 1;
  c.wait_until([&] { return c.primary_size(j) == 2; }, "n4 and n5 primary on their own");
  REQUIRE(c.cli(j, {"put", "old-key", "old-value"}).code == 0);
  const std::string old_history = c.status(j)["history_uuid"].get<std::string>();
  gone.process.kill9();
  c.nodes[j].process.kill9();

  c.nodes[j].start({"--peers", c.gcs_addr(0)});
  c.wait_until([&] { return c.primary_size(j) == 4 && c.state(j) == "SYNCED"; },
               "n4 SYNCED in the cluster's primary view", std::chrono::seconds(60));
  CHECK(c.log_has(j, "of another history"));
  CHECK(c.log_has(j, "kept, not deleted"));
  check_converged(c, {0, 1, 2, j});
  CHECK(c.cli(j, {"get", "new/49"}).code == 0);
  CHECK(c.cli(j, {"get", "old-key"}).code != 0);

  // The old store is whole in its folder, and says what it was.
  std::vector<std::filesystem::path> aside;
  for (const auto& e : std::filesystem::directory_iterator(c.nodes[j].data_dir))
    if (e.path().filename().string().rfind("aside-", 0) == 0) aside.push_back(e.path());
  REQUIRE(aside.size() == 1);
  auto r = run({TUTTID_BIN, "--data-dir", aside[0].string(), "--recover", "--json"});
  REQUIRE(r.code == 0);
  const json rec = json::parse(r.out);
  CHECK(rec["history_uuid"] == old_history);
  CHECK(rec["last_committed"].get<uint64_t>() >= 1);
  CHECK(rec["history_uuid"] != c.status(0)["history_uuid"]);
}
