// The checks both simulators make of primary views and of the views deliveries happen in: one
// content per primary view, one successor per primary view (no split brain), a majority (by
// weight) of the predecessor in its successor, nothing delivered in an earlier view beyond a new
// primary view's base, and what a crashing member must still hold. A broken one throws
// SimViolation.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "gcs/member.hpp"

namespace tutti::sim {

struct SimViolation : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class ViewChecker {
 public:
  explicit ViewChecker(std::map<gcs::NodeId, uint32_t> weights = {})
      : weights_(std::move(weights)) {}
  // seqno was delivered (applied) in view `in`.
  void delivered(const gcs::ViewKey& in, uint64_t seqno, bool at_view_change);
  void primary_installed(const gcs::ViewEvent& v);
  // A member whose durable state is d crashes: what was stable in its last committed primary
  // view it acknowledged (unless it was a learner there), so it must still hold it.
  void crashing(const gcs::NodeId& id, const gcs::Durable& d) const;

 private:
  uint64_t weight(const gcs::NodeId& n) const;
  struct Primary {
    std::vector<gcs::NodeId> members;
    uint64_t base;
    std::vector<gcs::NodeId> learners;  // no vote in the view
  };
  std::map<gcs::NodeId, uint32_t> weights_;
  std::map<gcs::ViewKey, Primary> primaries_;
  std::map<gcs::ViewKey, gcs::ViewKey> successor_;
  std::map<gcs::ViewKey, uint64_t> top_in_view_;  // highest seqno delivered in each view
  std::map<gcs::ViewKey, uint64_t> stable_top_;   // ... of those stable in it (all voters held)
};

// A view event as a trace line's JSON body, and as the same line for a person.
std::string view_json(const gcs::ViewEvent& v);
std::string view_text(const gcs::ViewEvent& v);

}  // namespace tutti::sim
