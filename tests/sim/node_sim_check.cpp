// The whole-node simulator's checker: every write-set a node applies and every view it installs,
// against what the other nodes did, and every answer a client receives against the history.
#include <algorithm>

#include <fmt/format.h>

#include "core/applier.hpp"
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
  } else {
    for (auto [t, end] = told_ahead_.equal_range(d.seqno); t != end; ++t)
      if (t->second.txn != dec.txn_id || t->second.outcome != outcome)
        throw SimViolation(fmt::format("{} answered {} {} at seqno {}, which is {} {}",
                                       t->second.at, t->second.txn, t->second.outcome, d.seqno,
                                       dec.txn_id, outcome));
    told_ahead_.erase(d.seqno);
  }
  if (fresh && !dec.marker && !dec.duplicate) {
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
  if (a.by_transfer) {
    ++result_.transferred;
  } else {
    views_.delivered(n.in_view, d.seqno, d.at_view_change);
  }
}

void NodeCluster::on_view(SimNode& n, const gcs::ViewEvent& v) {
  ++result_.view_changes;
  n.in_view = v.view.id;
  trace(n.id, view_json(v), view_text(v));
  if (!v.view.primary) return;
  views_.primary_installed(v);
  if (!v.self_needs_transfer && n.applied_top != v.view.base)
    throw SimViolation(fmt::format("{} enters primary view {} at seqno {} but its base is {}", n.id,
                                   gcs::to_string(v.view.id), n.applied_top, v.view.base));
}

// A snapshot transfer is the donor's state at its seqno: the same content as every node had
// after that seqno. The store's hash is recomputed from its data: the joiner's running sum, also
// of a snapshot merged into a part carried over, must be the content's.
void NodeCluster::on_snapshot(SimNode& n, uint64_t seqno, const storage::ContentHash& hash,
                              bool carried) {
  if (seqno < n.applied_top)
    throw SimViolation(fmt::format("{} installed a snapshot at seqno {} below its seqno {}", n.id,
                                   seqno, n.applied_top));
  auto rec = history_.find(seqno);
  if (seqno > 0 && (rec == history_.end() || rec->second.hash != hash.hex()))
    throw SimViolation(fmt::format("{}: the snapshot at seqno {} hashes {}, not {}", n.id, seqno,
                                   hash.hex(),
                                   rec == history_.end() ? "(never applied)" : rec->second.hash));
  if (n.store->read()->meta().content_hash != hash)
    throw SimViolation(
        fmt::format("{}: the store holds another content than the snapshot at {}", n.id, seqno));
  try {
    n.store->verify(true);
  } catch (const storage::StorageError& e) {
    throw SimViolation(
        fmt::format("{}: after the snapshot at seqno {}: {}", n.id, seqno, e.what()));
  }
  trace(n.id, fmt::format("\"event\":\"snapshot\",\"seqno\":{},\"carried\":{}", seqno, carried),
        fmt::format("snapshot installed at seqno {}{}", seqno,
                    carried ? ", carrying a part staged before" : ""));
  n.applied_top = seqno;
  ++result_.snapshots;
  result_.carried += carried;
}

// What a node's disk holds when it crashes: everything stable in its last committed primary
// view, which it acknowledged.
void NodeCluster::check_crash(SimNode& n) {
  if (n.up) views_.crashing(n.id, core::load_durable(*n.store));
}

// An answer must say what the history says of that transaction at that seqno.
void NodeCluster::check_acked(const std::string& txn, uint64_t seqno, bool committed,
                              const NodeId& at) {
  auto rec = history_.find(seqno);
  const std::string want = committed ? "committed" : "conflict";
  // Told before any node's batch with it committed (core/persister.hpp): checked when one does.
  if (rec == history_.end()) told_ahead_.emplace(seqno, ToldAhead{txn, want, at});
  if (rec != history_.end() && (rec->second.txn != txn || rec->second.outcome != want))
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
  for (const auto& [seqno, t] : told_ahead_)
    throw SimViolation(fmt::format("{} answered {} {} at seqno {}, which no node applied", t.at,
                                   t.txn, t.outcome, seqno));
  const uint64_t top = history_.empty() ? 0 : history_.rbegin()->first;
  for (auto& [id, n] : nodes_) {
    if (!n.up) continue;
    auto txn = n.store->read();
    if (top > 0 && txn->meta().content_hash.hex() != history_.at(top).hash)
      throw SimViolation(fmt::format("{} at seqno {} hashes {}, the history {}", id, top,
                                     txn->meta().content_hash.hex(), history_.at(top).hash));
    for (const auto& [t, seqno] : acked_) {
      auto o = core::counted_record(*txn, t, txn->meta().last_committed + 1);
      if (!o || !o->committed || o->seqno != seqno)
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
