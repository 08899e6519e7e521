// The list-append and register workloads of tutti-chaos (chaos.hpp); their checkers are in
// checks.hpp.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <thread>

#include "chaos/chaos.hpp"

namespace tutti::chaos {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string WorkloadConfig::list_prefix(uint64_t epoch) {
  return fmt::format("la/{:06}/", epoch);
}

std::optional<std::vector<Element>> parse_list(const std::string& value) {
  std::vector<Element> out;
  const char* p = value.data();
  const char* end = p + value.size();
  while (p < end) {
    Element e = 0;
    auto [next, ec] = std::from_chars(p, end, e);
    if (ec != std::errc() || (next < end && *next != ' ')) return std::nullopt;
    out.push_back(e);
    p = next < end ? next + 1 : next;
  }
  return out;
}

namespace {

std::string format_list(const std::vector<Element>& list) {
  return fmt::format("{}", fmt::join(list, " "));
}

// One linearizable get: the value (empty when absent) and its version; nothing when the node
// did not answer it.
std::optional<core::ValueReply> get(Conn& conn, const std::string& key) {
  try {
    auto r = conn.call(core::Request{0, core::GetRequest{key, core::Consistency::linearizable}});
    if (auto* v = std::get_if<core::ValueReply>(&r.body)) return *v;
  } catch (const core::ClientError&) {
  }
  return std::nullopt;
}

// A read-only transaction: one linearizable scan of an epoch's lists, a snapshot.
void scan_lists(Conn& conn, const WorkloadConfig& cfg, uint64_t epoch, const std::string& id,
                History& h) {
  const std::string prefix = WorkloadConfig::list_prefix(epoch);
  core::ScanReply scan;
  try {
    auto r =
        conn.call(core::Request{0, core::ScanRequest{prefix, 0, core::Consistency::linearizable}});
    auto* s = std::get_if<core::ScanReply>(&r.body);
    if (!s || s->truncated) return elsewhere(conn);
    scan = *s;
  } catch (const core::ClientError&) {
    return elsewhere(conn);
  }
  ListTxn txn{id, Outcome::ok, true, false, {}, {}};
  for (int k = 0; k < cfg.list_keys; ++k) txn.reads.push_back({fmt::format("{}{}", prefix, k), {}});
  for (const auto& kv : scan.entries) {
    auto list = parse_list(kv.value);
    auto read = std::find_if(txn.reads.begin(), txn.reads.end(),
                             [&](const ListRead& r) { return r.key == kv.key; });
    if (!list || read == txn.reads.end()) {
      h.violation(fmt::format("list-append: a scan read {} = '{}', which no client wrote", kv.key,
                              kv.value.substr(0, 40)));
      return;
    }
    read->list = std::move(*list);
  }
  std::lock_guard lock(h.mu);
  h.list_txns.push_back(std::move(txn));
}

}  // namespace

// Transactions over 1-3 of the epoch's keys: each read, about half of them appended to (one or,
// now and then, two elements in one write), committed with every read's version as the read-set;
// every fifth a snapshot scan of the epoch's keys instead.
void list_append_worker(const Nodes& nodes, const WorkloadConfig& cfg, int w, History& h,
                        const std::atomic<bool>& stop) {
  Conn conn(nodes, 3000 + w);
  conn.move();
  auto& rng = conn.rng();
  Element next = (static_cast<Element>(w) + 1) * 1'000'000'000;
  for (uint64_t n = 0; !stop; ++n) {
    const uint64_t epoch = cfg.epoch(Clock::now(), cfg.list_epoch);
    const std::string id = fmt::format("{}-la-{}-{}", cfg.run, w, n);
    if (n % 5 == 4) {
      scan_lists(conn, cfg, epoch, id, h);
      continue;
    }
    std::vector<int> keys(cfg.list_keys);
    for (int k = 0; k < cfg.list_keys; ++k) keys[k] = k;
    std::shuffle(keys.begin(), keys.end(), rng);
    keys.resize(1 + rng() % 3);
    ListTxn txn{id, Outcome::failed, false, false, {}, {}};
    core::CommitRequest req{id, {}, {}};
    bool answered = true;
    for (size_t i = 0; i < keys.size() && answered; ++i) {
      const std::string key = fmt::format("{}{}", WorkloadConfig::list_prefix(epoch), keys[i]);
      auto v = get(conn, key);
      auto list = v ? (v->found ? parse_list(v->value) : std::vector<Element>{}) : std::nullopt;
      if (v && !list)
        h.violation(fmt::format("list-append: {} read {} = '{}', which no client wrote", id, key,
                                v->value.substr(0, 40)));
      answered = list.has_value();
      if (!answered) break;
      txn.reads.push_back({key, *list});
      req.reads.push_back({key, v->version});
      if (i > 0 && rng() % 2) continue;  // read only (the first key is always appended to)
      ListAppend append{key, {next++}};
      if (rng() % 4 == 0) append.elements.push_back(next++);
      list->insert(list->end(), append.elements.begin(), append.elements.end());
      req.writes.push_back({key, format_list(*list)});
      txn.appends.push_back(std::move(append));
    }
    if (!answered) {  // what it read still counts as reads of a transaction that never was
      txn.appends.clear();
      elsewhere(conn);
    } else {
      txn.outcome = commit(conn, req, &txn.conflict, stop);
    }
    std::lock_guard lock(h.mu);
    if (answered) count(h.appends, txn.outcome);
    if (txn.conflict) ++h.appends.conflicts;
    h.list_txns.push_back(std::move(txn));
  }
}

namespace {

double since(const WorkloadConfig& cfg) {
  return std::chrono::duration<double>(Clock::now() - cfg.start).count();
}

std::optional<Value> register_value(const core::ValueReply& v) {
  if (!v.found) return Value{0};
  Value out = 0;
  auto [end, ec] = std::from_chars(v.value.data(), v.value.data() + v.value.size(), out);
  if (ec != std::errc() || end != v.value.data() + v.value.size() || out == 0) return std::nullopt;
  return out;
}

}  // namespace

// Reads, blind writes and compare-and-sets (a read, then a commit whose read-set is the version
// read) of the epoch's keys, each value unique.
void register_worker(const Nodes& nodes, const WorkloadConfig& cfg, int w, History& h,
                     const std::atomic<bool>& stop) {
  Conn conn(nodes, 4000 + w);
  conn.move();
  auto& rng = conn.rng();
  for (uint64_t n = 0; !stop; ++n) {
    const uint64_t epoch = cfg.epoch(Clock::now(), cfg.register_epoch);
    RegisterOp op;
    op.key = fmt::format("reg/{:06}/{}", epoch, rng() % cfg.register_keys);
    op.kind = static_cast<RegisterOp::Kind>(rng() % 3);
    op.invoked = since(cfg);
    const std::string id = fmt::format("{}-reg-{}-{}", cfg.run, w, n);
    core::CommitRequest req{id, {}, {}};
    if (op.kind != RegisterOp::Kind::write) {
      auto v = get(conn, op.key);
      if (!v) {
        elsewhere(conn);
        continue;  // a read without an answer tells nothing
      }
      auto value = register_value(*v);
      if (!value) {
        h.violation(fmt::format("registers: {} read {} = '{}', which no client wrote", id, op.key,
                                v->value.substr(0, 40)));
        continue;
      }
      if (op.kind == RegisterOp::Kind::read) {
        op.value = *value;
        op.returned = since(cfg);
        std::lock_guard lock(h.mu);
        count(h.registers, Outcome::ok);
        h.register_ops.push_back(std::move(op));
        continue;
      }
      op.expected = *value;
      req.reads.push_back({op.key, v->version});
    }
    op.value = (static_cast<Value>(w) + 1) * 1'000'000'000 + n;
    req.writes.push_back({op.key, std::to_string(op.value)});
    bool conflict = false;
    op.outcome = commit(conn, req, &conflict, stop);
    op.returned =
        op.outcome == Outcome::unknown ? std::numeric_limits<double>::infinity() : since(cfg);
    std::lock_guard lock(h.mu);
    count(h.registers, op.outcome);
    if (conflict) ++h.registers.conflicts;
    // Refused before replication: it never happened, and tells nothing.
    if (op.outcome != Outcome::failed || conflict) h.register_ops.push_back(std::move(op));
  }
}

}  // namespace tutti::chaos
