// The node's side of state transfer (core/transfer.hpp): it starts a Joiner when a primary view
// says it is behind, sends the Joiner's pulls through its TransferLink, writes what they bring
// in its own batches (one at a time, in order with the group's), and hands the group the seqno
// it reached. The donor's side is Donor, answering pulls in handle().
#include <spdlog/spdlog.h>

#include "core/codec.hpp"
#include "core/node.hpp"
#include "core/uuid.hpp"
#include "gcs/invariant.hpp"

namespace tutti::core {

void Node::set_transfer_link(TransferLink link, std::vector<std::string> preferred_donors) {
  link_ = std::move(link);
  preferred_donors_ = std::move(preferred_donors);
}

void Node::start_transfer(const gcs::ViewEvent& ev) {
  std::vector<gcs::NodeId> donors;
  for (const auto& m : ev.view.members)
    if (m != node_uuid_ && !ev.view.learner(m)) donors.push_back(m);
  if (!joiner_) {
    const auto& d = group_.member().durable();
    ++link_epoch_;
    joiner_ =
        std::make_unique<Joiner>(d.history, name_, last_committed_, d.sender_high,
                                 Joiner::Options{preferred_donors_, limits_.transfer_chunk_bytes,
                                                 kTransferTimeout, limits_.snapshot_busy_share},
                                 store_.env().now(), staged_snapshot());
    joiner_->set_donor_name([this](const gcs::NodeId& id) { return member_name(id); });
    if (last_committed_ >= ev.view.base) {
      // Its report to this view change predates the transfer that just ended.
      spdlog::info("this node holds seqno {} already, the view's base is seqno {}: caught up",
                   last_committed_, ev.view.base);
    } else {
      spdlog::info(
          "this node is behind the group: it applied up to seqno {}, the group is at seqno {}: "
          "catching up by state transfer (writes and linearizable reads are refused meanwhile)",
          last_committed_, ev.view.base);
    }
    if (!link_)
      spdlog::error("this node has no way to reach a donor: it cannot catch up (a test setup?)");
  }
  joiner_->set_target(ev.view.base, std::move(donors));
  pull();
}

// The snapshot this node's staged tables hold part of, from before a restart; none when the
// record does not decode (a newer build's, say): the next snapshot starts over and replaces it.
std::optional<SnapshotResume> Node::staged_snapshot() {
  auto raw = store_.read()->meta_get(kMetaSnapshotResume);
  if (!raw) return std::nullopt;
  try {
    return decode_snapshot_resume(*raw);
  } catch (const DecodeError& e) {
    spdlog::warn("the record of the snapshot staged here does not decode ({}): starting over",
                 e.what());
    return std::nullopt;
  }
}

void Node::tick() {
  const auto now = store_.env().now();
  keep_alive(now);
  donor_.tick(now);
  if (!joiner_) return;
  if (joiner_->done() && !persisting_) return finish_transfer();
  if (auto line = joiner_->progress_line(now); !line.empty()) spdlog::info("{}", line);
  pace_transfer(joiner_backlog());
  pull();
  if (joiner_->has_write()) schedule_flush();
}

void Node::pull() {
  if (!link_ || !joiner_) return;
  auto p = joiner_->poll(store_.env().now());
  if (!p) return;
  const uint64_t epoch = link_epoch_;
  const uint64_t number = p->number;
  link_(p->donor, Request{0, std::move(p->request)},
        [this, epoch, number](std::optional<Response> reply) {
          if (epoch != link_epoch_ || !joiner_) return;  // a transfer since replaced
          joiner_->on_reply(number, std::move(reply), store_.env().now());
          if (joiner_->has_write()) schedule_flush();
          pull();
        });
}

// A transfer write is on disk: report what it applied, and hand over once all is there.
void Node::after_transfer_write(PersistResult& r) {
  if (!r.batch.transfer || !joiner_) return;
  if (!r.transfer_rejected.empty()) {
    joiner_->write_rejected(r.transfer_rejected, store_.env().now());
    return pull();
  }
  const TransferWrite& w = *r.batch.transfer;
  const auto& deliveries = r.transferred.deliveries;
  TUTTI_INVARIANT(deliveries.size() == r.transfer_certified.size(),
                  "{} write-sets transferred, {} certified", deliveries.size(),
                  r.transfer_certified.size());
  if (observer_) {
    for (size_t i = 0; i < deliveries.size(); ++i)
      observer_->applied(Applied{deliveries[i], r.transfer_certified[i].decision,
                                 r.transfer_certified[i].hash, true});
    if (w.kind == TransferWrite::Kind::install)
      observer_->snapshot_installed(w.seqno, w.content_hash, w.reconcile.has_value());
  }
  joiner_->written(r.transferred, store_.env().now());
  TUTTI_INVARIANT(last_committed_ == joiner_->applied(),
                  "a transfer reached seqno {} but the store is at seqno {}", joiner_->applied(),
                  last_committed_);
  if (joiner_->done()) return finish_transfer();
  pull();
}

void Node::finish_transfer() {
  const uint64_t seqno = joiner_->applied();
  if (!transfer_done(seqno, joiner_->sender_high())) {
    const gcs::ViewInfo& v = *group_.member().durable().last_primary;
    spdlog::info("state transfer: at seqno {}, but the group moved on to seqno {} meanwhile", seqno,
                 v.base);
    std::vector<gcs::NodeId> donors;
    for (const auto& m : v.members)
      if (m != node_uuid_ && !v.learner(m)) donors.push_back(m);
    joiner_->set_target(v.base, std::move(donors));
    return pull();
  }
  spdlog::info("state transfer done: this node holds the group's state up to seqno {}", seqno);
  joiner_.reset();
  ++link_epoch_;
}

// What a joiner logs from the group while it catches up stays on its disk (and in memory) until
// the transfer reaches it: past max_joiner_backlog write-sets (or max_joiner_backlog_bytes) it asks
// the group to pause, and the group, which never pauses for a learner, evicts it at once and
// proposes it again once it stops asking; it then catches up the rest from what it applied.
// A node that waits for a transfer no primary view has started yet (one that restarted) does
// not start asking: outside the group its backlog does not grow, and only a view can name its
// target (the group holds out a member that asks while it waits for a transfer, docs/gcs.md).
void Node::joiner_flow() {
  const Backlog backlog = joiner_backlog();
  if (!backlog_paused_ && backlog.over(1) &&
      (joiner_ || !group_.member().durable().needs_transfer)) {
    backlog_paused_ = true;
    spdlog::warn(
        "catching up: {} write-sets ({:.1f} MB) logged from the group wait for the transfer, over "
        "the bound of {} write-sets or {:.1f} MB: asking the group to pause, which leaves this "
        "node out of the view until its transfer has caught up with what it logged",
        backlog.count, static_cast<double>(backlog.bytes) / 1e6, backlog.max_count,
        static_cast<double>(backlog.max_bytes) / 1e6);
  } else if (backlog_paused_ && !backlog.over(2)) {
    backlog_paused_ = false;
    spdlog::info("catching up: the backlog is down to {} write-sets: letting the group go on",
                 backlog.count);
  }
  if (!backlog_paused_) adjust_flow(0, {});  // a pause of its own disk's ends
  group_.member().set_flow_pause(backlog_paused_ || flow_.paused());
  pace_transfer(backlog);
}

Node::Backlog Node::joiner_backlog() const {
  return Backlog{group_.member().durable().log.size(), group_.member().log_bytes(),
                 limits_.max_joiner_backlog, limits_.max_joiner_backlog_bytes};
}

// The group is busy while it delivers write-sets (this node logs them for its transfer): the
// snapshot then yields most of the machine to the group's commits. Not once the backlog is half
// its bound: past the bound the group would pause for the joiner, which costs it far more.
void Node::pace_transfer(const Backlog& backlog) {
  const auto now = store_.env().now();
  if (backlog.count > backlog_seen_) group_busy_at_ = now;
  backlog_seen_ = backlog.count;
  if (!joiner_) return;
  joiner_->set_group_busy(now - group_busy_at_ < kBusyLately && !backlog.over(2));
}

// A node behind the group refuses what needs the group's state; one that caught up waits for
// the view change that gives it its vote.
std::optional<ErrorReply> Node::catching_up() const {
  if (group_.member().durable().needs_transfer)
    return error_reply(ErrorCode::not_primary,
                       "not primary: " + (joiner_ ? joiner_->describe()
                                                  : std::string("waiting for a state transfer")));
  if (group_.primary() && group_.view().learner(node_uuid_))
    return error_reply(ErrorCode::not_primary,
                       fmt::format("not primary: caught up by state transfer at seqno {}; waiting "
                                   "for the view change that gives this node its vote",
                                   last_committed_));
  return std::nullopt;
}

// A --local read answers from whatever consistent state the node holds; a node that holds none
// of the cluster's yet (never joined, or joining with an empty store, its data lost say) would
// answer "not found" for every key, which no state of the cluster says: it refuses instead.
std::optional<ErrorReply> Node::holds_no_state() const {
  const auto& d = group_.member().durable();
  if (last_committed_ > 0 || (!d.history.empty() && !d.needs_transfer)) return std::nullopt;
  if (d.history.empty())
    return error_reply(ErrorCode::unavailable,
                       "not served: this node has not joined a cluster yet, so it holds none of "
                       "its state; ask a member");
  return error_reply(
      ErrorCode::unavailable,
      "not served: this node holds none of the cluster's state yet (" +
          (joiner_ ? joiner_->describe() : std::string("waiting for a state transfer")) +
          "); ask another member");
}

}  // namespace tutti::core
