// gcs::Member, its membership half: failure detection and the view change (propose, state
// reports, the coordinator's decision, install, commit). The normal case is in member.cpp.
#include <algorithm>

#include <fmt/format.h>

#include "gcs/invariant.hpp"
#include "gcs/member.hpp"
#include "gcs/view_decision.hpp"

namespace tutti::gcs {

// ---- membership: failure detection and view change ----

std::vector<NodeId> Member::alive_set() const {
  std::vector<NodeId> out{self_};
  for (const auto& n : known_) {
    auto heard = last_heard_.find(n);
    if (heard == last_heard_.end() || now_ - heard->second >= cfg_.suspect_timeout) continue;
    auto ex = excluded_until_.find(n);
    if (ex != excluded_until_.end() && ex->second > now_) continue;
    if (leaving_.count(n)) continue;
    if (pausing_outsider(n)) continue;
    // A member outside the view whose batch is on its way to disk could not answer a proposal
    // in time (a joiner busy with a transfer write, say): it is proposed once it is done.
    if (busy_.count(n) &&
        std::find(view_.members.begin(), view_.members.end(), n) == view_.members.end())
      continue;
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A member outside this member's primary view that asks the group to pause (flow control): a
// view with it would pause at once, and evict it again. It is no candidate, nor a coordinator,
// until it no longer asks, or for a while since it asked or was last a member, whichever is
// later:
// - outsider_hold (30 s): what it waits for may be the view itself (a log it can deliver only in
//   one, tutti-sim seed 52);
// - outsider_transfer_hold (10 min) while it waits for a state transfer (a learner evicted at its
//   backlog bound; a node asks for that backlog only while its transfer runs): the transfer goes
//   on outside the group, and proposing it would only hold the voters' commits while it answers
//   from a busy machine (the 30 s hold ended during a long snapshot: the voters committed nothing
//   for a second). The bound is for a joiner whose every donor is gone: a view names new ones.
bool Member::pausing_outsider(const NodeId& n) const {
  auto p = pausing_since_.find(n);
  if (!view_.primary || p == pausing_since_.end() ||
      std::find(view_.members.begin(), view_.members.end(), n) != view_.members.end())
    return false;
  Time since = p->second;
  if (auto m = last_member_at_.find(n); m != last_member_at_.end())
    since = std::max(since, m->second);
  return now_ - since < (transferring_.count(n) ? cfg_.outsider_transfer_hold : cfg_.outsider_hold);
}

// A coordinator that stalls its view change - alive, and saying so, while its disk or CPU is held
// elsewhere - would hold every member that promised it: once the change has taken twice the
// install timeout (in which the coordinator could have tried again), each passes it over as
// coordinator for a while, and the next member proposes. It stays a candidate, and its own
// proposals are still taken: the member that cannot tell may be the stalled one itself.
void Member::pass_over_stalled_coordinator() {
  if (phase_ != Phase::gathering && phase_ != Phase::installed) return;
  const NodeId& c = promised_.coordinator;
  if (c == self_ || c.empty() || now_ - change_started_ < 2 * cfg_.install_timeout) return;
  if (auto p = passed_over_until_.find(c); p != passed_over_until_.end() && p->second > now_)
    return;
  passed_over_until_[c] = now_ + cfg_.exclude_time;
}

// The smallest live member that is not passed over, nor a learner whose batch is on its way to
// disk (a joiner's transfer write may hold it for seconds, and with it any Propose: a view
// change the voters need would wait) - or the smallest, when all are.
const NodeId& Member::coordinator_of(const std::vector<NodeId>& alive) const {
  for (const auto& n : alive) {
    if (busy_.count(n) && view_.learner(n)) continue;
    auto p = passed_over_until_.find(n);
    if (p == passed_over_until_.end() || p->second <= now_) return n;
  }
  return alive.front();
}

// The smallest live member coordinates: it proposes a view of every member it hears when that
// differs from the current view, or when a view change has stalled.
void Member::maybe_propose() {
  // Flow control is bounded: a member that holds the group paused too long is evicted; it may
  // come back once it has caught up. Every member judges so (the pauser may be the coordinator),
  // and the next coordinator proposes a view without it. A learner is evicted as soon as it asks:
  // it has no vote, and catching up never pauses the group (it asks only when what it logged
  // for its transfer passed its bound; it goes on with the transfer outside the view).
  // Eviction never takes the majority away: when the members to evict, with those already
  // excluded, weigh half the view or more, the group stays paused and primary instead.
  if (phase_ == Phase::operational && view_.primary) {
    std::vector<NodeId> evict;
    for (const auto& [n, since] : pausing_since_)
      if (n != self_ && now_ - since >= (view_.learner(n) ? 0 : cfg_.max_flow_pause) &&
          std::find(view_.members.begin(), view_.members.end(), n) != view_.members.end())
        evict.push_back(n);
    uint64_t total = 0, staying = 0;
    for (const auto& n : view_.members) {
      if (view_.learner(n)) continue;  // no vote: its going takes no majority away
      total += weight(n);
      auto ex = excluded_until_.find(n);
      const bool out = std::find(evict.begin(), evict.end(), n) != evict.end() ||
                       (ex != excluded_until_.end() && ex->second > now_);
      if (!out) staying += weight(n);
    }
    if (2 * staying > total)
      for (const auto& n : evict) excluded_until_[n] = now_ + cfg_.exclude_time;
  }
  pass_over_stalled_coordinator();
  std::vector<NodeId> alive = alive_set();
  const bool coordinating = coordinator_of(alive) == self_;
  // A learner that caught up gets its vote in a view of the same members. When the smallest
  // member, who coordinates, is a learner, the sequencer proposes that view instead: its Propose
  // follows every Order it sent on each link, so the members report the same log. A learner's
  // Propose raced the Orders still on their way, and the learner it was meant to give a vote to
  // often reported less than the voters and had to catch up again, view change after view change.
  const bool learner_coordinates = phase_ == Phase::operational && view_.primary &&
                                   alive == view_.members && view_.learner(alive.front());
  const bool promoter = learner_coordinates && is_sequencer();
  if (!coordinating && !promoter) return;
  bool need = false;
  if (proposal_) {
    // A member that promised a later view change will never join this one: try again above it
    // at once rather than wait for the timeout and leave a live member out (two joiners that
    // each proposed a view with the member they joined through).
    // Bounded: two coordinators that cannot hear each other (one-way loss) would otherwise
    // outbid each other every round trip for ever; past the bound the timeout decides.
    constexpr uint32_t kMaxOutbidRetries = 3;
    const bool outbid =
        outbid_retries_ < kMaxOutbidRetries &&
        std::any_of(proposal_->members.begin(), proposal_->members.end(), [&](const NodeId& n) {
          auto pv = peer_view_.find(n);
          return n != self_ && pv != peer_view_.end() && proposal_->id < pv->second;
        });
    if (outbid) ++outbid_retries_;
    if (!outbid && now_ - proposal_->started < cfg_.install_timeout) return;
    if (!outbid)
      for (const auto& n : proposal_->members) {
        const bool answered = proposal_->install_sent ? proposal_->installed.count(n) > 0
                                                      : proposal_->reports.count(n) > 0;
        if (!answered && n != self_) excluded_until_[n] = now_ + cfg_.exclude_time;
      }
    proposal_.reset();
    alive = alive_set();
    need = outbid;
  }
  switch (phase_) {
    case Phase::idle:
      need = true;
      break;
    case Phase::operational: {
      // A member that operates in, or prepares, a later view than ours: our view is stale.
      need = need || (coordinating && alive != view_.members);
      for (const auto& n : alive) {
        if (!coordinating) break;  // the sequencer promoting learners (above) looks no further
        auto pv = peer_view_.find(n);
        if (pv != peer_view_.end() && view_.id < pv->second) need = true;
        if (idle_peers_.count(n)) need = true;  // a member restarted: it must join again
      }
      // A learner that caught up gets its vote in a view of the same members: until then it
      // counts for nothing, and the view holds only as many failures as its voters allow.
      if (view_.primary && (!learner_coordinates || promoter) &&
          (vote_ready_learner() ||
           (view_.learner(self_) && !d_.needs_transfer && !applying_backlog())))
        need = true;
      break;
    }
    default:
      need = need || now_ - change_started_ >= cfg_.install_timeout;
      break;
  }
  if (need && !(view_.primary && phase_ != Phase::idle) && still_meeting()) return;
  if (need) propose(std::move(alive));
}

// A learner that finished its transfer gets its vote once its log holds about what the group
// delivered (a view proposed earlier has a base its log does not reach, and it catches up
// again, one view change more: 12,500 write-sets short, seen in a 1 GiB join), and once it has
// delivered about all it logged meanwhile (applying_backlog).
bool Member::vote_ready_learner() const {
  return std::any_of(synced_learners_.begin(), synced_learners_.end(), [&](const NodeId& n) {
    auto a = acks_.find(n);
    return a != acks_.end() && a->second + kVoteLag >= delivered_pos_ &&
           !applying_learners_.contains(n);
  });
}

// A member outside a primary view proposes only once it has heard every member it knows of, or
// waited suspect_timeout for one it never heard: a view of part of them (the members a joiner's
// first links reached, say) pulls those out of their primary view, and another view change must
// follow at once to bring in the rest. One heard once and silent since is not waited for.
bool Member::still_meeting() const {
  for (const auto& n : known_) {
    if (leaving_.count(n) || last_heard_.count(n)) continue;
    auto ex = excluded_until_.find(n);
    if (ex != excluded_until_.end() && ex->second > now_) continue;
    auto since = known_since_.find(n);
    if (since != known_since_.end() && now_ - since->second < cfg_.suspect_timeout) return true;
  }
  return false;
}

void Member::propose(std::vector<NodeId> members) {
  const ViewKey id{std::max(promised_.epoch, seen_epoch_) + 1, self_};
  proposal_ = Proposal{id, members, now_, {}, {}, {}, false};
  Message m = make(id);
  m.body = Propose{members};
  for (const auto& n : members) send(n, m);
  on_propose(m, std::get<Propose>(m.body));
}

void Member::on_propose(const Message& m, const Propose& p) {
  if (!(promised_ < m.view)) {
    // Refused: say at once what was promised, so the proposer tries again above it.
    if (m.from != self_) send(m.from, heartbeat());
    return;
  }
  // A coordinator this member evicted (flow control) does not lead it back into a view with it
  // until the exclusion ends: like a lost proposal, which the protocol survives.
  if (auto ex = excluded_until_.find(m.from); ex != excluded_until_.end() && ex->second > now_)
    return;
  // Nor does a member outside the primary view that asks the group to pause (alive_set).
  if (pausing_outsider(m.from)) return;
  if (std::find(p.members.begin(), p.members.end(), self_) == p.members.end()) return;
  if (proposal_ && proposal_->id < m.view) proposal_.reset();  // a higher proposal wins
  // Promise: never take part in a lower view change again, even after a restart.
  promised_ = d_.promised = m.view;
  meta_changed_ = true;
  // Stop ordering and acknowledging in the old view: the report below must cover every ack.
  phase_ = Phase::gathering;
  change_started_ = now_;
  installing_.reset();
  Message reply = make(m.view);
  reply.body = state_report();
  if (m.from == self_) {
    on_state(reply, std::get<StateReport>(reply.body));
  } else {
    send(m.from, std::move(reply));
  }
}

StateReport Member::state_report() const {
  StateReport r;
  r.current = view_;
  r.last_primary = d_.last_primary;
  r.last_committed = d_.last_committed;
  r.previous_primary = d_.previous_primary;
  r.installs = d_.installs;
  r.delivered = d_.delivered;
  r.needs_transfer = d_.needs_transfer;
  r.restarted = restarted_;
  if (!d_.needs_transfer) {
    uint64_t s = d_.delivered;  // what is applied is held; the log goes on from there
    while (d_.log.count(s + 1)) ++s;
    r.lineage_held = s;
  }
  return r;
}

void Member::on_state(const Message& m, const StateReport& r) {
  if (!proposal_ || proposal_->id != m.view || proposal_->install_sent) return;
  proposal_->reports[m.from] = r;
  if (!m.history.empty()) proposal_->histories[m.from] = m.history;
  if (proposal_->reports.size() == proposal_->members.size()) decide_install();
}

// The coordinator fixes the new view from every member's report (gcs/view_decision.hpp) and
// sends it to them.
void Member::decide_install() {
  Proposal& p = *proposal_;
  ViewDecision decision =
      decide_view(p.id, p.members, p.reports, cfg_.weights, cfg_.persist_before_ack);
  const Install& inst = decision.install;
  // A coordinator that joined without a history takes the lineage's, so its Install (and every
  // member that learns the history from it) carries the right one.
  if (inst.view.primary && d_.history.empty())
    for (const auto& n : decision.continuing)
      if (auto h = p.histories.find(n); h != p.histories.end()) d_.history = h->second;
  last_decision_ = std::move(decision.text);
  p.install_sent = true;
  Message m = make(p.id);
  m.body = inst;
  for (const auto& n : p.members) send(n, m);
  on_install(m, inst);
}

void Member::on_install(const Message& m, const Install& inst) {
  if (phase_ != Phase::gathering || m.view != promised_) return;
  const bool joiner =
      std::find(inst.joiners.begin(), inst.joiners.end(), self_) != inst.joiners.end();
  if (inst.view.primary) {
    // The primary view is on disk before anything is delivered in it, on every member.
    if (d_.history.empty()) d_.history = m.history;
    d_.previous_primary = inst.predecessor_view;
    d_.last_primary = inst.view;
    record_install(inst.view.id);
    d_.needs_transfer = joiner;
    // What lies beyond the base is a tentative tail that the group did not keep. (A joiner keeps
    // what it holds below: its transfer replaces it, and until then it may be the only copy this
    // member has of what it acknowledged.)
    const uint64_t keep = inst.view.base;
    if (!d_.log.empty() && d_.log.rbegin()->first > keep) {
      ready_.truncate_after = keep;
      std::erase_if(d_.log, [&](const auto& e) { return e.first > keep; });
      recount_log();
    }
    meta_changed_ = true;
  }
  installing_ = inst;
  phase_ = Phase::installed;
  Message reply = make(m.view);
  reply.body = Installed{};
  if (m.from == self_) {
    on_installed(reply);
  } else {
    send(m.from, std::move(reply));
  }
}

void Member::on_installed(const Message& m) {
  if (!proposal_ || proposal_->id != m.view || !proposal_->install_sent) return;
  proposal_->installed.insert(m.from);
  if (proposal_->installed.size() < proposal_->members.size()) return;
  Message commit = make(proposal_->id);
  commit.body = Commit{};
  for (const auto& n : proposal_->members) send(n, commit);
  proposal_.reset();
  on_commit(commit);
}

void Member::on_commit(const Message& m) {
  if (phase_ != Phase::installed || !installing_ || installing_->view.id != m.view) return;
  commit_view();
}

// Delivers the rest of the old primary view's history (up to the new base), then starts the new
// view: every member passing from it into this view has now delivered the same messages.
void Member::commit_view() {
  const Install inst = *installing_;
  installing_.reset();
  outbid_retries_ = 0;
  const bool joiner =
      std::find(inst.joiners.begin(), inst.joiners.end(), self_) != inst.joiners.end();
  // A transfer that ended after this member's report reached the seqno it aimed at then, not
  // necessarily this view's base: the member catches up again (tutti-sim seed 12).
  if (inst.view.primary && joiner && !d_.needs_transfer) {
    d_.needs_transfer = true;
    meta_changed_ = true;
  }
  if (inst.view.primary && !joiner) {
    for (uint64_t s = d_.delivered + 1; s <= inst.view.base; ++s) {
      auto it = d_.log.find(s);
      TUTTI_INVARIANT(it != d_.log.end(),
                      "primary view {} starts at seqno {} but this member's log lacks seqno {}",
                      to_string(inst.view.id), inst.view.base, s);
      const LogEntry& e = it->second;
      deliver(s, e.sender, e.sender_seq, e.payload, true);
    }
  }
  view_ = inst.view;
  phase_ = Phase::operational;
  if (view_.primary) restarted_ = false;
  for (const auto& n : view_.members) {
    idle_peers_.erase(n);  // they belong to this view now
    last_member_at_[n] = now_;
  }
  synced_learners_.clear();
  applying_learners_.clear();
  // A pause holds this view only from its start: one asked for earlier is not held against it.
  for (auto& [n, since] : pausing_since_) since = std::max(since, now_);
  if (view_.primary) {
    d_.last_committed = view_;
    meta_changed_ = true;
  }
  next_pos_ = 1;
  expected_seq_.clear();
  entries_.clear();
  held_ = acked_sent_ = delivered_pos_ = stable_ = 0;
  acks_.clear();
  for (const auto& n : view_.members) acks_[n] = 0;
  last_retransmit_.clear();
  own_ordered_ = 0;
  new_data_.clear();
  ready_.events.push_back(
      ViewEvent{view_, inst.predecessor, inst.joiners, inst.delivered, d_.needs_transfer});
  if (view_.primary) send_data(true);
}

}  // namespace tutti::gcs
