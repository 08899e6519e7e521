// gcs/: the group a node replicates through (DESIGN.md §5). Group drives the protocol state
// machine (gcs/member.hpp) for a node: it hands the node each Ready to persist and apply, and
// sends the Ready's messages only once the node says the batch is on disk, so no member ever
// acknowledges what it does not hold. A batch that could not be persisted is held back, with
// everything after it, and handed out again: the member falls silent rather than lie.
#pragma once

#include <memory>
#include <optional>

#include "gcs/member.hpp"

namespace tutti::gcs {

// Where a Group's messages go: the network transport (gcs/transport.hpp), or nowhere for a
// group that never has peers (tests).
class Outbox {
 public:
  virtual ~Outbox() = default;
  virtual void send(const NodeId& to, const Message& message) = 0;
};

class Group {
 public:
  Group(std::unique_ptr<Member> member, Outbox& outbox);

  Member& member() { return *member_; }
  const Member& member() const { return *member_; }
  const ViewInfo& view() const { return member_->view(); }
  bool primary() const;

  BroadcastResult broadcast(std::string payload) { return member_->broadcast(std::move(payload)); }

  bool has_ready() const { return held_.has_value() || member_->has_ready(); }
  // What to persist and apply now, after any batch held back by a failed persist. Sends the
  // Ready's early messages (MemberReady::early) at once, unless a batch is held back.
  // REQUIRES: every Ready taken before was handed to advance().
  MemberReady ready();
  // persisted: the batch is on disk, its messages go out now. Otherwise it is held and comes
  // back, merged with what follows, from the next ready().
  void advance(MemberReady ready, bool persisted);
  // Says at once, outside the Ready, that this member lives (Member::alive): for a driver whose
  // batch is long on its way to disk.
  void send_alive(bool slow_disk) {
    for (const auto& [to, message] : member_->alive(slow_disk)) outbox_.send(to, message);
  }
  // Messages taken out of a Ready that may leave before the rest of its batch is on disk (what
  // the driver knows of its storage tells it when).
  void send(const std::vector<std::pair<NodeId, Message>>& messages) {
    for (const auto& [to, message] : messages) outbox_.send(to, message);
  }
  // A batch is waiting to be persisted again: nothing is sent until it is.
  bool stuck() const { return held_.has_value(); }

 private:
  std::unique_ptr<Member> member_;
  Outbox& outbox_;
  std::optional<MemberReady> held_;
};

// Appends b after a: one batch that persists, sends and delivers what both did, in order.
void merge_ready(MemberReady& a, MemberReady b);

}  // namespace tutti::gcs
