// Linearizable reads in a group of several: a read waits for a marker this node sends through
// the total order after the read arrived; once the marker is applied here, so is everything
// ordered before it, and the read is served from the store. One marker at a time: reads that
// arrive while one is out wait for the next (answering reads can let their connection send more,
// which comes back while the earlier ones are still being answered).
#pragma once

#include <string>
#include <vector>

#include "core/admission.hpp"

namespace tutti::core {

class MarkedReads {
 public:
  struct Read {
    Request request;
    ReplyFn reply;
  };
  size_t size() const { return next_.size() + marked_.size(); }
  void add(Read read) { next_.push_back(std::move(read)); }
  // Reads wait and no marker is out: send one, with this id, then call sent().
  bool wants_marker() const { return !next_.empty() && out_.empty(); }
  std::string next_marker_id() const;
  void sent();
  // A marker of this node was applied: the reads it covers, to serve now (none when it is not
  // the one out).
  std::vector<Read> applied(const std::string& marker_id);
  // Every waiting read, to fail: no marker is out afterwards.
  std::vector<Read> take_all();

 private:
  std::vector<Read> next_, marked_;
  uint64_t seq_ = 0;
  std::string out_;  // the id of the marker in flight, empty when none
};

}  // namespace tutti::core
