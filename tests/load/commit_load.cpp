// commit-load: a fixed number of blind puts, pipelined over a few connections to one node, for
// before/after throughput figures (scripts/bench-commits.sh). Not a benchmark suite: tutti-bench
// is that. Exits 1 if any put is not committed.
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

#include "core/client.hpp"
#include "core/uuid.hpp"

namespace {

using namespace tutti;

// One connection: keeps `depth` puts in flight until `count` of them are answered. retry: a put
// refused while the group changes its view (not primary, busy) is sent again with the same
// transaction id, as long as a commit came within the last 30 s (a load that runs for minutes
// outlives a view change at any time); counted in refused.
bool stream(const core::HostPort& node, const std::string& run, int stream_no, uint64_t count,
            size_t depth, size_t value_size, bool retry, std::atomic<uint64_t>& committed,
            std::atomic<uint64_t>& refused, std::string& error) {
  try {
    core::Client client(std::chrono::seconds(30));
    client.connect(node);
    uint64_t sent = 0, answered = 0;
    std::map<uint64_t, uint64_t> pending;
    auto last_commit = std::chrono::steady_clock::now();
    auto send = [&](uint64_t n) {
      const std::string key =
          "load/" + run + "/" + std::to_string(stream_no) + "/" + std::to_string(n);
      pending[client.send(core::Request{
          0, core::CommitRequest{key, {}, {core::WriteItem{key, std::string(value_size, 'v')}}}})] =
          n;
    };
    while (answered < count) {
      while (pending.size() < depth && sent < count) send(sent++);
      auto r = client.receive();
      const auto* c = std::get_if<core::CommitReply>(&r.body);
      const auto* e = std::get_if<core::ErrorReply>(&r.body);
      auto it = pending.find(r.id);
      if (it != pending.end() && e && retry &&
          std::chrono::steady_clock::now() - last_commit < std::chrono::seconds(30) &&
          (e->code == core::ErrorCode::not_primary || e->code == core::ErrorCode::busy)) {
        const uint64_t n = it->second;
        pending.erase(it);
        ++refused;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        send(n);
        continue;
      }
      if (it == pending.end() || !c || !c->committed) {
        error = e ? e->message : "a put was not committed";
        return false;
      }
      pending.erase(it);
      last_commit = std::chrono::steady_clock::now();
      ++answered;
      ++committed;
    }
    return true;
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string node_text = "127.0.0.1:7101";
  uint64_t count = 20000;
  size_t depth = 16;
  int connections = 4;
  bool retry = false;
  size_t value_size = 100;
  CLI::App app{"commit-load: COUNT blind puts through one node, pipelined"};
  app.add_option("--value-size", value_size, "bytes per value")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_flag("--retry-refused", retry,
               "send a put refused during a view change (not primary, busy) again, with the same "
               "transaction id, until 30 s pass without a commit");
  app.add_option("--node", node_text, "client address HOST:PORT")->capture_default_str();
  app.add_option("--count", count, "puts in all")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--depth", depth, "puts in flight per connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--connections", connections, "connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  CLI11_PARSE(app, argc, argv);
  core::HostPort node;
  try {
    node = core::parse_host_port(node_text);
  } catch (const std::invalid_argument& e) {
    std::cerr << "commit-load: --node: " << e.what() << "\n";
    return 2;
  }
  // Keys (and transaction ids) of their own: a second run on the same node writes anew.
  const std::string run = core::uuid_text(core::random_uuid()).substr(0, 8);
  std::atomic<uint64_t> committed{0}, refused{0};
  std::vector<std::string> errors(connections);
  std::vector<char> ok(connections, 0);
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < connections; ++i) {
    const uint64_t share = count / connections + (static_cast<uint64_t>(i) < count % connections);
    threads.emplace_back([&, i, share] {
      ok[i] = stream(node, run, i, share, depth, value_size, retry, committed, refused, errors[i]);
    });
  }
  for (auto& t : threads) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << "commits=" << committed << " seconds=" << seconds
            << " commits_per_s=" << static_cast<uint64_t>(committed / seconds);
  if (retry) std::cout << " refused_and_retried=" << refused;
  std::cout << "\n";
  for (int i = 0; i < connections; ++i)
    if (!ok[i]) {
      std::cerr << "commit-load: connection " << i << ": " << errors[i] << "\n";
      return 1;
    }
  return 0;
}
