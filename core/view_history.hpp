// The view changes a node installed since it started (the latest few), numbered, and the clients
// waiting for the next one (`gcs-tool watch`).
#pragma once

#include <deque>
#include <vector>

#include "core/admission.hpp"

namespace tutti::core {

class ViewHistory {
 public:
  explicit ViewHistory(size_t max_watchers) : max_watchers_(max_watchers) {}
  // Numbers the change and answers whoever waits for it.
  void add(ViewChange change);
  // Answers with the changes numbered above after (0: from the current one) once there are any;
  // false when too many wait already.
  bool watch(uint64_t request_id, uint64_t after, ReplyFn reply);

 private:
  void answer();

  struct Watcher {
    uint64_t request_id;
    uint64_t after;
    ReplyFn reply;
  };
  size_t max_watchers_;
  std::deque<ViewChange> views_;
  uint64_t count_ = 0;
  std::vector<Watcher> watchers_;
};

}  // namespace tutti::core
