#include "core/flow_control.hpp"

#include <algorithm>

namespace tutti::core {

FlowControl::Change FlowControl::after_batch(size_t backlog, storage::Clock::duration write_time,
                                             storage::Clock::time_point now) {
  const bool slow = write_time > limits_.flow_pause_write_time;
  if (backlog > limits_.flow_pause_backlog || (slow && backlog > 0)) {
    until_ = now + std::max<storage::Clock::duration>(write_time, limits_.flow_pause_write_time);
    if (paused_) return Change::none;
    paused_ = true;
    return Change::pause;
  }
  if (paused_ && now >= until_) {
    paused_ = false;
    return Change::resume;
  }
  return Change::none;
}

}  // namespace tutti::core
