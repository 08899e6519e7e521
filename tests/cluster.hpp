// The cluster tests' harness: N tuttid processes on loopback, a pipelined writer that records
// what was acknowledged, and the checks that nothing acknowledged is lost and that nodes agree.
// Included by the cluster test files only (one test program).
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/client.hpp"
#include "core/codec.hpp"
#include "gcs/wire.hpp"
#include "process.hpp"
#include "storage/store.hpp"
#include "temp_dir.hpp"

using namespace tutti;
using namespace tutti::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace tutti::test {

struct Cluster {
  TempDir dir;
  std::vector<NodeProcess> nodes;

  explicit Cluster(int n = 3, const std::vector<std::string>& extra = {}) {
    for (int i = 1; i <= n; ++i) {
      NodeProcess p;
      p.name = "n" + std::to_string(i);
      p.data_dir = dir / p.name;
      p.client_port = free_port();
      p.gcs_port = free_port();
      nodes.push_back(std::move(p));
    }
    auto with = [&](std::vector<std::string> flags) {
      flags.insert(flags.end(), extra.begin(), extra.end());
      return flags;
    };
    nodes[0].start(with({"--bootstrap"}));
    for (size_t i = 1; i < nodes.size(); ++i) nodes[i].start(with({"--peers", gcs_addr(0)}));
    wait_until([&] { return primary_size(0) == static_cast<int>(nodes.size()); }, "all joined");
  }
  std::string gcs_addr(size_t i) const { return "127.0.0.1:" + std::to_string(nodes[i].gcs_port); }
  // A new node, n<N+1>, joining through the first one; wrapper: runs it under that command.
  size_t add(const std::vector<std::string>& extra = {}, std::vector<std::string> wrapper = {}) {
    NodeProcess p;
    p.name = "n" + std::to_string(nodes.size() + 1);
    p.data_dir = dir / p.name;
    p.client_port = free_port();
    p.gcs_port = free_port();
    p.wrapper = std::move(wrapper);
    std::vector<std::string> flags{"--peers", gcs_addr(0)};
    flags.insert(flags.end(), extra.begin(), extra.end());
    p.start(flags);
    nodes.push_back(std::move(p));
    return nodes.size() - 1;
  }
  // Commits count values of bytes each through node i, pipelined: bulk data for transfers.
  void load(size_t i, int count, size_t bytes, const std::string& prefix = "bulk/") {
    core::Client client(std::chrono::seconds(30));
    client.connect(core::parse_host_port(nodes[i].client_addr()));
    int sent = 0, answered = 0;
    while (answered < count) {
      while (sent < count && sent - answered < 16) {
        const std::string key = prefix + std::to_string(sent++);
        client.send(core::Request{
            0, core::CommitRequest{key, {}, {core::WriteItem{key, std::string(bytes, 'x')}}}});
      }
      auto r = client.receive();
      ++answered;
      auto* c = std::get_if<core::CommitReply>(&r.body);
      REQUIRE((c && c->committed));
    }
  }
  CliResult cli(size_t i, std::vector<std::string> args) {
    args.insert(args.begin(), {TUTTI_BIN, "--timeout", "5", "--node", nodes[i].client_addr()});
    return run(args);
  }
  // A linearizable read through node i that a view change under way may refuse (exit 3, said
  // so): asked again, bounded, until it answers. A wrong answer is never retried away.
  CliResult read_through(size_t i, std::vector<std::string> args) {
    CliResult r = cli(i, args);
    for (int tries = 0; r.code == 3 && tries < 50; ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      r = cli(i, args);
    }
    return r;
  }

  json status(size_t i) {
    auto r = cli(i, {"--json", "status"});
    return r.code == 0 ? json::parse(r.out) : json{};
  }
  json members(size_t i) {
    auto r = run({GCS_TOOL_BIN, "--node", nodes[i].client_addr(), "members", "--json"});
    return r.code == 0 ? json::parse(r.out) : json{};
  }
  std::string state(size_t i) {
    auto s = status(i);
    return s.empty() ? "" : s["state"].get<std::string>();
  }
  bool log_has(size_t i, const std::string& text) {
    return nodes[i].log_text().find(text) != std::string::npos;
  }
  // The size of node i's view when it is primary and its node is synced, else 0.
  int primary_size(size_t i) {
    auto s = status(i);
    if (s.empty() || !s["primary"].get<bool>()) return 0;
    return s["cluster_size"].get<int>();
  }
  // Every node is SYNCED in one primary view of all of them.
  bool all_synced() {
    for (size_t i = 0; i < nodes.size(); ++i)
      if (primary_size(i) != static_cast<int>(nodes.size()) || state(i) != "SYNCED") return false;
    return true;
  }
  template <typename Pred>
  void wait_until(Pred pred, const std::string& what,
                  std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = Clock::now() + timeout;
    while (!pred()) {
      if (Clock::now() > deadline) {
        std::string logs;
        for (auto& n : nodes) logs += "--- " + n.name + "\n" + n.log_text();
        FAIL("timed out waiting for: " << what << "\n" << logs);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
};

// Puts streamed through one node over a pipelined connection; every acknowledged put recorded.
struct Writer {
  std::mutex mu;
  std::map<std::string, std::string> acked;
  std::atomic<bool> stop{false};
  std::atomic<int> surprises{0};
  std::atomic<Clock::rep> last_ack{0};
  std::string last_error;  // the last refusal or connection failure, for failure reports

  // Bounded: stops by itself after 2 minutes or a million requests.
  void run(core::HostPort node, const std::string& prefix) {
    uint64_t n = 0;
    const auto deadline = Clock::now() + std::chrono::minutes(2);
    auto more = [&] { return !stop && n < 1000000 && Clock::now() < deadline; };
    while (more()) {
      try {
        core::Client client(std::chrono::seconds(5));
        client.connect(node);
        std::map<uint64_t, std::pair<std::string, std::string>> pending;
        while (more()) {
          while (pending.size() < 8) {
            const std::string key = prefix + std::to_string(n);
            const std::string value = "v" + std::to_string(n++);
            pending[client.send(core::Request{
                0, core::CommitRequest{key, {}, {core::WriteItem{key, value}}}})] = {key, value};
          }
          auto r = client.receive();
          auto it = pending.find(r.id);
          if (it == pending.end()) {
            std::lock_guard lock(mu);
            last_error = "an answer to no request, id " + std::to_string(r.id);
            return (void)++surprises;
          }
          if (auto* c = std::get_if<core::CommitReply>(&r.body); c && c->committed) {
            std::lock_guard lock(mu);
            acked[it->second.first] = it->second.second;
            last_ack = Clock::now().time_since_epoch().count();
          } else {  // an error (not primary during a view change) is an honest refusal
            {
              std::lock_guard lock(mu);
              last_error = std::get_if<core::ErrorReply>(&r.body)
                               ? std::get<core::ErrorReply>(r.body).message
                               : std::string("not committed");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));  // do not hammer
          }
          pending.erase(it);
        }
      } catch (const core::ClientError& e) {
        {
          std::lock_guard lock(mu);
          last_error = e.what();
        }
        // The node died or stalled: what was in flight is unknown, and not checked. Connect
        // again (a dead node refuses at once) until told to stop.
        if (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
  size_t count() {
    std::lock_guard lock(mu);
    return acked.size();
  }
};

// Stops the writer and joins its threads however the test ends (a failed wait throws).
struct StopAndJoin {
  Writer& w;
  std::vector<std::thread>& threads;
  ~StopAndJoin() {
    w.stop = true;
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }
};

// Every acknowledged put must be readable through node i with its value.
inline void check_acked_present(Cluster& c, size_t i, Writer& w) {
  core::Client client(std::chrono::seconds(10));
  client.connect(core::parse_host_port(c.nodes[i].client_addr()));
  auto scan =
      std::get<core::ScanReply>(client.call(core::Request{0, core::ScanRequest{"w", 0}}).body);
  std::map<std::string, std::string> stored;
  for (auto& e : scan.entries) stored[e.key] = e.value;
  size_t missing = 0;
  for (const auto& [k, v] : w.acked)
    if (stored.count(k) == 0 || stored[k] != v) ++missing;
  INFO("node " << c.nodes[i].name << ": acknowledged " << w.acked.size() << ", stored "
               << stored.size());
  CHECK(missing == 0);
}

// Once the nodes are quiet, they hold the same seqno, the same content and the same history.
inline void check_converged(Cluster& c, const std::vector<size_t>& which) {
  c.wait_until(
      [&] {
        std::set<std::string> seen;
        for (size_t i : which) {
          auto s = c.status(i);
          if (s.empty()) return false;
          if (s["history_uuid"].get<std::string>().empty()) return false;
          seen.insert(std::to_string(s["last_committed"].get<uint64_t>()) + "/" +
                      s["content_hash"].get<std::string>() + "/" +
                      s["history_uuid"].get<std::string>());
        }
        return seen.size() == 1;
      },
      "equal seqnos and content hashes");
}

}  // namespace tutti::test
