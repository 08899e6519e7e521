#include "gcs/member.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "gcs/invariant.hpp"

namespace tutti::gcs {

bool ViewInfo::learner(const NodeId& n) const {
  return std::binary_search(learners.begin(), learners.end(), n);
}

std::string to_string(const ViewKey& id) {
  return fmt::format("{}.{}", id.epoch, id.coordinator);
}

const char* to_string(Phase phase) {
  switch (phase) {
    case Phase::idle:
      return "idle";
    case Phase::operational:
      return "operational";
    case Phase::gathering:
      return "gathering";
    case Phase::installed:
      return "installed";
  }
  return "?";
}

Member::Member(NodeId self, Durable durable, Config config, std::vector<NodeId> seeds, Time now)
    : self_(std::move(self)), d_(std::move(durable)), cfg_(config), now_(now) {
  ++d_.incarnation;
  meta_changed_ = true;
  recount_log();
  next_own_seq_ = d_.incarnation << 32;
  promised_ = d_.promised;
  for (auto& s : seeds) know(s);
  if (d_.last_primary)
    for (auto& m : d_.last_primary->members) know(m);
  change_started_ = now;
}

// ---- local requests ----

void Member::bootstrap(const std::string& new_history) {
  if (d_.history.empty()) d_.history = new_history;
  const ViewKey id{promised_.epoch + 1, self_};
  promised_ = d_.promised = id;
  const uint64_t base = d_.delivered;
  Install inst{ViewInfo{id, {self_}, true, base, {}},
               {},
               d_.last_primary ? std::optional(d_.last_primary->id) : std::nullopt,
               std::nullopt,
               {}};
  d_.previous_primary = d_.last_primary;
  d_.last_primary = inst.view;
  record_install(id);
  d_.needs_transfer = false;
  ready_.truncate_after = base;
  std::erase_if(d_.log, [&](const auto& e) { return e.first > base; });
  recount_log();
  meta_changed_ = true;
  installing_ = inst;
  phase_ = Phase::installed;
  commit_view();
  end_of_step();
}

BroadcastResult Member::broadcast(std::string payload) {
  if (leaving_self_) return {BroadcastError::not_primary, "this member is leaving the group"};
  if (payload.size() > cfg_.limits.max_message_bytes)
    return {BroadcastError::too_large,
            fmt::format("message of {} bytes is over the group's limit of {} bytes", payload.size(),
                        cfg_.limits.max_message_bytes)};
  if (own_.size() >= cfg_.limits.max_queued_messages)
    return {BroadcastError::queue_full,
            fmt::format("send queue is full ({} messages waiting)", own_.size())};
  if (d_.needs_transfer)
    return {BroadcastError::not_primary, "joining: waiting for a state transfer"};
  if (phase_ == Phase::idle || (phase_ == Phase::operational && !view_.primary))
    return {BroadcastError::not_primary,
            fmt::format("not primary: this member's component ({} members) holds no majority of "
                        "the last primary view",
                        view_.members.size())};
  // During a view change the message waits and goes out in the next view.
  DataItem item{++next_own_seq_, std::move(payload)};
  own_.push_back(item);
  if (operational_primary()) new_data_.push_back(std::move(item));
  end_of_step();
  return BroadcastResult{BroadcastError::none, "", next_own_seq_};
}

bool Member::transfer_done(uint64_t seqno, const std::map<NodeId, uint64_t>& sender_high) {
  if (!d_.needs_transfer) return true;
  // The member joined a later primary view meanwhile, further on (tutti-sim seed 194): the
  // transfer goes on to that view's base.
  if (d_.last_primary && seqno < d_.last_primary->base) return false;
  d_.needs_transfer = false;
  d_.delivered = std::max(d_.delivered, seqno);
  for (auto& [s, high] : sender_high) d_.sender_high[s] = std::max(d_.sender_high[s], high);
  meta_changed_ = true;
  const uint64_t mine = d_.sender_high[self_];
  while (!own_.empty() && own_.front().seq <= mine) own_.pop_front();
  if (operational_primary()) send_data(true);
  try_deliver();  // first: the heartbeat says whether the learner has a backlog to apply
  // A learner says so at once: the voters send it their acks again (wants_acks).
  if (view_.learner(self_)) send_heartbeat();
  end_of_step();
  return true;
}

void Member::set_flow_pause(bool pause) {
  if (pause == flow_pause_) return;
  flow_pause_ = pause;
  send_heartbeat();  // say it at once rather than at the next heartbeat
  if (pause) {
    pausing_since_.try_emplace(self_, now_);
  } else {
    pausing_since_.erase(self_);
    if (!flow_paused()) send_data(true);
  }
}

std::vector<NodeId> Member::paused_by() const {
  std::vector<NodeId> out;
  for (const auto& [n, since] : pausing_since_)
    if (std::find(view_.members.begin(), view_.members.end(), n) != view_.members.end())
      out.push_back(n);
  return out;
}

uint64_t Member::weight(const NodeId& n) const {
  auto it = cfg_.weights.find(n);
  return it == cfg_.weights.end() ? 1 : it->second;
}

bool Member::flow_paused() const {
  return !paused_by().empty();
}

void Member::leave() {
  leaving_self_ = true;
  send_heartbeat();
}

Message Member::heartbeat() const {
  Message m = make(view_.id);
  m.body = Heartbeat{held_,
                     leaving_self_,
                     std::vector<NodeId>(known_.begin(), known_.end()),
                     promised_,
                     phase_ == Phase::idle,
                     phase_ == Phase::installed,
                     flow_pause_ && !leaving_self_,
                     d_.needs_transfer,
                     applying_backlog()};
  return m;
}

void Member::send_heartbeat() {
  const Message m = heartbeat();
  announced_applying_ = std::get<Heartbeat>(m.body).applying;
  for (auto& n : known_) send(n, m);
}

std::vector<std::pair<NodeId, Message>> Member::alive(bool slow_disk) const {
  std::vector<std::pair<NodeId, Message>> out;
  if (leaving_self_) return out;
  Message m = make(view_.id);
  m.body = Alive{flow_pause_ || slow_disk};
  for (const auto& n : known_) out.emplace_back(n, m);
  return out;
}

MemberReady Member::take_ready() {
  MemberReady out = std::move(ready_);
  ready_ = MemberReady{};
  ready_deliveries_ = 0;
  ready_delivery_bytes_ = 0;
  const bool delivers = std::any_of(out.events.begin(), out.events.end(), [](const Event& e) {
    return std::holds_alternative<Delivery>(e);
  });
  if (meta_changed_ || delivers || out.truncate_after || !out.append.empty()) {
    // All of d_ but the log, whose changes the batch carries: copying the log would cost a
    // batch dear, moving it aside costs nothing.
    auto log = std::move(d_.log);
    out.meta = d_;
    d_.log = std::move(log);
  }
  out.durable_changed = meta_changed_;
  if (meta_changed_) out.early = 0;
  meta_changed_ = false;
  // What the bound held back goes in the next Ready (after this one's durable state was taken).
  if (delivered_pos_ < stable_) try_deliver();
  return out;
}

void Member::record_install(const ViewKey& id) {
  constexpr size_t kKeep = 16;
  d_.installs.push_back(id);
  if (d_.installs.size() > kKeep) d_.installs.erase(d_.installs.begin());
}

std::string Member::debug_string() const {
  std::string acks;
  for (auto& [n, h] : acks_) acks += fmt::format(" {}={}", n, h);
  std::string prop = "none";
  if (proposal_)
    prop = fmt::format("{} reports={} installed={} sent={}", to_string(proposal_->id),
                       proposal_->reports.size(), proposal_->installed.size(),
                       proposal_->install_sent);
  return fmt::format(
             "{}: phase={} view={} primary={} promised={} seen_epoch={} proposal=[{}] held={} "
             "delivered_pos={} next_pos={} acks=[{}] own={} own_ordered={} delivered={} "
             "transfer={}",
             self_, to_string(phase_), to_string(view_.id), view_.primary, to_string(promised_),
             seen_epoch_, prop, held_, delivered_pos_, next_pos_, acks, own_.size(), own_ordered_,
             d_.delivered, d_.needs_transfer) +
         (last_decision_.empty() ? "" : " decision: " + last_decision_);
}

// ---- input dispatch ----

void Member::receive(const Message& m, Time now) {
  now_ = std::max(now_, now);
  if (m.version != kGcsProtocolVersion || m.from == self_) return;
  if (!d_.history.empty() && !m.history.empty() && m.history != d_.history) return;
  last_heard_[m.from] = now_;
  know(m.from);
  seen_epoch_ = std::max(seen_epoch_, m.view.epoch);
  std::visit(
      [&](const auto& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, Heartbeat>) on_heartbeat(m, body);
        if constexpr (std::is_same_v<T, Data>) on_data(m, body);
        if constexpr (std::is_same_v<T, Order>) {
          if (phase_ == Phase::operational && m.view == view_.id) on_order_items(body.items);
        }
        if constexpr (std::is_same_v<T, Ack>) on_ack(m, body);
        if constexpr (std::is_same_v<T, Propose>) on_propose(m, body);
        if constexpr (std::is_same_v<T, StateReport>) on_state(m, body);
        if constexpr (std::is_same_v<T, Install>) on_install(m, body);
        if constexpr (std::is_same_v<T, Installed>) on_installed(m);
        if constexpr (std::is_same_v<T, Commit>) on_commit(m);
        if constexpr (std::is_same_v<T, Alive>) on_flow_pause(m.from, body.flow_pause);
      },
      m.body);
  // An Alive is sent only while the sender's batch is on its way to disk; the batch's own
  // messages follow it on the link.
  if (std::holds_alternative<Alive>(m.body)) {
    busy_.insert(m.from);
  } else if (!busy_.empty()) {  // nearly always empty: no lookup per message then
    busy_.erase(m.from);
  }
  end_of_step();
}

void Member::tick(Time now) {
  now_ = std::max(now_, now);
  if (leaving_self_) return;
  if (now_ - last_heartbeat_ >= cfg_.heartbeat_interval) {
    last_heartbeat_ = now_;
    send_heartbeat();
  }
  if (operational_primary()) retransmit();
  maybe_propose();
  end_of_step();
}

void Member::know(const NodeId& n) {
  if (n != self_ && known_.insert(n).second) known_since_[n] = now_;
}

void Member::meet(const NodeId& peer) {
  know(peer);
}

void Member::recount_log() {
  log_bytes_ = 0;
  for (const auto& [seqno, e] : d_.log) log_bytes_ += e.payload.size();
}

// Sends what this step produced that is sent once per step: new data, acknowledgements.
void Member::end_of_step() {
  // What is delivered is applied: the log in memory keeps only the tentative tail.
  while (!d_.log.empty() && d_.log.begin()->first <= d_.delivered) {
    log_bytes_ -= d_.log.begin()->second.payload.size();
    d_.log.erase(d_.log.begin());
  }
  TUTTI_INVARIANT(!d_.log.empty() || log_bytes_ == 0,
                  "the log is empty but its payloads were counted at {} bytes", log_bytes_);
  if (!new_data_.empty()) send_data(false);
  if (phase_ == Phase::operational && view_.primary && held_ > acked_sent_) {
    acked_sent_ = held_;
    Message m = make(view_.id);
    m.body = Ack{held_};
    for (const auto& n : view_.members)
      if (wants_acks(n)) send(n, m);
    acks_[self_] = held_;
    try_deliver();
  }
}

Message Member::make(const ViewKey& view) const {
  Message m;
  m.from = self_;
  m.history = d_.history;
  m.view = view;
  return m;
}

void Member::send(const NodeId& to, Message m, bool early) {
  if (to == self_) return;
  // Only a prefix goes early, so every link still gets this member's messages in order.
  if (early && ready_.early == ready_.send.size()) ++ready_.early;
  ready_.send.emplace_back(to, std::move(m));
}

void Member::send_to_members(const Message& m, bool early) {
  for (const auto& n : view_.members) send(n, m, early);
}

// ---- normal case: data -> order -> persist + ack -> stable -> deliver ----

void Member::on_heartbeat(const Message& m, const Heartbeat& h) {
  if (h.leaving) {
    leaving_.insert(m.from);
    return;
  }
  leaving_.erase(m.from);
  peer_view_[m.from] = std::max(m.view, h.promised);
  // A proposal must go above every promise, also one made to a view change this member was not
  // part of (it never saw that Propose).
  seen_epoch_ = std::max(seen_epoch_, h.promised.epoch);
  on_flow_pause(m.from, h.flow_pause);
  if (h.needs_transfer && !h.idle) {
    transferring_.insert(m.from);
  } else if (!transferring_.empty()) {
    transferring_.erase(m.from);
  }
  if (h.idle) {
    idle_peers_.insert(m.from);
  } else {
    idle_peers_.erase(m.from);
  }
  // A member that installed our view but still operates in an older one lost its Commit. The
  // sequencer sends it again, and so does the coordinator that sent it first: the sequencer
  // itself may be the one that lost it, and with a learner coordinating nobody else would
  // propose a view to end the wait (gcs-sim seed 120486).
  if (phase_ == Phase::operational && (is_sequencer() || view_.id.coordinator == self_) &&
      h.installed && h.promised == view_.id && m.view != view_.id) {
    Message commit = make(view_.id);
    commit.body = Commit{};
    send(m.from, std::move(commit));
  }
  for (const auto& n : h.known) know(n);
  // Heartbeats carry acknowledgements too, so a lost Ack is repaired within an interval.
  if (phase_ == Phase::operational && m.view == view_.id) {
    if (!h.needs_transfer && view_.learner(m.from)) synced_learners_.insert(m.from);
    if (h.applying) {
      applying_learners_.insert(m.from);
    } else {
      applying_learners_.erase(m.from);
    }
    on_ack(m, Ack{h.held});
  }
}

void Member::on_flow_pause(const NodeId& from, bool pause) {
  if (pause) {
    pausing_since_.try_emplace(from, now_);
  } else if (pausing_since_.erase(from) && !flow_paused()) {
    send_data(true);  // the group may go on: what waited goes out now
  }
}

void Member::on_data(const Message& m, const Data& d) {
  if (!operational_primary() || !is_sequencer() || m.view != view_.id) return;
  if (std::find(view_.members.begin(), view_.members.end(), m.from) == view_.members.end()) return;
  auto [it, first] = expected_seq_.try_emplace(m.from, d.lowest);
  Order order;
  for (const DataItem& item : d.items) {
    // Per-sender FIFO: only the next expected message is ordered; a gap waits for a resend.
    if (item.seq != it->second) continue;
    order.items.push_back(OrderItem{next_pos_++, m.from, item.seq, item.payload});
    ++it->second;
  }
  if (order.items.empty()) return;
  Message out = make(view_.id);
  out.body = order;
  // Out while this member writes them: the others' disks work in parallel with its own.
  send_to_members(out, true);
  on_order_items(order.items);
}

void Member::on_order_items(const std::vector<OrderItem>& items) {
  for (const OrderItem& item : items)
    if (item.pos > held_) entries_.emplace(item.pos, item);
  // Persist what is contiguous: appended to this step's Ready, written before anything is sent.
  for (auto it = entries_.find(held_ + 1); it != entries_.end() && it->first == held_ + 1;
       it = entries_.find(held_ + 1)) {
    const OrderItem& item = it->second;
    LogEntry e{view_.base + item.pos, view_.id, item.sender, item.sender_seq, item.payload};
    LogEntry& kept = d_.log[e.seqno];
    log_bytes_ += e.payload.size() - kept.payload.size();
    kept = e;
    ready_.append.push_back(std::move(e));
    if (item.sender == self_) own_ordered_ = std::max(own_ordered_, item.sender_seq);
    ++held_;
  }
}

void Member::on_ack(const Message& m, const Ack& a) {
  if (phase_ != Phase::operational || m.view != view_.id) return;
  auto it = acks_.find(m.from);
  if (it == acks_.end() || a.held <= it->second) return;
  it->second = a.held;
  try_deliver();
}

// A position is stable once every voting member of the view holds it; stable positions are
// delivered in order (safe delivery). A learner's disk does not hold the group back (it may be
// busy with a snapshot): what it lacks, the sequencer keeps for it until it holds it, and a
// learner behind at a view change catches up again (gcs/view_decision.cpp).
//
// A Ready carries at most limits.max_ready_deliveries (and about max_ready_delivery_bytes); the
// rest stays stable and undelivered until take_ready makes room. Like an ack that comes late,
// that changes when, never what, a member delivers.
void Member::try_deliver() {
  if (!operational_primary() || d_.needs_transfer) return;
  uint64_t held_by_all = held_;
  stable_ = held_;
  for (const auto& [member, held] : acks_) {
    held_by_all = std::min(held_by_all, held);
    if (!view_.learner(member)) stable_ = std::min(stable_, held);
  }
  const Limits& lim = cfg_.limits;
  while (delivered_pos_ < stable_ &&
         (ready_deliveries_ == 0 || (ready_deliveries_ < lim.max_ready_deliveries &&
                                     ready_delivery_bytes_ < lim.max_ready_delivery_bytes))) {
    auto it = entries_.find(delivered_pos_ + 1);
    TUTTI_INVARIANT(it != entries_.end(), "position {} is stable but not held", delivered_pos_ + 1);
    ++delivered_pos_;
    const OrderItem& item = it->second;
    if (view_.base + item.pos > d_.delivered) {
      deliver(view_.base + item.pos, item.sender, item.sender_seq, item.payload, false);
      ++ready_deliveries_;
      ready_delivery_bytes_ += item.payload.size();
    }
    // The sequencer keeps entries until every member has them, for retransmission.
    if (!is_sequencer()) entries_.erase(it);
  }
  if (is_sequencer()) {
    while (!entries_.empty() && entries_.begin()->first <= std::min(held_by_all, delivered_pos_))
      entries_.erase(entries_.begin());
  }
  // A learner says at once that it has applied about all it logged: the vote follows.
  if (announced_applying_ && !applying_backlog()) send_heartbeat();
}

// A learner whose transfer ended and that still has more than a view change's worth of what it
// logged meanwhile to deliver: given its vote now, its first batch in the new view would hold
// the whole backlog, and the group's deliveries with it (the voters wait for its acks).
bool Member::applying_backlog() const {
  return view_.learner(self_) && !d_.needs_transfer && phase_ == Phase::operational &&
         stable_ > delivered_pos_ + kVoteLag;
}

void Member::deliver(uint64_t seqno, const NodeId& sender, uint64_t sender_seq,
                     const std::string& payload, bool at_view_change) {
  TUTTI_INVARIANT(seqno == d_.delivered + 1, "seqno {} delivered after {}", seqno, d_.delivered);
  d_.delivered = seqno;
  uint64_t& high = d_.sender_high[sender];
  high = std::max(high, sender_seq);
  if (sender == self_)
    while (!own_.empty() && own_.front().seq <= sender_seq) own_.pop_front();
  ready_.events.push_back(Delivery{seqno, sender, payload, sender_seq, at_view_change});
}

void Member::retransmit() {
  if (is_sequencer()) {
    for (const auto& [member, held] : acks_) {
      if (member == self_ || held + 1 >= next_pos_) continue;
      Time& last = last_retransmit_[member];
      if (now_ - last < cfg_.resend_timeout) continue;
      last = now_;
      Order order;
      for (auto it = entries_.upper_bound(held); it != entries_.end(); ++it)
        order.items.push_back(it->second);
      if (order.items.empty()) continue;
      Message m = make(view_.id);
      m.body = std::move(order);
      send(member, std::move(m));
    }
  }
  if (!own_.empty() && own_.back().seq > own_ordered_ &&
      now_ - last_data_sent_ >= cfg_.resend_timeout)
    send_data(true);
}

// everything_unordered: resend every own message not seen ordered yet (after a view change or a
// timeout); else only those broadcast in this step.
void Member::send_data(bool everything_unordered) {
  Data d;
  d.lowest = own_.empty() ? next_own_seq_ + 1 : own_.front().seq;
  if (everything_unordered) {
    for (const DataItem& item : own_)
      if (item.seq > own_ordered_) d.items.push_back(item);
  } else {
    d.items = std::move(new_data_);
  }
  new_data_.clear();
  if (d.items.empty() || !operational_primary() || d_.needs_transfer) return;
  if (flow_paused()) return;  // kept in own_: sent when the pause ends
  last_data_sent_ = now_;
  Message m = make(view_.id);
  m.body = std::move(d);
  if (is_sequencer()) {
    on_data(m, std::get<Data>(m.body));
  } else {
    // New data needs nothing on this member's disk. Resends follow a view change or a
    // timeout: they keep their place behind what else this step sends.
    send(sequencer(), std::move(m), !everything_unordered);
  }
}

// A learner that still needs its transfer delivers nothing, and its own acknowledgements gate no
// delivery: only the sequencer uses them (it keeps each entry until every member holds it). So
// while it catches up it neither sends acks to the voters nor gets theirs, which on a machine it
// shares with them is a fourth of the group's messages saved. Heartbeats carry acks all the same,
// every interval; a learner that finished its transfer says so in a heartbeat at once, and the
// voters' acks come again.
bool Member::wants_acks(const NodeId& n) const {
  if (view_.learner(n) && !synced_learners_.contains(n)) return false;
  if (view_.learner(self_) && d_.needs_transfer) return n == sequencer();
  return true;
}

const NodeId& Member::sequencer() const {
  for (const auto& n : view_.members)
    if (!view_.learner(n)) return n;
  return view_.members.front();  // a primary view has a voter: no order here anyway
}

}  // namespace tutti::gcs
