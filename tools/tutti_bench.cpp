// tutti-bench: closed-loop load against a tutti cluster, with a latency histogram (tools/bench/).
// See `tutti-bench --help` and docs/performance.md. Exit codes: 0 ok, 1 the bank's balances do
// not add up, 3 no node answers (or the load failed), 4 bad usage.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "bench/driver.hpp"
#include "core/client.hpp"
#include "core/failover.hpp"

namespace {

using namespace tutti;
using nlohmann::json;

constexpr auto kTimeout = std::chrono::seconds(10);

struct Args {
  std::string nodes;
  int clients = 0;
  double duration = 0, warmup = 0;
  int pipeline = 1;
  uint64_t keys = 100000;
  size_t value_size = 100;
  std::string workload = "update";
  std::string read = "";
  bool load = false;
  bool json = false;
};

const std::map<std::string, bench::Workload> kWorkloads = {
    {"update", bench::Workload::update},   {"txn4", bench::Workload::txn4},
    {"hotspot", bench::Workload::hotspot}, {"read", bench::Workload::read},
    {"mixed", bench::Workload::mixed},     {"bank", bench::Workload::bank}};

// What --load writes for a workload: (key, value) of entry i, and how many.
struct LoadPlan {
  uint64_t count;
  std::function<std::pair<std::string, std::string>(uint64_t)> entry;
};

LoadPlan load_plan(const bench::WorkloadConfig& w) {
  std::string value(w.value_size, 'v');
  switch (w.workload) {
    case bench::Workload::hotspot:
      return {bench::kHotKeys, [](uint64_t i) { return std::pair{bench::hot_key_name(i), "0"}; }};
    case bench::Workload::bank:
      return {w.keys, [w](uint64_t i) {
                return std::pair{bench::account_name(w, i), std::to_string(bench::kBankBalance)};
              }};
    default:
      return {w.keys, [w, value](uint64_t i) { return std::pair{bench::key_name(w, i), value}; }};
  }
}

// Commits of up to 100 writes, 8 in flight, through the first node that answers; a refused or
// lost batch goes again through any node with the same transaction id.
void load(const std::vector<core::HostPort>& nodes, const bench::WorkloadConfig& w,
          const std::string& run_id, bool progress) {
  const LoadPlan plan = load_plan(w);
  constexpr uint64_t kPerCommit = 100;
  const uint64_t batches = (plan.count + kPerCommit - 1) / kPerCommit;
  auto batch = [&](uint64_t b) {
    core::CommitRequest c{fmt::format("bench-load-{}-{}", run_id, b), {}, {}};
    for (uint64_t i = b * kPerCommit; i < std::min(plan.count, (b + 1) * kPerCommit); ++i) {
      auto [k, v] = plan.entry(i);
      c.writes.push_back(core::WriteItem{std::move(k), std::move(v)});
    }
    return core::Request{0, std::move(c)};
  };
  auto retry = [&](uint64_t b) {
    auto r = core::request_any(nodes, batch(b), kTimeout);
    const auto* c = std::get_if<core::CommitReply>(&r.body);
    if (!c || !c->committed) {
      const auto* e = std::get_if<core::ErrorReply>(&r.body);
      throw std::runtime_error("loading: a batch was not committed" +
                               (e ? ": " + e->message : std::string()));
    }
  };
  core::Client client(kTimeout);
  client.connect(nodes.front());
  std::map<uint64_t, uint64_t> in_flight;  // request id -> batch
  uint64_t next = 0, done = 0;
  auto last = std::chrono::steady_clock::now();
  while (done < batches) {
    while (in_flight.size() < 8 && next < batches) {
      const uint64_t id = client.send(batch(next));
      in_flight[id] = next++;
    }
    auto r = client.receive();
    auto it = in_flight.find(r.id);
    if (it == in_flight.end()) throw std::runtime_error("loading: an answer to no request");
    const auto* c = std::get_if<core::CommitReply>(&r.body);
    if (!c || !c->committed) retry(it->second);
    in_flight.erase(it);
    ++done;
    if (progress && std::chrono::steady_clock::now() - last >= std::chrono::seconds(1)) {
      last = std::chrono::steady_clock::now();
      fmt::print(stderr, "loading: {} of {} keys\n", std::min(plan.count, done * kPerCommit),
                 plan.count);
    }
  }
  if (progress) fmt::print(stderr, "loaded {} keys\n", plan.count);
}

// The bank's invariant after the run: every account there, none below zero, the total as loaded.
bool check_bank(const std::vector<core::HostPort>& nodes, const bench::WorkloadConfig& w, json& out,
                bool to_stderr) {
  core::Client client(kTimeout);
  client.connect(nodes.front());
  uint64_t total = 0, missing = 0, negative = 0, lowest = UINT64_MAX, next = 0, done = 0;
  std::map<uint64_t, uint64_t> in_flight;
  while (done < w.keys) {
    while (in_flight.size() < 64 && next < w.keys) {
      const uint64_t id = client.send(core::Request{
          0, core::GetRequest{bench::account_name(w, next++), core::Consistency::linearizable}});
      in_flight[id] = 0;
    }
    auto r = client.receive();
    if (!in_flight.erase(r.id)) throw std::runtime_error("bank check: an answer to no request");
    const auto* v = std::get_if<core::ValueReply>(&r.body);
    if (!v) throw std::runtime_error("bank check: a read was refused");
    ++done;
    if (!v->found) {
      ++missing;
      continue;
    }
    const int64_t b = std::stoll(v->value);
    if (b < 0) {
      ++negative;
      continue;
    }
    total += static_cast<uint64_t>(b);
    lowest = std::min(lowest, static_cast<uint64_t>(b));
  }
  const uint64_t expected = w.keys * bench::kBankBalance;
  const bool ok = missing == 0 && negative == 0 && total == expected;
  fmt::print(to_stderr ? stderr : stdout,
             "bank: {} accounts, {} missing, {} below zero, total {} (expected {}), lowest {}: "
             "{}\n",
             w.keys, missing, negative, total, expected, lowest, ok ? "ok" : "VIOLATION");
  out["bank_ok"] = ok;
  out["bank_total"] = total;
  return ok;
}

json report(const bench::Totals& t, const bench::DriverConfig& c, const std::string& workload) {
  const auto ms = [&](double q) { return t.latency.quantile(q) / 1000.0; };
  json j{{"ops_per_s", t.seconds > 0 ? static_cast<double>(t.ops) / t.seconds : 0},
         {"p50_ms", ms(0.50)},
         {"p95_ms", ms(0.95)},
         {"p99_ms", ms(0.99)},
         {"p999_ms", ms(0.999)},
         {"max_ms", static_cast<double>(t.latency.max()) / 1000.0},
         {"committed", t.committed},
         {"conflicts", t.conflicts},
         {"errors", t.errors},
         {"unknown", t.unknown},
         {"ops", t.ops},
         {"failovers", t.failovers},
         {"longest_gap_ms", t.longest_gap_s * 1000.0},
         {"workload", workload},
         {"clients", c.clients},
         {"pipeline", c.pipeline},
         {"nodes", c.nodes.size()},
         {"duration_s", t.seconds}};
  if (!t.first_error.empty()) j["first_error"] = t.first_error;
  return j;
}

void print_text(const json& j) {
  fmt::print("workload {}, {} clients (pipeline {}) over {} node(s), {:.0f} s measured\n",
             j["workload"].get<std::string>(), j["clients"].get<int>(), j["pipeline"].get<int>(),
             j["nodes"].get<size_t>(), j["duration_s"].get<double>());
  fmt::print("throughput  {:.0f} ops/s ({} operations)\n", j["ops_per_s"].get<double>(),
             j["ops"].get<uint64_t>());
  fmt::print("latency ms  p50 {:.3f}  p95 {:.3f}  p99 {:.3f}  p99.9 {:.3f}  max {:.3f}\n",
             j["p50_ms"].get<double>(), j["p95_ms"].get<double>(), j["p99_ms"].get<double>(),
             j["p999_ms"].get<double>(), j["max_ms"].get<double>());
  fmt::print("committed {}  conflicts {}  errors {}  unknown {}  failovers {}\n",
             j["committed"].get<uint64_t>(), j["conflicts"].get<uint64_t>(),
             j["errors"].get<uint64_t>(), j["unknown"].get<uint64_t>(),
             j["failovers"].get<uint64_t>());
  fmt::print("longest time without a completed operation: {:.1f} ms\n",
             j["longest_gap_ms"].get<double>());
  if (j.contains("first_error"))
    fmt::print("first error: {}\n", j["first_error"].get<std::string>());
}

std::string random_run_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

int run(const Args& a) {
  bench::DriverConfig c;
  try {
    c.nodes = core::parse_host_port_list(a.nodes);
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "tutti-bench: --nodes: {}\n", e.what());
    return 4;
  }
  const bench::Workload w = kWorkloads.at(a.workload);
  c.clients = a.clients;
  c.pipeline = a.pipeline;
  c.warmup = std::chrono::milliseconds(static_cast<int64_t>(a.warmup * 1000));
  c.duration = std::chrono::milliseconds(static_cast<int64_t>(a.duration * 1000));
  const bool reads_linearizable = a.read.empty()
                                      ? (w == bench::Workload::read || w == bench::Workload::mixed)
                                      : a.read == "linearizable";
  c.workload = bench::WorkloadConfig{
      w, a.keys, a.value_size,
      reads_linearizable ? core::Consistency::linearizable : core::Consistency::local};
  c.run_id = random_run_id();
  c.progress = true;
  json out;
  try {
    core::request_any(c.nodes, core::Request{0, core::StatusRequest{}}, kTimeout);
    if (a.load) load(c.nodes, c.workload, c.run_id, true);
    if (w == bench::Workload::bank) {
      auto r = core::request_any(
          c.nodes,
          core::Request{
              0, core::GetRequest{bench::account_name(c.workload, 0), core::Consistency::local}},
          kTimeout);
      const auto* v = std::get_if<core::ValueReply>(&r.body);
      if (!v || !v->found) {
        fmt::print(stderr, "tutti-bench: bank: the accounts are not there: run with --load\n");
        return 4;
      }
    }
    out = report(bench::run_load(c), c, a.workload);
    if (w == bench::Workload::bank && !check_bank(c.nodes, c.workload, out, a.json)) {
      if (a.json) std::cout << out.dump() << "\n";
      return 1;
    }
  } catch (const std::exception& e) {  // none answers, or the load or the check failed
    fmt::print(stderr, "tutti-bench: {}\n", e.what());
    return 3;
  }
  if (a.json) {
    std::cout << out.dump() << "\n";
  } else {
    print_text(out);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{
      "tutti-bench: closed-loop clients against a tutti cluster, spread evenly over the nodes; "
      "each has one request in flight (K with --pipeline). A client whose node fails or refuses "
      "moves to the next, sending a commit again with the same transaction id, so it is counted "
      "once; one no node decides is counted unknown. Progress on stderr every second, then a "
      "report (or one JSON object with --json). Exit codes: 0 ok, 1 the bank's balances do not "
      "add up, 3 no node answers or the load failed, 4 bad usage."};
  app.add_option("--nodes", a.nodes, "HOST:PORT[,HOST:PORT...]: client addresses of the nodes")
      ->required();
  app.add_option("--clients", a.clients, "closed-loop clients")
      ->required()
      ->check(CLI::Range(1, 10000));
  app.add_option("--duration", a.duration, "seconds measured")
      ->required()
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--warmup", a.warmup, "seconds run before measuring")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--pipeline", a.pipeline, "operations in flight per client")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--keys", a.keys, "keys (bank: accounts) the operations choose from uniformly")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{4}, uint64_t{1} << 32));
  app.add_option("--value-size", a.value_size, "bytes per value written")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--workload", a.workload,
                 "update: blind put of a random key; txn4: read 4 random keys, write them back "
                 "(read-set validated); hotspot: read-modify-write of one of 100 keys (measures "
                 "conflicts; retried until committed); read; mixed: 90% reads, 10% updates; bank: "
                 "transfers between two random accounts, with the balance check at the end")
      ->capture_default_str()
      ->check(CLI::IsMember({"update", "txn4", "hotspot", "read", "mixed", "bank"}));
  app.add_option("--read", a.read,
                 "consistency of reads: linearizable (the default of read and mixed) or local (the "
                 "default of the reads inside txn4, hotspot and bank, whose read-sets the commit "
                 "validates)")
      ->check(CLI::IsMember({"local", "linearizable"}));
  app.add_flag("--load", a.load, "write the keys (bank: the accounts, 1000 each) first");
  app.add_flag("--json", a.json, "the report as one JSON object on stdout");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 4;
  }
  return run(a);
}
