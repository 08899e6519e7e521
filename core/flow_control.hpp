// Flow control, the node's side: a node whose disk falls behind asks the group to pause rather
// than fall further behind - when a batch found more write-sets waiting than the bound, or took
// longer than the bound to write while write-sets waited for it. A slow write with nothing
// waiting (the process was stopped meanwhile, say) is no backlog and pauses nothing. The pause
// is released once no backlog has been seen for as long as the slow write took (at least the
// bound). The group's side (who pauses, eviction) is in gcs/member.cpp.
#pragma once

#include "core/admission.hpp"

namespace tutti::core {

class FlowControl {
 public:
  explicit FlowControl(const NodeLimits& limits) : limits_(limits) {}
  enum class Change { none, pause, resume };
  // A batch of backlog write-sets took write_time to reach the disk.
  Change after_batch(size_t backlog, storage::Clock::duration write_time,
                     storage::Clock::time_point now);
  bool paused() const { return paused_; }

 private:
  NodeLimits limits_;
  bool paused_ = false;
  storage::Clock::time_point until_{};
};

}  // namespace tutti::core
