// Three tuttid processes on loopback as a cluster: replication, certification across nodes,
// failover and membership, driven the way operators and clients drive them.
#include "cluster.hpp"

TEST_CASE("3 nodes: a write through any node is read through every other - members are listed") {
  Cluster c;
  for (size_t i = 0; i < 3; ++i)
    REQUIRE(c.cli(i, {"put", "k" + std::to_string(i), "v" + std::to_string(i)}).code == 0);
  // Default reads are linearizable: no waiting, no retry, the write is there.
  for (size_t reader = 0; reader < 3; ++reader)
    for (size_t i = 0; i < 3; ++i)
      CHECK(c.cli(reader, {"get", "k" + std::to_string(i)}).out == "v" + std::to_string(i) + "\n");
  auto local = c.cli(1, {"get", "--local", "k0"});
  CHECK(local.out == "v0\n");
  CHECK_THAT(local.err, Catch::Contains("may be stale"));

  auto m = c.members(2);
  REQUIRE_FALSE(m.empty());
  CHECK(m["view"]["primary"] == true);
  CHECK(m["view"]["size"] == 3);
  CHECK(m["view"]["id"].is_string());
  REQUIRE(m["members"].size() == 3);
  std::set<std::string> names;
  for (auto& e : m["members"]) {
    names.insert(e["name"].get<std::string>());
    CHECK(e["uuid"].get<std::string>().size() == 36);
    CHECK(e["gcs_addr"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
    CHECK(e["client_addr"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
    CHECK(e["state"] == "SYNCED");
    CHECK(e["last_committed"].is_number_unsigned());
  }
  CHECK(names == std::set<std::string>{"n1", "n2", "n3"});
  auto table = run({GCS_TOOL_BIN, "--node", c.nodes[0].client_addr(), "members"});
  CHECK(table.code == 0);
  CHECK_THAT(table.out, Catch::Contains("PRIMARY") && Catch::Contains("SYNCED"));
  check_converged(c, {0, 1, 2});
}

TEST_CASE("3 nodes: concurrent cas on one key through different nodes - exactly one wins") {
  Cluster c;
  for (int round = 0; round < 5; ++round) {
    auto put = c.cli(0, {"put", "k", "start"});
    REQUIRE(put.code == 0);
    const std::string version = put.out.substr(0, put.out.size() - 1);
    std::vector<CliResult> results(3);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < 3; ++i)
      threads.emplace_back([&, i] {
        results[i] = c.cli(i, {"cas", "k", version, "by-n" + std::to_string(i + 1)});
      });
    for (auto& t : threads) t.join();
    int won = 0, lost = 0;
    std::string winner;
    for (size_t i = 0; i < 3; ++i) {
      if (results[i].code == 0) {
        ++won;
        winner = "by-n" + std::to_string(i + 1);
      }
      if (results[i].code == 2) ++lost;
    }
    CHECK(won == 1);
    CHECK(lost == 2);
    for (size_t i = 0; i < 3; ++i) CHECK(c.cli(i, {"get", "k"}).out == winner + "\n");
  }
}

TEST_CASE("3 nodes: kill -9 of one under load - the others go on and lose nothing acknowledged") {
  Cluster c;
  Writer w;
  std::vector<std::thread> threads;
  StopAndJoin join{w, threads};
  for (size_t i = 0; i < 3; ++i)
    threads.emplace_back([&, i] {
      w.run(core::parse_host_port(c.nodes[i].client_addr()), "w" + std::to_string(i) + "/");
    });
  c.wait_until([&] { return w.count() > 300; }, "writes flowing");
  c.nodes[2].process.kill9();
  const auto killed = Clock::now();
  const size_t at_kill = w.count();
  c.wait_until([&] { return w.count() > at_kill + 300; }, "writes after the kill",
               std::chrono::seconds(10));
  const auto resumed = Clock::now();
  w.stop = true;
  for (auto& t : threads) t.join();
  const auto pause =
      std::chrono::duration_cast<std::chrono::milliseconds>(resumed - killed).count();
  INFO("writes went on " << pause << " ms after the kill");
  CHECK(pause < 3000);
  CHECK(w.surprises == 0);
  CHECK(c.primary_size(0) == 2);
  check_converged(c, {0, 1});
  check_acked_present(c, 0, w);
  check_acked_present(c, 1, w);
}

TEST_CASE("3 nodes: two killed - the last refuses writes - back again a primary forms") {
  Cluster c;
  REQUIRE(c.cli(0, {"put", "before", "1"}).code == 0);
  c.nodes[1].process.kill9();
  c.nodes[2].process.kill9();
  c.wait_until([&] { return c.status(0).value("primary", true) == false; }, "n1 non-primary");
  auto put = c.cli(0, {"put", "alone", "1"});
  CHECK(put.code == 3);
  CHECK_THAT(put.err, Catch::Contains("not primary"));
  auto get = c.cli(0, {"get", "before"});
  CHECK(get.code == 3);
  CHECK_THAT(get.err, Catch::Contains("not primary"));
  auto local = c.cli(0, {"get", "--local", "before"});
  CHECK(local.code == 0);
  CHECK_THAT(local.err, Catch::Contains("may be stale"));
  // It says what it waits for: which members of the last primary view are missing, once it has
  // installed the view without them (until then a view change is under way; slow under ASan).
  c.wait_until(
      [&] { return c.nodes[0].log_text().find("waiting for a majority") != std::string::npos; },
      "n1 in a non-primary view without n2 and n3");
  const std::string waiting = c.status(0)["waiting_for"].get<std::string>();
  CHECK_THAT(waiting, Catch::Contains("a majority of the last primary view"));
  // n2 was killed first: when a view of n1 and n3 formed before n3 went too, that is the last
  // primary view, and only n3 is missing from it.
  if (waiting.find("(2)") != std::string::npos) {
    CHECK_THAT(waiting, Catch::Contains("missing n3"));
  } else {
    CHECK_THAT(waiting, Catch::Contains("missing n2, n3") || Catch::Contains("missing n3, n2"));
  }
  CHECK_THAT(c.nodes[0].log_text(), Catch::Contains("waiting for a majority"));
  CHECK_THAT(put.err, Catch::Contains("missing"));

  c.nodes[1].start();
  c.nodes[2].start();
  c.wait_until([&] { return c.all_synced(); }, "a primary of three again, all SYNCED");
  for (size_t i = 0; i < 3; ++i) CHECK(c.cli(i, {"get", "before"}).out == "1\n");
  CHECK(c.cli(2, {"put", "after", "2"}).code == 0);
  check_converged(c, {0, 1, 2});
}

TEST_CASE(
    "3 nodes: a member restarted at the group's seqno rejoins - one behind catches up by "
    "transfer") {
  Cluster c;
  REQUIRE(c.cli(0, {"put", "a", "1"}).code == 0);
  check_converged(c, {0, 1, 2});
  c.nodes[2].process.signal(SIGTERM);
  CHECK(c.nodes[2].process.wait() == 0);
  c.nodes[2].start();
  // Back in a primary view it first is a learner (JOINED), then gets its vote (SYNCED).
  c.wait_until([&] { return c.primary_size(2) == 3 && c.state(2) == "SYNCED"; },
               "n3 back and synced");
  CHECK(!c.log_has(2, "state transfer"));  // it was at the group's seqno: nothing to catch up
  CHECK(c.cli(2, {"put", "b", "2"}).code == 0);
  const auto read = c.read_through(0, {"get", "b"});
  INFO(read.err);
  CHECK(read.out == "2\n");

  c.nodes[2].process.kill9();
  c.wait_until([&] { return c.primary_size(0) == 2; }, "n1 and n2 go on");
  REQUIRE(c.cli(0, {"put", "c", "3"}).code == 0);
  c.nodes[2].start();
  c.wait_until([&] { return c.primary_size(2) == 3 && c.state(2) == "SYNCED"; },
               "n3 caught up and SYNCED");
  CHECK(c.log_has(2, "state transfer done"));
  CHECK(c.cli(2, {"get", "--local", "c"}).out == "3\n");
  CHECK(c.cli(2, {"put", "d", "4"}).code == 0);
  check_converged(c, {0, 1, 2});
}

TEST_CASE(
    "gcs: another cluster is refused at the handshake - garbage and silence on the gcs port "
    "change nothing") {
  Cluster c(2);
  NodeProcess stranger;
  stranger.name = "x1";
  stranger.data_dir = c.dir / "x1";
  stranger.start({"--peers", c.gcs_addr(0), "--cluster-name", "other"});
  c.wait_until(
      [&] {
        return c.nodes[0].log_text().find("cluster 'other'") != std::string::npos &&
               stranger.log_text().find("cluster 'tutti'") != std::string::npos;
      },
      "both sides log the refusal");

  // A different history (a data dir bootstrapped on its own) is refused too.
  NodeProcess other;
  other.name = "y1";
  other.data_dir = c.dir / "y1";
  other.start({"--bootstrap", "--peers", c.gcs_addr(0)});
  c.wait_until(
      [&] { return other.log_text().find("another cluster history") != std::string::npos; },
      "the other history is refused");

  const uint16_t port = c.nodes[0].gcs_port;
  const int silent = connect_loopback(port);
  for (const std::string& junk : {std::string("\x10\0\0\0garbage-garbage!", 20),
                                  std::string("\xff\xff\xff\x7f", 4), std::string(3, '\1')}) {
    const int fd = connect_loopback(port);
    (void)::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
  }
  // The silent connection is closed once the handshake deadline passes.
  timeval tv{8, 0};
  ::setsockopt(silent, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[16];
  const auto t0 = Clock::now();
  CHECK(::recv(silent, buf, sizeof buf, 0) == 0);
  CHECK(Clock::now() - t0 < std::chrono::seconds(6));
  ::close(silent);
  CHECK(c.primary_size(0) == 2);
  CHECK(c.cli(1, {"put", "still", "ok"}).code == 0);
  CHECK(c.cli(0, {"get", "still"}).out == "ok\n");
}

TEST_CASE("gcs-tool watch prints each view change as it is installed") {
  Cluster c;
  Process watch({GCS_TOOL_BIN, "--node", c.nodes[0].client_addr(), "watch"}, c.dir / "watch.log");
  auto log = [&] {
    std::ifstream in(c.dir / "watch.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  c.wait_until([&] { return log().find("PRIMARY  [") != std::string::npos; }, "the current view");
  c.nodes[2].process.signal(SIGTERM);
  c.wait_until([&] { return c.primary_size(0) == 2; }, "a view of two");
  c.wait_until(
      [&] {
        return log().find("[n1, n2]") != std::string::npos ||
               log().find("[n2, n1]") != std::string::npos;
      },
      "watch shows the view of two");
  watch.signal(SIGTERM);
  watch.wait();
}

TEST_CASE(
    "flow control: a slow node pauses the group - status and gcs-tool name it - past the "
    "bound it is evicted and says so") {
  TempDir dir;
  std::vector<NodeProcess> nodes(3);
  const std::vector<std::string> common{
      "--suspect-timeout", "4000", "--view-change-timeout",   "4000",
      "--max-flow-pause",  "600",  "--flow-pause-write-time", "200"};
  for (int i = 0; i < 3; ++i) {
    nodes[i].name = "n" + std::to_string(i + 1);
    nodes[i].data_dir = dir / nodes[i].name;
    nodes[i].client_port = free_port();
    nodes[i].gcs_port = free_port();
  }
  const std::string seed = "127.0.0.1:" + std::to_string(nodes[0].gcs_port);
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), common.begin(), common.end());
    return extra;
  };
  nodes[0].start(with({"--bootstrap"}));
  nodes[1].start(with({"--peers", seed}));
  auto view_size = [&](size_t i) {
    auto r = run({GCS_TOOL_BIN, "--node", nodes[i].client_addr(), "members", "--json"});
    if (r.code != 0) return 0;
    auto j = json::parse(r.out);
    return j["view"]["primary"].get<bool>() ? j["view"]["size"].get<int>() : 0;
  };
  auto wait = [&](auto pred, const char* what) {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (!pred()) {
      if (Clock::now() > deadline)
        FAIL(what << "\n" << nodes[0].log_text() << nodes[1].log_text() << nodes[2].log_text());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  wait([&] { return view_size(0) == 2; }, "two members");
  // Every write on this disk takes longer than 200 ms, and longer than the group may stay
  // paused: each sync waits a second (the sanitizer runtime need not be loaded first).
  nodes[2].wrapper = {"/usr/bin/env", std::string("LD_PRELOAD=") + SLOW_SYNC_LIB,
                      "TUTTI_TEST_SYNC_DELAY_MS=1000", "ASAN_OPTIONS=verify_asan_link_order=0"};
  nodes[2].start(with({"--peers", seed}));
  wait([&] { return view_size(0) == 3; }, "three members");

  Writer w;
  std::vector<std::thread> writer;
  StopAndJoin join{w, writer};
  writer.emplace_back([&] { w.run(core::parse_host_port(nodes[0].client_addr()), "w/"); });
  bool seen_in_status = false, seen_in_members = false;
  wait(
      [&] {
        auto st = run({TUTTI_BIN, "--node", nodes[0].client_addr(), "--json", "status"});
        if (st.code == 0 && json::parse(st.out)["paused_by"].dump() == R"(["n3"])")
          seen_in_status = true;
        auto m = run({GCS_TOOL_BIN, "--node", nodes[0].client_addr(), "members", "--json"});
        const json members = m.code == 0 ? json::parse(m.out) : json{{"members", json::array()}};
        for (const auto& e : members["members"])
          if (e["name"] == "n3" && e["flow_control_pausing"] == true) seen_in_members = true;
        return seen_in_status && seen_in_members;
      },
      "the pause shown by status and gcs-tool");
  wait([&] { return nodes[2].log_text().find("evicted for falling behind") != std::string::npos; },
       "n3 evicted and saying so");
  wait([&] { return nodes[0].log_text().find("held the group paused") != std::string::npos; },
       "n1 says n3 left while it held the group paused");
  const size_t at_eviction = w.count();
  wait(
      [&] {
        std::lock_guard lock(w.mu);
        UNSCOPED_INFO("acknowledged " << w.acked.size() << ", last error: " << w.last_error);
        return w.acked.size() > at_eviction + 200;
      },
      "the others go on without it");
  w.stop = true;
  writer[0].join();
  CHECK(w.surprises == 0);
}

// A data dir written before keys were limited to what the store holds: every node has a write-set
// with a key LMDB cannot take in its log, delivered but not applied, as when the cluster fell over
// persisting it. Restarted, the group delivers it again; every node must reject it alike and go on.
TEST_CASE(
    "3 nodes: a write-set the store cannot hold in every node's log - restarted, they recover") {
  Cluster c;
  REQUIRE(c.cli(0, {"put", "before", "1"}).code == 0);
  check_converged(c, {0, 1, 2});
  const uint64_t last = c.status(0)["last_committed"].get<uint64_t>();
  for (auto& n : c.nodes) n.process.kill9();
  for (auto& n : c.nodes) {
    storage::Options o;
    o.dir = n.data_dir;
    auto store = storage::Store::open(o);
    auto raw = store->read()->log_get(last);
    REQUIRE(raw);
    gcs::LogEntry entry = gcs::decode_log_entry(*raw);
    entry.seqno = last + 1;
    entry.sender_seq += 1;
    entry.payload = core::encode_writeset(
        core::WriteSet{entry.sender, "poison", {}, {core::WriteItem{std::string(600, 'p'), "v"}}});
    store->write(
        [&](storage::WriteTxn& t) { t.log_append(entry.seqno, gcs::encode_log_entry(entry)); });
  }
  // Two of three restart: a majority of the last primary view, so they re-form it and deliver the
  // tail. (The third would need a state transfer after that, which is another issue's work.)
  c.nodes[0].start();
  c.nodes[1].start();
  c.wait_until([&] { return c.primary_size(0) == 2; }, "a primary of two again");
  auto put = c.cli(1, {"put", "after", "2"});
  CHECK(put.code == 0);
  CHECK(put.out == std::to_string(last + 2) + "\n");  // the rejected write-set took its seqno
  check_converged(c, {0, 1});
  for (size_t i = 0; i < 2; ++i) {
    CHECK(c.cli(i, {"get", "after"}).out == "2\n");
    CHECK(c.cli(i, {"get", "before"}).out == "1\n");
    CHECK(c.nodes[i].process.running());
  }
}

// More linearizable reads in flight on one connection than it may have unanswered, sent in one
// write: answering the marked ones lets the connection read more while they are still being
// answered, and those must not displace the reads waiting for the next marker.
