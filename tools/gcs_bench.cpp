// gcs-bench: the group communication layer alone. N members on loopback, in one process (each
// with a thread, an io_context and a gcs::Transport of its own, as in tuttid), order S-byte
// messages with safe delivery; no disk (a member's Ready is "persisted" at once), so the figures
// are the protocol's and the network's, comparable with Corosync CPG, which keeps nothing on
// disk either. Throughput: every member broadcasts as fast as its window of messages not yet
// delivered allows; ordered messages/s and MB/s per member over the measured seconds. Latency
// (--latency): member 1 has one message in flight; send to its own delivery, p50/p99. Either way
// every member must deliver the same sequence (count and hash): exit 1 otherwise.
// Exit codes: 0 ok, 1 the members delivered different sequences, 3 the group did not form or
// did not drain, 4 bad usage.
#include <fmt/format.h>
#include <xxhash.h>

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench/histogram.hpp"
#include "core/uuid.hpp"
#include "gcs/group.hpp"
#include "gcs/transport.hpp"

namespace {

using namespace tutti;
using Clock = std::chrono::steady_clock;

enum class Phase { forming, warmup, measure, drain };

struct Args {
  int members = 3;
  size_t size = 1024;
  double duration = 10, warmup = 2;
  int window = 256;
  bool latency = false;
  uint16_t port = 7950;
  bool json = false;
};

constexpr size_t kHeader = 12;  // send time (ns), sender index

// The send time a message carries, and its delivery is measured against (one process, one clock).
int64_t clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// One member and its driver: what tuttid's Daemon does, without a store.
class BenchMember {
 public:
  BenchMember(int index, const Args& args, std::atomic<Phase>& phase, Clock::time_point start)
      : index_(index), args_(args), phase_(phase), start_(start) {}

  void start(const std::vector<std::string>& seeds, const std::string& history) {
    gcs::TransportConfig tc;
    tc.cluster_name = "gcs-bench";
    const std::string uuid = core::random_uuid();
    const std::string addr = fmt::format("127.0.0.1:{}", args_.port + index_);
    tc.self = gcs::PeerInfo{uuid, fmt::format("m{}", index_ + 1), addr, "", "SYNCED", 0};
    tc.seeds = seeds;
    auto member = std::make_unique<gcs::Member>(uuid, gcs::Durable{}, gcs::Config{},
                                                std::vector<gcs::NodeId>{}, now());
    gcs::Member* m = member.get();
    transport_ = std::make_unique<gcs::Transport>(io_, tc, [m] { return m->durable().history; });
    group_ = std::make_unique<gcs::Group>(std::move(member), *transport_);
    transport_->on_message = [this](gcs::Message msg) {
      group_->member().receive(msg, now());
      pump();
    };
    transport_->on_peer = [this](const gcs::NodeId& id) {
      group_->member().meet(id);
      pump();
    };
    if (!history.empty()) group_->member().bootstrap(history);
    transport_->start();  // throws when the port is taken: before the thread starts
    thread_ = std::thread([this] {
      tick();
      io_.run();
    });
  }

  void stop() {
    asio::post(io_, [this] {
      tick_timer_.cancel();
      transport_->stop();
      io_.stop();
    });
    if (thread_.joinable()) thread_.join();
  }

  // Read from the main thread while the member runs.
  bool formed() const { return formed_.load(); }
  uint64_t delivered() const { return delivered_.load(); }
  uint64_t measured() const { return measured_.load(); }
  uint64_t in_flight() const { return in_flight_.load(); }
  // After stop().
  uint64_t hash() const { return hash_; }
  const bench::Histogram& latency() const { return latency_; }

 private:
  gcs::Time now() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count();
  }

  void tick() {
    group_->member().tick(now());
    pump();
    tick_timer_.expires_after(std::chrono::milliseconds(10));
    tick_timer_.async_wait([this](asio::error_code ec) {
      if (!ec) tick();
    });
  }

  // Carries out every Ready at once (nothing to persist), then sends what the window allows.
  // Bounded: what is left waits for the next message or tick.
  void pump() {
    for (int round = 0; round < 64; ++round) {
      if (group_->has_ready()) {
        gcs::MemberReady ready = group_->ready();
        auto events = std::move(ready.events);
        group_->advance(std::move(ready), true);
        for (auto& ev : events) on_event(ev);
      }
      if (!fill() && !group_->has_ready()) return;
    }
  }

  void on_event(gcs::Event& ev) {
    if (auto* v = std::get_if<gcs::ViewEvent>(&ev)) {
      // A joiner of a group that delivered nothing has nothing to catch up.
      if (v->self_needs_transfer && v->view.base == group_->member().durable().delivered)
        group_->member().transfer_done(v->view.base, {});
      const auto& view = group_->view();
      formed_ = view.primary && view.members.size() == static_cast<size_t>(args_.members) &&
                view.learners.empty();
      return;
    }
    const auto& d = std::get<gcs::Delivery>(ev);
    // Chained: the hash of the whole sequence, in order.
    hash_ = XXH3_64bits_withSeed(&d.seqno, sizeof d.seqno, hash_);
    hash_ = XXH3_64bits_withSeed(d.origin.data(), d.origin.size(), hash_);
    hash_ = XXH3_64bits_withSeed(d.payload.data(), d.payload.size(), hash_);
    ++delivered_;
    if (phase_.load() == Phase::measure) ++measured_;
    if (d.origin != group_->member().self() || d.payload.size() < kHeader) return;
    int64_t sent_ns = 0;
    std::memcpy(&sent_ns, d.payload.data(), sizeof sent_ns);
    if (phase_.load() == Phase::measure)
      latency_.add(static_cast<uint64_t>(clock_ns() - sent_ns) / 1000);
    --in_flight_;
  }

  // Broadcasts while the window allows; true when it broadcast anything.
  bool fill() {
    const Phase p = phase_.load();
    if (p != Phase::warmup && p != Phase::measure) return false;
    if (args_.latency && index_ != 0) return false;
    const uint64_t window = args_.latency ? 1 : static_cast<uint64_t>(args_.window);
    bool sent = false;
    while (in_flight_.load() < window) {
      std::string payload(std::max(args_.size, kHeader), '\0');
      const int64_t now_ns = clock_ns();
      const uint32_t idx = static_cast<uint32_t>(index_);
      std::memcpy(payload.data(), &now_ns, sizeof now_ns);
      std::memcpy(payload.data() + sizeof now_ns, &idx, sizeof idx);
      // Not primary for a moment, or its queue is full: the next delivery or tick tries again.
      if (!group_->broadcast(std::move(payload)).ok()) break;
      ++in_flight_;
      sent = true;
    }
    return sent;
  }

  int index_;
  const Args& args_;
  std::atomic<Phase>& phase_;
  Clock::time_point start_;
  asio::io_context io_;
  asio::steady_timer tick_timer_{io_};
  std::unique_ptr<gcs::Transport> transport_;
  std::unique_ptr<gcs::Group> group_;
  std::thread thread_;
  std::atomic<bool> formed_{false};
  std::atomic<uint64_t> delivered_{0}, measured_{0}, in_flight_{0};
  uint64_t hash_ = 0;
  bench::Histogram latency_;
};

// Waits until pred holds, checking every 10 ms, for at most limit.
template <typename Pred>
bool wait_for(Pred pred, std::chrono::milliseconds limit) {
  const auto until = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{
      "gcs-bench: the group communication layer alone - N members on loopback, in one process, "
      "ordering messages with safe delivery (nothing on disk). Throughput: every member "
      "broadcasts as fast as its window allows; ordered messages/s and MB/s per member. "
      "--latency: member 1 has one message in flight; send to its own delivery, p50/p99. Every "
      "member must deliver the same sequence (exit 1 otherwise; 3: the group did not form or "
      "drain; 4: bad usage)."};
  app.add_option("--members", a.members, "members (1-7)")->check(CLI::Range(1, 7));
  app.add_option("--size", a.size, "bytes per message (at least 12: a send time and a sender)")
      ->check(CLI::Range(size_t{kHeader}, size_t{16} << 20));
  app.add_option("--duration", a.duration, "measured seconds")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--warmup", a.warmup, "seconds sent before the measured ones")
      ->check(CLI::Range(0.0, 600.0));
  app.add_option("--window", a.window,
                 "throughput: messages a member has broadcast and not yet delivered, at most")
      ->check(CLI::Range(1, 65536));
  app.add_flag("--latency", a.latency, "member 1 sends one message at a time; the others none");
  app.add_option("--port", a.port, "first member's port on 127.0.0.1; member i listens on PORT+i-1")
      ->check(CLI::Range(1024, 65000));
  app.add_flag("--json", a.json, "one JSON object instead of the text report");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 4;
  }
  spdlog::set_level(spdlog::level::warn);

  std::atomic<Phase> phase{Phase::forming};
  const auto start = Clock::now();
  std::vector<std::unique_ptr<BenchMember>> members;
  try {
    for (int i = 0; i < a.members; ++i) {
      members.push_back(std::make_unique<BenchMember>(i, a, phase, start));
      std::vector<std::string> seeds;
      if (i > 0) seeds.push_back(fmt::format("127.0.0.1:{}", a.port));
      members.back()->start(seeds, i == 0 ? core::random_uuid() : "");
    }
  } catch (const std::exception& e) {
    std::cerr << "gcs-bench: cannot start member " << members.size()
              << " on 127.0.0.1:" << a.port + members.size() - 1 << ": " << e.what()
              << " (--port elsewhere?)\n";
    members.pop_back();
    for (auto& m : members) m->stop();
    return 3;
  }
  auto stop_all = [&] {
    spdlog::set_level(spdlog::level::off);  // links closing as the members stop: no news
    for (auto& m : members) m->stop();
  };
  if (!wait_for(
          [&] {
            return std::all_of(members.begin(), members.end(), [](auto& m) { return m->formed(); });
          },
          std::chrono::seconds(30))) {
    std::cerr << "gcs-bench: the " << a.members
              << " members did not form one primary view with a vote each within 30 s\n";
    stop_all();
    return 3;
  }
  phase = Phase::warmup;
  // Every member sends from its own thread on its next step: the tick starts it.
  std::this_thread::sleep_for(std::chrono::duration<double>(a.warmup));
  phase = Phase::measure;
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(a.duration));
  phase = Phase::drain;
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  // What was sent is delivered everywhere before the sequences are compared.
  const bool drained = wait_for(
      [&] {
        const uint64_t first = members[0]->delivered();
        return std::all_of(members.begin(), members.end(),
                           [&](auto& m) { return m->in_flight() == 0 && m->delivered() == first; });
      },
      std::chrono::seconds(30));
  stop_all();
  if (!drained) {
    std::cerr << "gcs-bench: the members did not all deliver what was sent within 30 s of the "
                 "end\n";
    return 3;
  }
  bool same = true;
  bench::Histogram latency;
  std::vector<double> rates;
  for (auto& m : members) {
    same = same && m->delivered() == members[0]->delivered() && m->hash() == members[0]->hash();
    latency.merge(m->latency());
    rates.push_back(static_cast<double>(m->measured()) / seconds);
  }
  std::sort(rates.begin(), rates.end());
  const double rate = rates[rates.size() / 2];
  const double mb = rate * static_cast<double>(std::max(a.size, kHeader)) / 1e6;
  const double p50 = latency.count() ? latency.quantile(0.5) : 0;
  const double p99 = latency.count() ? latency.quantile(0.99) : 0;
  if (a.json) {
    nlohmann::json j{{"members", a.members},
                     {"size", a.size},
                     {"mode", a.latency ? "latency" : "throughput"},
                     {"duration_s", seconds},
                     {"ordered_msgs_per_s", rate},
                     {"mb_per_s", mb},
                     {"p50_us", p50},
                     {"p99_us", p99},
                     {"max_us", latency.max()},
                     {"samples", latency.count()},
                     {"delivered", members[0]->delivered()},
                     {"same_sequence", same}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << fmt::format(
        "{} members, {} B messages, {}: {:.0f} ordered msgs/s per member ({:.2f} MB/s), "
        "send to own delivery p50 {:.0f} us p99 {:.0f} us ({} samples); {} delivered by each, "
        "{}\n",
        a.members, a.size, a.latency ? "one in flight" : fmt::format("window {}", a.window), rate,
        mb, p50, p99, latency.count(), members[0]->delivered(),
        same ? "the same sequence everywhere" : "SEQUENCES DIFFER");
  }
  return same ? 0 : 1;
}
