// A group of exactly one member: a real primary component of size 1. It orders what its member
// broadcasts and numbers it after the persisted history; a message is delivered as soon as it is
// persisted, since the whole group (this member) then holds it.
#pragma once

#include <deque>

#include "gcs/group.hpp"

namespace tutti::gcs {

class SoloGroup final : public Group {
 public:
  SoloGroup(MemberInfo self, uint64_t last_seqno, Limits limits = {});

  BroadcastResult broadcast(std::string payload) override;
  const View& view() const override { return view_; }
  bool has_ready() const override { return !queue_.empty() || view_pending_; }
  Ready ready() override;
  void advance(const Ready& ready, bool persisted) override;

  uint64_t last_seqno() const { return next_seqno_ - 1; }

 private:
  MemberInfo self_;
  Limits limits_;
  View view_;
  bool view_pending_ = true;  // the first Ready tells the driver its view
  uint64_t next_seqno_;
  std::deque<std::string> queue_;
  bool in_flight_ = false;
};

}  // namespace tutti::gcs
