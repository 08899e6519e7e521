// The whole-node simulator's checker: every write-set a node applies and every view it installs,
// against what the other nodes did, and every answer a client receives against the history.
#include <algorithm>

#include <fmt/format.h>

#include "core/codec.hpp"
#include "sim/node_sim.hpp"

namespace tutti::sim {
namespace {

std::string outcome_text(const core::Decision& d) {
  if (d.marker) return "marker";
  if (d.outcome.committed) return "committed";
  return d.outcome.rejected.empty() ? "conflict" : "rejected";
}

}  // namespace

void NodeCluster::on_applied(SimNode& n, const core::Applied& a) {
  const gcs::Delivery& d = a.delivery;
  const core::Decision& dec = a.decision;
  if (d.seqno != n.applied_top + 1)
    throw SimViolation(
        fmt::format("{} applied seqno {} after seqno {}", n.id, d.seqno, n.applied_top));
  // The same outcome everywhere: a duplicate names the seqno it repeats.
  const std::string outcome =
      dec.duplicate ? fmt::format("duplicate of {}", dec.outcome.seqno) : outcome_text(dec);
  const std::string hash = a.content_hash.hex();
  auto [rec, fresh] = history_.try_emplace(
      d.seqno, Record{d.payload, dec.txn_id, outcome, hash, d.origin, d.sender_seq, dec.marker});
  if (!fresh) {
    const Record& r = rec->second;
    if (r.payload != d.payload)
      throw SimViolation(fmt::format("total order: seqno {} is {} at {} but {} elsewhere", d.seqno,
                                     dec.txn_id, n.id, r.txn));
    if (r.outcome != outcome)
      throw SimViolation(fmt::format("certification: seqno {} ({}) is {} at {} but {} elsewhere",
                                     d.seqno, r.txn, outcome, n.id, r.outcome));
    if (r.hash != hash)
      throw SimViolation(fmt::format("content: after seqno {} {} hashes {} but {} elsewhere",
                                     d.seqno, n.id, hash, r.hash));
  } else if (!dec.marker && !dec.duplicate) {
    ++(dec.outcome.committed          ? result_.commits
       : dec.outcome.rejected.empty() ? result_.conflicts
                                      : result_.rejected);
  }
  if (dec.outcome.committed && !dec.duplicate && !dec.marker) {
    auto [at, first] = committed_at_.try_emplace(dec.txn_id, d.seqno);
    if (!first && at->second != d.seqno)
      throw SimViolation(fmt::format("transaction {} applied twice: at seqno {} and {}", dec.txn_id,
                                     at->second, d.seqno));
  }
  if (!dec.marker)
    trace(n.id,
          fmt::format("\"event\":\"commit\",\"seqno\":{},\"txn\":\"{}\",\"outcome\":\"{}\","
                      "\"hash\":\"{}\"{}",
                      d.seqno, dec.txn_id, outcome_text(dec), hash,
                      dec.duplicate ? ",\"duplicate\":true" : ""),
          fmt::format("apply seqno {} {} {}", d.seqno, dec.txn_id, outcome));
  n.applied_top = d.seqno;
  uint64_t& top = top_in_view_[n.in_view];
  top = std::max(top, d.seqno);
  if (!d.at_view_change) {
    uint64_t& stable = stable_top_[n.in_view];
    stable = std::max(stable, d.seqno);
  }
}

void NodeCluster::on_view(SimNode& n, const gcs::ViewEvent& v) {
  ++result_.view_changes;
  n.in_view = v.view.id;
  std::string members;
  for (const auto& m : v.view.members)
    members += fmt::format("{}\"{}\"", members.empty() ? "" : ",", m);
  trace(n.id,
        fmt::format("\"event\":\"view\",\"view\":\"{}\",\"members\":[{}],\"primary\":{},"
                    "\"base\":{}{}",
                    gcs::to_string(v.view.id), members, v.view.primary, v.view.base,
                    v.predecessor
                        ? fmt::format(",\"predecessor\":\"{}\"", gcs::to_string(*v.predecessor))
                        : ""),
        fmt::format("view {} [{}] primary={} base={}", gcs::to_string(v.view.id), members,
                    v.view.primary, v.view.base));
  if (!v.view.primary) return;
  auto [rec, first] = primaries_.try_emplace(v.view.id, Primary{v.view.members, v.view.base});
  if (!first && (rec->second.members != v.view.members || rec->second.base != v.view.base))
    throw SimViolation(
        fmt::format("primary view {} installed with two contents", gcs::to_string(v.view.id)));
  if (first) {
    for (const auto& [view, top] : top_in_view_)
      if (view < v.view.id && top > v.view.base)
        throw SimViolation(fmt::format(
            "primary view {} starts at seqno {} but seqno {} was applied in view {}: lost",
            gcs::to_string(v.view.id), v.view.base, top, gcs::to_string(view)));
    if (v.predecessor) {
      auto [succ, fresh] = successor_.try_emplace(*v.predecessor, v.view.id);
      if (!fresh && succ->second != v.view.id)
        throw SimViolation(fmt::format("two primary views {} and {} continue {}: split brain",
                                       gcs::to_string(succ->second), gcs::to_string(v.view.id),
                                       gcs::to_string(*v.predecessor)));
      auto prev = primaries_.find(*v.predecessor);
      if (prev != primaries_.end()) {
        size_t kept = 0;
        for (const auto& m : prev->second.members)
          kept += std::count(v.view.members.begin(), v.view.members.end(), m);
        if (2 * kept <= prev->second.members.size())
          throw SimViolation(fmt::format(
              "primary view {} keeps {} of the {} members of {}", gcs::to_string(v.view.id), kept,
              prev->second.members.size(), gcs::to_string(*v.predecessor)));
      }
    }
  }
  if (v.self_needs_transfer)
    schedule(Event{Event::transfer, now_ + rand(20, 200), 0, n.id, "", n.incarnation});
  else if (n.applied_top != v.view.base)
    throw SimViolation(fmt::format("{} enters primary view {} at seqno {} but its base is {}", n.id,
                                   gcs::to_string(v.view.id), n.applied_top, v.view.base));
}

// What a node's disk holds when it crashes: everything stable in its last committed primary
// view, which it acknowledged.
void NodeCluster::check_crash(SimNode& n) {
  if (!n.up) return;
  const gcs::Durable d = core::load_durable(*n.store);
  if (!d.last_committed) return;
  const gcs::ViewInfo& v = *d.last_committed;
  auto top = stable_top_.find(v.id);
  for (uint64_t s = v.base + 1; top != stable_top_.end() && s <= top->second; ++s)
    if (s > d.delivered && !d.log.count(s))
      throw SimViolation(fmt::format("{} crashes without seqno {}, stable in its view {}", n.id, s,
                                     gcs::to_string(v.id)));
}

// An answer must say what the history says of that transaction at that seqno.
void NodeCluster::check_acked(const std::string& txn, uint64_t seqno, bool committed,
                              const NodeId& at) {
  auto rec = history_.find(seqno);
  const std::string want = committed ? "committed" : "conflict";
  if (rec == history_.end() || rec->second.txn != txn || rec->second.outcome != want)
    throw SimViolation(
        fmt::format("{} answered {} {} at seqno {}, which is {}", at, txn, want, seqno,
                    rec == history_.end() ? "not applied anywhere"
                                          : rec->second.txn + " " + rec->second.outcome));
  if (!committed) return;
  auto [it, first] = acked_.try_emplace(txn, seqno);
  if (!first && it->second != seqno)
    throw SimViolation(
        fmt::format("{} acknowledged at seqno {} and at seqno {}", txn, it->second, seqno));
}

// Settled: every live node holds the same content, every acknowledged commit, and the bank.
void NodeCluster::final_checks() {
  const uint64_t top = history_.empty() ? 0 : history_.rbegin()->first;
  for (auto& [id, n] : nodes_) {
    if (!n.up) continue;
    auto txn = n.store->read();
    if (top > 0 && txn->meta().content_hash.hex() != history_.at(top).hash)
      throw SimViolation(fmt::format("{} at seqno {} hashes {}, the history {}", id, top,
                                     txn->meta().content_hash.hex(), history_.at(top).hash));
    for (const auto& [t, seqno] : acked_) {
      auto raw = txn->txn_outcome(t);
      const core::Outcome o = raw ? core::decode_outcome(*raw) : core::Outcome{};
      if (!raw || !o.committed || o.seqno != seqno)
        throw SimViolation(fmt::format("{} lost acknowledged commit {} of seqno {}", id, t, seqno));
    }
    for (const auto& [key, value] : acked_puts_) {
      auto got = txn->get(key);
      if (!got || got->value != value)
        throw SimViolation(fmt::format("{} lost acknowledged put {}", id, key));
    }
    core::ScanReply bank;
    for (auto& e : txn->scan("acct/", 1000))
      bank.entries.push_back(core::KeyValue{e.key, e.value, e.version});
    check_bank(bank, id);
  }
}

}  // namespace tutti::sim
