#include "gcs/solo_group.hpp"

#include <cassert>
#include <stdexcept>

#include <fmt/format.h>

namespace tutti::gcs {

SoloGroup::SoloGroup(MemberInfo self, uint64_t last_seqno, Limits limits)
    : self_(std::move(self)), limits_(limits), next_seqno_(last_seqno + 1) {
  view_.id = ViewId{1, self_.uuid};
  view_.members = {self_};
  view_.primary = true;
}

BroadcastResult SoloGroup::broadcast(std::string payload) {
  if (payload.size() > limits_.max_message_bytes)
    return {BroadcastError::too_large,
            fmt::format("message of {} bytes is over the group's limit of {} bytes", payload.size(),
                        limits_.max_message_bytes)};
  if (queue_.size() >= limits_.max_queued_messages)
    return {BroadcastError::queue_full,
            fmt::format("send queue is full ({} messages waiting)", queue_.size())};
  queue_.push_back(std::move(payload));
  return {};
}

Ready SoloGroup::ready() {
  // One batch at a time: the next batch's seqnos depend on whether this one persisted.
  if (in_flight_) throw std::logic_error("SoloGroup::ready() before advance()");
  Ready r;
  if (view_pending_) r.view = view_;
  uint64_t seqno = next_seqno_;
  for (auto& payload : queue_) {
    r.persist.push_back(Delivery{seqno++, self_.uuid, std::move(payload)});
  }
  queue_.clear();
  r.deliver = r.persist;
  in_flight_ = true;
  return r;
}

void SoloGroup::advance(const Ready& ready, bool persisted) {
  assert(in_flight_);
  in_flight_ = false;
  if (!persisted) return;  // seqnos are given again to later messages: none was delivered
  if (ready.view) view_pending_ = false;
  if (!ready.persist.empty()) {
    assert(ready.persist.front().seqno == next_seqno_);
    next_seqno_ = ready.persist.back().seqno + 1;
  }
}

}  // namespace tutti::gcs
