#include "gcs/view_decision.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace tutti::gcs {
namespace {

uint64_t weight(const Weights& weights, const NodeId& n) {
  auto it = weights.find(n);
  return it == weights.end() ? 1 : it->second;
}

// Memory durability: a restarted member may have acknowledged more than it persisted, so it
// continues only beside a member that kept its memory; when none did (every member crashed), the
// view re-forms only once all of the last primary view is back.
bool memory_quorum(const Reports& reports, const ViewInfo& lp, const Weights& weights,
                   std::vector<NodeId>& continuing) {
  std::vector<NodeId> kept;
  for (const auto& n : continuing)
    if (!reports.at(n).restarted) kept.push_back(n);
  if (!kept.empty()) {
    continuing = std::move(kept);
    return majority_of(reports, lp, weights);
  }
  for (const auto& n : lp.members)
    if (!lp.learner(n) && !reports.count(n)) return false;
  return true;
}

std::string describe(const ViewKey& id, const Reports& reports, const Lineage& lin,
                     const Install& inst) {
  auto name = [](const auto& v) { return v ? to_string(v->id) : std::string("-"); };
  std::string out = fmt::format(
      "{} lp={} lcp={} primary={} base={} joiners={} reports:", to_string(id), name(lin.lp),
      name(lin.lcp), inst.view.primary, inst.view.base, inst.joiners.size());
  for (const auto& [n, r] : reports) {
    std::string installs;
    for (auto& i : r.installs) installs += to_string(i) + ",";
    out += fmt::format(" {}(lp={} prev={} lc={} held={} del={} xfer={} installs={} lineage={})", n,
                       name(r.last_primary), name(r.previous_primary), name(r.last_committed),
                       r.lineage_held, r.delivered, r.needs_transfer, installs, name(lin.of.at(n)));
  }
  return out;
}

// The joint majority (as in Raft's joint consensus): LP may never have committed, its install
// having reached only some members, and a primary may have formed beside it from the view it was
// built on, with a majority of that one. So unless LP is known to have committed, the new view
// needs a majority of LP's predecessor too, as reported by a member that persisted LP; and always
// one of the last primary view known to have committed, which some member must know of (a group
// of members that never saw a primary commit knows nothing of what formed meanwhile). Seed 92 of
// tutti-sim found a group of three that had only persisted an install go on beside the primary.
bool joint_majority(const Reports& reports, const Lineage& lin, const Weights& weights) {
  if (!lin.lcp || !majority_of(reports, *lin.lcp, weights)) return false;
  if (lin.lcp->id == lin.lp->id) return true;
  for (const auto& [n, r] : reports)
    if (r.last_primary && r.last_primary->id == lin.lp->id && r.previous_primary &&
        !majority_of(reports, *r.previous_primary, weights))
      return false;
  return true;
}

}  // namespace

// A view some present member of it never persisted was never committed (a commit needs every
// member's install): nothing was delivered in it, and its partial install must not hold the group
// back. Nor did a view commit when a later install was built on a view before it.
bool maybe_committed(const Reports& reports, const ViewInfo& v) {
  for (const auto& [n, r] : reports)
    if (r.last_primary && v.id < r.last_primary->id && r.previous_primary &&
        r.previous_primary->id < v.id)
      return false;
  for (const auto& m : v.members) {
    auto other = reports.find(m);
    if (other == reports.end()) continue;
    const auto& installs = other->second.installs;
    const bool covered = !installs.empty() && !(v.id < installs.front());
    if ((installs.empty() || covered) &&
        std::find(installs.begin(), installs.end(), v.id) == installs.end())
      return false;
  }
  return true;
}

Lineage choose_lineage(const Reports& reports) {
  Lineage out;
  for (const auto& [n, r] : reports) {
    if (r.last_committed && (!out.lcp || out.lcp->id < r.last_committed->id))
      out.lcp = &*r.last_committed;
    const ViewInfo* eff = nullptr;
    for (const auto* v : {&r.last_primary, &r.previous_primary, &r.last_committed}) {
      if (!*v || (eff && !(eff->id < (*v)->id))) continue;
      if (v == &r.last_committed || maybe_committed(reports, **v)) eff = &**v;
    }
    out.of[n] = eff;
    if (eff && (!out.lp || out.lp->id < eff->id)) out.lp = eff;
  }
  return out;
}

bool majority_of(const Reports& reports, const ViewInfo& v, const Weights& weights) {
  uint64_t present = 0, total = 0;
  for (const auto& n : v.members) {
    if (v.learner(n)) continue;  // no vote until it holds the view's state
    total += weight(weights, n);
    if (reports.count(n)) present += weight(weights, n);
  }
  return 2 * present > total;
}

// - The view is primary iff it holds a strict majority of LP, of the last committed primary view
//   the members know of and, unless LP is known committed, of LP's predecessor (joint_majority),
//   and some member continues LP;
// - its base (the end of LP's history) is the least seqno held by LP's continuing voters: a
//   seqno delivered anywhere in LP was held by every voter of LP first, so the base covers it;
// - members that continue LP deliver up to the base; the others join and need a transfer. A
//   learner of LP that caught up continues too if its log reaches the base (its acks held no
//   delivery back, so it may lag); else it catches up again.
ViewDecision decide_view(const ViewKey& id, const std::vector<NodeId>& members,
                         const Reports& reports, const Weights& weights, bool persist_before_ack) {
  const Lineage lin = choose_lineage(reports);
  ViewDecision out;
  Install& inst = out.install;
  inst.view = ViewInfo{id, members, false, 0, {}};
  uint64_t end = UINT64_MAX;
  if (lin.lp) {
    inst.predecessor = lin.lp->id;
    inst.predecessor_view = *lin.lp;
    // A member waiting for a transfer has a gap in its log: it proves nothing.
    for (const auto& [n, r] : reports) {
      if (!lin.of.at(n) || lin.of.at(n)->id != lin.lp->id || r.needs_transfer) continue;
      if (!lin.lp->learner(n)) out.continuing.push_back(n);
    }
    const bool quorum = persist_before_ack
                            ? majority_of(reports, *lin.lp, weights)
                            : memory_quorum(reports, *lin.lp, weights, out.continuing);
    for (const auto& n : out.continuing) end = std::min(end, reports.at(n).lineage_held);
    inst.view.primary = quorum && joint_majority(reports, lin, weights) && !out.continuing.empty();
  }
  if (inst.view.primary) {
    inst.view.base = end;
    for (const auto& [n, r] : reports)
      if (lin.of.at(n) && lin.of.at(n)->id == lin.lp->id && lin.lp->learner(n) &&
          !r.needs_transfer && r.lineage_held >= end)
        out.continuing.push_back(n);
    // A member that delivered exactly up to the base already holds the lineage's state (there is
    // one primary lineage per history, so its seqnos are the lineage's): it needs no transfer.
    for (const auto& [n, r] : reports)
      if (std::find(out.continuing.begin(), out.continuing.end(), n) == out.continuing.end() &&
          (r.needs_transfer || r.delivered != end))
        inst.joiners.push_back(n);
    inst.view.learners = inst.joiners;  // sorted, as the reports are
  } else {
    out.continuing.clear();
  }
  for (const auto& [n, r] : reports) inst.delivered[n] = r.delivered;
  out.text = describe(id, reports, lin, inst);
  return out;
}

}  // namespace tutti::gcs
