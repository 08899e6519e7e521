// tuttid and tutti as real processes on loopback, driven the way users and scripts drive them.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/client.hpp"
#include "core/codec.hpp"
#include "process.hpp"
#include "single_node.hpp"
#include "storage/content_hash.hpp"
#include "temp_dir.hpp"

using namespace tutti;
using namespace tutti::test;
using nlohmann::json;

TEST_CASE("tutti writes - reads - scans and commits transactions through a node") {
  Single s;
  auto put = s.cli({"put", "greeting", "hello world"});
  REQUIRE(put.code == 0);
  CHECK(put.out == "1\n");
  CHECK(s.cli({"get", "greeting"}).out == "hello world\n");
  CHECK(s.cli({"get", "--local", "greeting"}).out == "hello world\n");
  auto j = json::parse(s.cli({"--json", "get", "greeting"}).out);
  CHECK(j["key"] == "greeting");
  CHECK(j["value"] == "hello world");
  CHECK(j["version"] == 1);

  auto jput = json::parse(s.cli({"--json", "put", "k2", "v2"}).out);
  CHECK(jput["committed"] == true);
  CHECK(jput["seqno"] == 2);

  SECTION("cas commits only at the version read") {
    CHECK(s.cli({"cas", "greeting", "1", "hi"}).code == 0);
    auto lost = s.cli({"cas", "greeting", "1", "again"});
    CHECK(lost.code == 2);
    CHECK_THAT(lost.err, Catch::Contains("conflict"));
    CHECK(s.cli({"get", "greeting"}).out == "hi\n");
    CHECK(s.cli({"cas", "fresh", "0", "new"}).code == 0);
    CHECK(s.cli({"cas", "fresh", "0", "newer"}).code == 2);
  }
  SECTION("del, then get says not found with exit code 1") {
    CHECK(s.cli({"del", "greeting"}).code == 0);
    auto missing = s.cli({"get", "greeting"});
    CHECK(missing.code == 1);
    CHECK_THAT(missing.err, Catch::Contains("not found"));
    auto jm = json::parse(s.cli({"--json", "get", "greeting"}).out);
    CHECK(jm["value"].is_null());
  }
  SECTION("scan prints KEY<TAB>VALUE lines, JSON a list") {
    s.cli({"put", "user/1", "ann"});
    s.cli({"put", "user/2", "bob"});
    s.cli({"put", "users", "no"});
    CHECK(s.cli({"scan", "user/"}).out == "user/1\tann\nuser/2\tbob\n");
    CHECK(s.cli({"scan", "user/", "--limit", "1"}).out == "user/1\tann\n");
    auto list = json::parse(s.cli({"--json", "scan", "user"}).out);
    REQUIRE(list.size() == 3);
    CHECK(list[2]["key"] == "users");
  }
  SECTION("txn from stdin: reads validated, writes and deletes applied together") {
    auto ok = s.cli({"--json", "txn", "-"},
                    R"({"reads":[{"key":"greeting","version":1}],
                        "writes":[{"key":"a","value":"1"},{"key":"k2","delete":true}]})");
    REQUIRE(ok.code == 0);
    CHECK(json::parse(ok.out)["committed"] == true);
    CHECK(s.cli({"get", "a"}).out == "1\n");
    CHECK(s.cli({"get", "k2"}).code == 1);
    auto stale = s.cli({"--json", "txn", "-"},
                       R"({"reads":[{"key":"a","version":1}],"writes":[{"key":"b","value":"2"}]})");
    CHECK(stale.code == 2);
    CHECK(json::parse(stale.out)["conflict"] == json::array({"a"}));
    CHECK(s.cli({"get", "b"}).code == 1);
  }
  SECTION("a retried --txn-id answers its recorded outcome") {
    auto first = s.cli({"--txn-id", "my-txn", "put", "r", "1"});
    s.cli({"put", "r", "2"});
    auto again = s.cli({"--json", "--txn-id", "my-txn", "put", "r", "1"});
    CHECK(json::parse(again.out)["seqno"] == std::stoi(first.out));
    CHECK(json::parse(again.out)["duplicate"] == true);
    CHECK(s.cli({"get", "r"}).out == "2\n");
  }
  SECTION("status names the node and its history") {
    auto st = s.status();
    CHECK(st["name"] == "n1");
    CHECK(st["state"] == "SYNCED");
    CHECK(st["primary"] == true);
    CHECK(st["cluster_size"] == 1);
    CHECK(st["last_committed"] == 2);
    CHECK(st["history_uuid"].get<std::string>().size() == 36);
    CHECK(st["content_hash"].get<std::string>().size() == 32);
  }
  SECTION("non-UTF-8 values are base64 in JSON and say so") {
    auto w = s.cli({"--json", "txn", "-"},
                   R"({"writes":[{"key":"bin","value":"/wA=","value_encoding":"base64"}]})");
    REQUIRE(w.code == 0);
    auto g = json::parse(s.cli({"--json", "get", "bin"}).out);
    CHECK(g["value"] == "/wA=");
    CHECK(g["value_encoding"] == "base64");
    CHECK(s.cli({"get", "bin"}).out == std::string("\xff\x00\n", 3));
  }
}

TEST_CASE("bad usage and bad input exit with code 4 and say why") {
  Single s({"--bootstrap", "--max-value-size", "16", "--max-key-size", "8"});
  CHECK(s.cli({"frobnicate"}).code == 4);
  CHECK(s.cli({"put", "k"}).code == 4);
  CHECK(s.cli({"cas", "k", "notanumber", "v"}).code == 4);
  auto big = s.cli({"put", "k", std::string(17, 'v')});
  CHECK(big.code == 4);
  CHECK_THAT(big.err, Catch::Contains("over the limit of 16 bytes"));
  CHECK(s.cli({"put", "longerkey", "v"}).code == 4);
  CHECK(s.cli({"txn", "-"}, "{not json").code == 4);
  auto unknown = s.cli({"txn", "-"}, R"({"writes":[{"key":"k","value":"v"}],"extra":1})");
  CHECK(unknown.code == 4);
  CHECK_THAT(unknown.err, Catch::Contains("unknown field"));
  CHECK(run({TUTTI_BIN, "--node", "nonsense", "status"}).code == 4);
  CHECK(s.status()["last_committed"] == 0);
}

TEST_CASE("no reachable node exits 3 - the first node that answers serves") {
  Single s;
  const std::string dead = "127.0.0.1:" + std::to_string(free_port());
  auto r = run({TUTTI_BIN, "--node", dead, "--timeout", "2", "get", "k"});
  CHECK(r.code == 3);
  CHECK_THAT(r.err, Catch::Contains("unavailable"));
  auto put = run({TUTTI_BIN, "--node", dead + "," + s.node.client_addr(), "put", "k", "v"});
  CHECK(put.code == 0);
  CHECK(run({TUTTI_BIN, "--node", dead + "," + s.node.client_addr(), "get", "k"}).out == "v\n");
}

TEST_CASE("a data dir needs --bootstrap once - is refused while in use and resumes on restart") {
  TempDir dir;
  NodeProcess n{"n1", dir / "n1"};
  REQUIRE_THROWS(n.start());  // empty data dir, no --bootstrap
  CHECK_THAT(n.log_text(), Catch::Contains("--bootstrap"));

  n.start({"--bootstrap"});
  CHECK(run({TUTTI_BIN, "--node", n.client_addr(), "put", "k", "v"}).code == 0);
  NodeProcess twin{"twin", n.data_dir};
  REQUIRE_THROWS(twin.start());
  CHECK_THAT(twin.log_text(), Catch::Contains("in use"));

  const auto before =
      json::parse(run({TUTTI_BIN, "--node", n.client_addr(), "--json", "status"}).out);
  n.process.signal(SIGTERM);
  CHECK(n.process.wait() == 0);
  CHECK_THAT(n.log_text(), Catch::Contains("stopped cleanly"));
  REQUIRE_THROWS(n.start({"--bootstrap"}));  // a second bootstrap could fork the history
  CHECK_THAT(n.log_text(), Catch::Contains("already belongs to cluster history"));
  n.start();  // no --bootstrap: it resumes its history
  const auto after =
      json::parse(run({TUTTI_BIN, "--node", n.client_addr(), "--json", "status"}).out);
  CHECK(after["history_uuid"] == before["history_uuid"]);
  CHECK(after["last_committed"] == before["last_committed"]);
  CHECK(after["content_hash"] == before["content_hash"]);
  CHECK(run({TUTTI_BIN, "--node", n.client_addr(), "put", "k2", "v"}).out == "2\n");
}

TEST_CASE("tuttid refuses bad flags with a clear message") {
  TempDir dir;
  NodeProcess n{"n1", dir / "n1"};
  REQUIRE_THROWS(n.start({"--peers", "nowhere"}));
  CHECK_THAT(n.log_text(), Catch::Contains("HOST:PORT"));
  NodeProcess m{"m1", dir / "m1"};
  REQUIRE_THROWS(m.start({"--bootstrap", "--durability", "sometimes"}));
  NodeProcess o{"o1", dir / "o1"};
  REQUIRE_THROWS(
      o.start({"--bootstrap", "--suspect-timeout", "100", "--heartbeat-interval", "100"}));
  CHECK_THAT(o.log_text(), Catch::Contains("--suspect-timeout"));
  // A key limit the store cannot honour would let in write-sets no node can persist.
  NodeProcess k{"k1", dir / "k1"};
  REQUIRE_THROWS(k.start({"--bootstrap", "--max-key-size", "1024"}));
  CHECK_THAT(k.log_text(), Catch::Contains("the longest key the store"));
}

TEST_CASE("the default key limit is the store's: a longer key is refused at the door") {
  Single s;
  auto longest = s.cli({"put", std::string(511, 'k'), "v"});
  CHECK(longest.code == 0);
  auto over = s.cli({"put", std::string(512, 'k'), "v"});
  CHECK(over.code == 4);
  CHECK_THAT(over.err, Catch::Contains("over the limit of 511 bytes"));
  auto read =
      s.cli({"--json", "txn", "-"}, R"({"reads":[{"key":")" + std::string(700, 'r') +
                                        R"(","version":0}],"writes":[{"key":"k","value":"v"}]})");
  CHECK(read.code == 4);
  CHECK(s.cli({"put", "after", "v"}).code == 0);
  CHECK(s.status()["last_committed"] == 2);
}

TEST_CASE("malformed frames get an error or a closed connection - the node keeps serving") {
  Single s;
  const uint16_t port = s.node.client_port;
  // Garbage that is a plausible frame: 8 bytes of junk as a message.
  auto reply = raw_exchange(port, core::frame(std::string(8, '\xee')));
  REQUIRE(reply.size() > core::kFrameHeaderBytes);
  auto decoded = core::decode_response(reply.substr(core::kFrameHeaderBytes));
  CHECK(std::get<core::ErrorReply>(decoded.body).code == core::ErrorCode::bad_request);
  // A length over the limit: refused without reading it.
  auto big = raw_exchange(port, std::string("\xff\xff\xff\x7f", 4));
  REQUIRE(big.size() > core::kFrameHeaderBytes);
  CHECK(std::get<core::ErrorReply>(core::decode_response(big.substr(4)).body).code ==
        core::ErrorCode::too_large);
  // Truncated frame, odd sizes, a header alone: the node just sees the connection close.
  raw_exchange(port, core::frame(std::string(64, 'x')).substr(0, 20));
  raw_exchange(port, core::frame("abc"));
  raw_exchange(port, "\x01");
  // A request of a protocol version from the future.
  std::string req = core::encode_request(core::Request{1, core::StatusRequest{}});
  req[16] = 7;
  auto versioned = raw_exchange(port, core::frame(req));
  REQUIRE(versioned.size() > 4);
  CHECK(std::get<core::ErrorReply>(core::decode_response(versioned.substr(4)).body).code ==
        core::ErrorCode::unsupported_version);

  // A client that sends a commit and closes its sending side still gets the answer.
  core::Request put{5, core::CommitRequest{"half-close", {}, {core::WriteItem{"hc", "v"}}}};
  auto answered = raw_exchange(port, core::frame(core::encode_request(put)));
  REQUIRE(answered.size() > 4);
  auto commit = core::decode_response(answered.substr(4));
  CHECK(commit.id == 5);
  CHECK(std::get<core::CommitReply>(commit.body).committed);

  CHECK(s.cli({"put", "still", "alive"}).code == 0);
  CHECK(s.cli({"get", "still"}).out == "alive\n");
  CHECK(s.node.process.running());
}

namespace {

// Streams puts over several pipelined connections and records every acknowledged one.
struct PutStream {
  std::mutex mu;
  std::map<std::string, std::string> acked;  // key -> value
  uint64_t max_seqno = 0;
  std::atomic<bool> stop{false};
  std::atomic<bool> stop_signalled{false};  // set before the node is told to stop
  std::atomic<int> surprises{0};
  // Keys a stopping node refused before replicating them ("this member is leaving"): a clean
  // refusal, so they must not be in the store.
  std::vector<std::string> refused;
  std::string surprise;

  void run(core::HostPort node, int stream) {
    core::Client client(std::chrono::seconds(5));
    try {
      client.connect(node);
      uint64_t n = 0;
      std::map<uint64_t, std::pair<std::string, std::string>> pending;
      while (!stop && n < 200000) {
        while (pending.size() < 16) {
          const std::string key = "s" + std::to_string(stream) + "/" + std::to_string(n);
          const std::string value = "v" + std::to_string(n) + std::string(n % 200, 'x');
          ++n;
          const uint64_t id = client.send(
              core::Request{0, core::CommitRequest{key, {}, {core::WriteItem{key, value}}}});
          pending[id] = {key, value};
        }
        auto r = client.receive();
        auto it = pending.find(r.id);
        const auto* c = std::get_if<core::CommitReply>(&r.body);
        // Catch2 assertions are not for other threads: count surprises, check them later.
        const auto* e = std::get_if<core::ErrorReply>(&r.body);
        if (stop_signalled && it != pending.end() && e && e->code == core::ErrorCode::not_primary) {
          std::lock_guard lock(mu);
          refused.push_back(it->second.first);
          return;
        }
        if (it == pending.end() || !c || !c->committed) {
          std::lock_guard lock(mu);
          ++surprises;
          surprise = e ? e->message : "a reply that is not a commit of a request in flight";
          return;
        }
        std::lock_guard lock(mu);
        acked[it->second.first] = it->second.second;
        max_seqno = std::max(max_seqno, c->seqno);
        pending.erase(it);
      }
    } catch (const core::ClientError&) {
      // The node was killed: what is not acked is unknown, and not checked.
    }
  }
  size_t count() {
    std::lock_guard lock(mu);
    return acked.size();
  }
};

void check_all_acked_present(Single& s, PutStream& stream, const std::string& mode) {
  core::Client client(std::chrono::seconds(10));
  client.connect(core::parse_host_port(s.node.client_addr()));
  auto scan =
      std::get<core::ScanReply>(client.call(core::Request{0, core::ScanRequest{"", 0}}).body);
  REQUIRE_FALSE(scan.truncated);
  std::map<std::string, std::string> stored;
  storage::ContentHash recomputed;
  for (const auto& e : scan.entries) {
    stored[e.key] = e.value;
    recomputed.add(e.key, e.version, e.value);
  }
  size_t missing = 0;
  for (const auto& [k, v] : stream.acked) {
    auto it = stored.find(k);
    if (it == stored.end() || it->second != v) ++missing;
  }
  size_t refused_but_stored = 0;
  for (const auto& k : stream.refused) refused_but_stored += stored.count(k);
  INFO(mode << ": acknowledged " << stream.acked.size() << ", stored " << stored.size()
            << ", refused while stopping " << stream.refused.size());
  INFO("surprise: " << stream.surprise);
  CHECK(stream.surprises == 0);
  CHECK(missing == 0);
  CHECK(refused_but_stored == 0);
  auto st = s.status();
  CHECK(st["last_committed"].get<uint64_t>() >= stream.max_seqno);
  CHECK(st["content_hash"] == recomputed.hex());
}

}  // namespace

TEST_CASE("kill -9 during a stream of puts loses no acknowledged put") {
  Single s;
  PutStream stream;
  std::vector<std::thread> writers;
  for (int i = 0; i < 3; ++i)
    writers.emplace_back([&, i] { stream.run(core::parse_host_port(s.node.client_addr()), i); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (stream.count() < 3000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  s.node.process.kill9();  // mid-stream: writers have requests in flight
  stream.stop = true;
  for (auto& w : writers) w.join();
  REQUIRE(stream.count() > 100);

  s.node.start();  // same data dir, no --bootstrap
  check_all_acked_present(s, stream, "fsync");
}

TEST_CASE("memory durability: a clean stop keeps every acknowledged put") {
  Single s({"--bootstrap", "--durability", "memory"});
  PutStream stream;
  std::thread writer([&] { stream.run(core::parse_host_port(s.node.client_addr()), 0); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (stream.count() < 2000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stream.stop_signalled = true;
  s.node.process.signal(SIGTERM);
  stream.stop = true;
  writer.join();
  const int status = s.node.process.wait();
  INFO("tuttid log:\n" << s.node.log_text());
  CHECK(status == 0);
  s.node.start({"--durability", "memory"});
  check_all_acked_present(s, stream, "memory");
}

TEST_CASE("a full disk fails writes with a clear error while reads go on") {
  if (!SmallDisk::can_mount()) {
    return test::report_skipped("mounting a small tmpfs needs root");
  }
  TempDir dir;
  const SmallDisk disk(dir, "small-disk", "4m");
  const auto& mnt = disk.path();
  {
    NodeProcess n{"n1", mnt / "n1"};
    n.log = dir / "n1.log";
    n.start({"--bootstrap"});
    auto cli = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {TUTTI_BIN, "--node", n.client_addr()});
      return run(args);
    };
    REQUIRE(cli({"put", "small", "v"}).code == 0);
    const std::string value(100 << 10, 'x');  // one argument may not pass 128 KiB
    CliResult failed;
    for (int i = 0; i < 80 && failed.code <= 0; ++i) {
      auto r = cli({"put", "big" + std::to_string(i), value});
      if (r.code != 0) failed = r;
    }
    REQUIRE(failed.code == 3);
    CHECK_THAT(failed.err, Catch::Contains("not committed"));
    CHECK_THAT(failed.err, Catch::Contains("space"));
    CHECK(cli({"get", "small"}).out == "v\n");
    CHECK(n.process.running());
  }
}
