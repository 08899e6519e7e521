#include "chaos/chaos.hpp"

#include <fmt/format.h>
#include <csignal>
#include <random>
#include <stdexcept>
#include <thread>

#include "core/client.hpp"

namespace tutti::chaos {

using namespace std::chrono_literals;

void History::violation(std::string what) {
  std::lock_guard lock(mu);
  if (violations.size() < 100) violations.push_back(std::move(what));
}

// ---- nodes ----

Nodes::Nodes(Topology& net, Disks& disks, std::filesystem::path dir, std::string tuttid,
             int initial)
    : net_(net),
      disks_(disks),
      dir_(std::move(dir)),
      tuttid_(std::move(tuttid)),
      active_(initial) {}

std::string Nodes::client_addr(int node) const {
  return fmt::format("{}:{}", net_.ip(node), kClientPort);
}

void Nodes::spawn(int node, bool bootstrap) {
  std::vector<std::string> argv = net_.exec_in(node);
  const std::string gcs = fmt::format("{}:{}", net_.ip(node), kGcsPort);
  std::vector<std::string> flags = {tuttid_,
                                    "--name",
                                    "n" + std::to_string(node),
                                    "--data-dir",
                                    disks_.data_dir(node).string(),
                                    "--client-addr",
                                    client_addr(node),
                                    "--gcs-addr",
                                    gcs};
  if (bootstrap) {
    flags.push_back("--bootstrap");
  } else {
    std::string peers;
    for (int i = 1; i <= net_.nodes(); ++i)
      if (i != node)
        peers += (peers.empty() ? "" : ",") + fmt::format("{}:{}", net_.ip(i), kGcsPort);
    flags.insert(flags.end(), {"--peers", peers});
  }
  argv.insert(argv.end(), flags.begin(), flags.end());
  Proc& p = procs_[node];
  p.process = test::Process(argv, dir_ / ("n" + std::to_string(node) + ".log"));
  p.running_flag = true;
  p.frozen = false;
  for (int i = 0; i < 100; ++i) {
    if (status(node)) return;
    std::this_thread::sleep_for(100ms);
  }
  throw std::runtime_error(fmt::format("chaos: n{} did not answer within 10 s of its start", node));
}

void Nodes::start_all() {
  spawn(1, true);
  for (int i = 2; i <= active_; ++i) spawn(i, false);
  for (int t = 0; t < 300; ++t) {
    bool all = true;
    for (int i = 1; i <= active_ && all; ++i) {
      auto s = status(i);
      all = s && s->primary && s->cluster_size == static_cast<uint32_t>(active_.load()) &&
            s->state == "SYNCED";
    }
    if (all) return;
    std::this_thread::sleep_for(100ms);
  }
  throw std::runtime_error("chaos: the nodes did not form one primary view within 30 s");
}

int Nodes::join() {
  const int node = active_ + 1;
  if (node > net_.nodes()) return 0;
  spawn(node, false);
  active_ = node;
  return node;
}

bool Nodes::leave(int node) {
  Proc& p = procs_.at(node);
  if (!p.running_flag) return true;
  cont(node);
  p.process.signal(SIGTERM);
  const bool exited = p.process.wait(20s) >= 0;
  if (!exited) p.process.kill9();
  p.running_flag = false;
  return exited;
}

void Nodes::kill9(int node) {
  Proc& p = procs_.at(node);
  if (!p.running_flag) return;
  p.process.kill9();
  p.running_flag = false;
  p.frozen = false;
}

void Nodes::stop(int node) {
  Proc& p = procs_.at(node);
  if (!p.running_flag || p.frozen) return;
  p.process.signal(SIGSTOP);
  p.frozen = true;
}

void Nodes::cont(int node) {
  Proc& p = procs_.at(node);
  if (!p.frozen) return;
  p.process.signal(SIGCONT);
  p.frozen = false;
}

void Nodes::restart(int node) {
  if (procs_.at(node).running_flag) return;
  spawn(node, false);
}

std::optional<core::Response> Nodes::call(int node, core::Request request,
                                          std::chrono::milliseconds timeout) const {
  try {
    core::Client c(timeout);
    c.connect(core::parse_host_port(client_addr(node)));
    return c.call(std::move(request));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<core::StatusReply> Nodes::status(int node) const {
  auto r = call(node, core::Request{0, core::StatusRequest{}}, 2s);
  if (auto* s = r ? std::get_if<core::StatusReply>(&r->body) : nullptr) return *s;
  return std::nullopt;
}

// ---- workloads ----

void Conn::move() {
  client_.reset();
  node_ = 1 + static_cast<int>(rng_() % nodes_.active());
}

core::Response Conn::call(core::Request req) {
  if (!client_) {
    client_ = std::make_unique<core::Client>(3s);
    client_->connect(core::parse_host_port(nodes_.client_addr(node_)));
  }
  try {
    return client_->call(std::move(req));
  } catch (...) {
    client_.reset();
    throw;
  }
}

void elsewhere(Conn& conn) {
  conn.move();
  std::this_thread::sleep_for(20ms);
}

namespace {

bool refused(const core::Response& r) {
  auto* e = std::get_if<core::ErrorReply>(&r.body);
  return e && (e->code == core::ErrorCode::not_primary || e->code == core::ErrorCode::busy ||
               e->code == core::ErrorCode::unavailable || e->code == core::ErrorCode::storage);
}

}  // namespace

Outcome commit(Conn& conn, const core::CommitRequest& req, bool* conflict,
               const std::atomic<bool>& stop) {
  bool uncertain = false;
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (attempt > 0) {
      if (stop && !uncertain) return Outcome::failed;
      conn.move();
      std::this_thread::sleep_for(std::chrono::milliseconds(100 + 100 * attempt));
    }
    try {
      auto r = conn.call(core::Request{0, req});
      if (auto* c = std::get_if<core::CommitReply>(&r.body)) {
        if (c->committed) return Outcome::ok;
        *conflict = true;
        return Outcome::failed;  // certification refused it: nothing written
      }
      if (!refused(r)) return uncertain ? Outcome::unknown : Outcome::failed;
    } catch (const core::ClientError& e) {
      if (e.kind() != core::ClientError::Kind::unreachable) uncertain = true;
    }
  }
  return uncertain ? Outcome::unknown : Outcome::failed;
}

void count(Counts& c, Outcome o) {
  (o == Outcome::ok ? c.ok : o == Outcome::failed ? c.failed : c.unknown)++;
}

namespace {

void insert_worker(const Nodes& nodes, const WorkloadConfig& cfg, int w, History& h,
                   const std::atomic<bool>& stop) {
  Conn conn(nodes, 1000 + w);
  conn.move();
  for (uint64_t n = 0; !stop; ++n) {
    const std::string key = fmt::format("ins/{}/{}", w, n);
    core::CommitRequest req{fmt::format("{}-ins-{}-{}", cfg.run, w, n), {}, {{key, key}}};
    bool conflict = false;
    const Outcome o = commit(conn, req, &conflict, stop);
    std::lock_guard lock(h.mu);
    count(h.inserts, o);
    if (o == Outcome::ok) h.acked.insert(key);
    if (o == Outcome::unknown) h.unknown.insert(key);
    if (o == Outcome::failed) h.refused.insert(key);
    if (o != Outcome::ok) std::this_thread::sleep_for(50ms);
  }
}

}  // namespace

// Every account's balance from one scan: the sum must be the constant and none negative.
void check_accounts(const core::ScanReply& scan, const WorkloadConfig& cfg,
                    const std::string& where, History& h) {
  int64_t sum = 0;
  for (const auto& kv : scan.entries) {
    const int64_t b = std::stoll(kv.value);
    if (b < 0) h.violation(fmt::format("bank: {} read {} = {}: negative", where, kv.key, b));
    sum += b;
  }
  const int64_t want = cfg.accounts * cfg.initial_balance;
  if (scan.entries.size() != static_cast<size_t>(cfg.accounts) || sum != want)
    h.violation(fmt::format("bank: {} read {} accounts summing to {}, want {} summing to {}", where,
                            scan.entries.size(), sum, cfg.accounts, want));
}

namespace {

// Reads two accounts (linearizable), moves an amount between them if the first has it, with
// the reads' versions in the commit: certification refuses it if either changed meanwhile.
void transfer_once(Conn& conn, const WorkloadConfig& cfg, const std::string& txn, History& h,
                   const std::atomic<bool>& stop) {
  auto& rng = conn.rng();
  const int a = static_cast<int>(rng() % cfg.accounts);
  const int b = (a + 1 + static_cast<int>(rng() % (cfg.accounts - 1))) % cfg.accounts;
  const std::string ka = fmt::format("acct/{}", a), kb = fmt::format("acct/{}", b);
  core::ValueReply va, vb;
  try {
    auto ra = conn.call(core::Request{0, core::GetRequest{ka}});
    auto rb = conn.call(core::Request{0, core::GetRequest{kb}});
    auto* pa = std::get_if<core::ValueReply>(&ra.body);
    auto* pb = std::get_if<core::ValueReply>(&rb.body);
    if (!pa || !pb || !pa->found || !pb->found) return elsewhere(conn);
    va = *pa, vb = *pb;
  } catch (const core::ClientError&) {
    return elsewhere(conn);
  }
  const int64_t amount = 1 + static_cast<int64_t>(rng() % 5);
  const int64_t from = std::stoll(va.value), to = std::stoll(vb.value);
  if (from < amount) return;
  core::CommitRequest req{txn,
                          {{ka, va.version}, {kb, vb.version}},
                          {{ka, std::to_string(from - amount)}, {kb, std::to_string(to + amount)}}};
  bool conflict = false;
  const Outcome o = commit(conn, req, &conflict, stop);
  std::lock_guard lock(h.mu);
  count(h.transfers, o);
  if (conflict) ++h.transfers.conflicts;
}

void read_accounts(Conn& conn, const WorkloadConfig& cfg, bool local, History& h) {
  core::ScanRequest req{"acct/", 0,
                        local ? core::Consistency::local : core::Consistency::linearizable};
  try {
    auto r = conn.call(core::Request{0, req});
    if (auto* s = std::get_if<core::ScanReply>(&r.body)) {
      check_accounts(*s, cfg, local ? "a local scan" : "a linearizable scan", h);
      std::lock_guard lock(h.mu);
      ++h.reads.ok;
      return;
    }
  } catch (const core::ClientError&) {
  }
  elsewhere(conn);
  std::lock_guard lock(h.mu);
  ++h.reads.failed;
}

void bank_worker(const Nodes& nodes, const WorkloadConfig& cfg, int w, History& h,
                 const std::atomic<bool>& stop) {
  Conn conn(nodes, 2000 + w);
  conn.move();
  for (uint64_t n = 0; !stop; ++n) {
    transfer_once(conn, cfg, fmt::format("{}-bank-{}-{}", cfg.run, w, n), h, stop);
    if (n % 4 == 0) read_accounts(conn, cfg, n % 8 == 0, h);
  }
}

}  // namespace

void create_accounts(const Nodes& nodes, const WorkloadConfig& cfg) {
  core::CommitRequest req{cfg.run + "-accounts", {}, {}};
  for (int a = 0; a < cfg.accounts; ++a)
    req.writes.push_back({fmt::format("acct/{}", a), std::to_string(cfg.initial_balance)});
  Conn conn(nodes, 1);
  bool conflict = false;
  const std::atomic<bool> go{false};
  if (commit(conn, req, &conflict, go) != Outcome::ok)
    throw std::runtime_error("chaos: could not create the bank's accounts");
}

void run_workloads(const Nodes& nodes, const WorkloadConfig& cfg, History& history,
                   const std::atomic<bool>& stop) {
  std::vector<std::thread> threads;
  for (int w = 0; w < cfg.insert_workers; ++w)
    threads.emplace_back([&, w] { insert_worker(nodes, cfg, w, history, stop); });
  for (int w = 0; w < cfg.bank_workers; ++w)
    threads.emplace_back([&, w] { bank_worker(nodes, cfg, w, history, stop); });
  for (int w = 0; w < cfg.list_workers; ++w)
    threads.emplace_back([&, w] { list_append_worker(nodes, cfg, w, history, stop); });
  for (int w = 0; w < cfg.register_workers; ++w)
    threads.emplace_back([&, w] { register_worker(nodes, cfg, w, history, stop); });
  for (auto& t : threads) t.join();
}

}  // namespace tutti::chaos
