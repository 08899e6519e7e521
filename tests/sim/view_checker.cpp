#include "sim/view_checker.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace tutti::sim {
namespace {

std::string members_json(const gcs::ViewInfo& v) {
  std::string out;
  for (const auto& m : v.members) out += fmt::format("{}\"{}\"", out.empty() ? "" : ",", m);
  return out;
}

}  // namespace

uint64_t ViewChecker::weight(const gcs::NodeId& n) const {
  auto it = weights_.find(n);
  return it == weights_.end() ? 1 : it->second;
}

void ViewChecker::delivered(const gcs::ViewKey& in, uint64_t seqno, bool at_view_change) {
  // A member that restarted delivers its log's tail as it enters its first view, in no view of
  // its own: that view's other members label the same seqnos (tutti-sim seed 29 tripped on it).
  if (in == gcs::ViewKey{}) return;
  uint64_t& top = top_in_view_[in];
  top = std::max(top, seqno);
  if (!at_view_change) {
    uint64_t& stable = stable_top_[in];
    stable = std::max(stable, seqno);
  }
}

void ViewChecker::primary_installed(const gcs::ViewEvent& v) {
  const std::string id = gcs::to_string(v.view.id);
  auto [rec, first] =
      primaries_.try_emplace(v.view.id, Primary{v.view.members, v.view.base, v.view.learners});
  if (!first && (rec->second.members != v.view.members || rec->second.base != v.view.base))
    throw SimViolation(fmt::format("primary view {} installed with two contents", id));
  if (!first) return;
  // Safe delivery across views: nothing delivered in an earlier view may lie beyond the new
  // view's base (a coordinator paused mid-change may commit its view late: later views count
  // only against later ones).
  for (const auto& [view, top] : top_in_view_)
    if (view < v.view.id && top > v.view.base)
      throw SimViolation(
          fmt::format("primary view {} starts at seqno {} but seqno {} was "
                      "delivered in view {}: a delivered message is lost",
                      id, v.view.base, top, gcs::to_string(view)));
  if (!v.predecessor) return;
  const std::string pred = gcs::to_string(*v.predecessor);
  auto [succ, fresh] = successor_.try_emplace(*v.predecessor, v.view.id);
  if (!fresh && succ->second != v.view.id)
    throw SimViolation(fmt::format("two primary views {} and {} continue {}: split brain",
                                   gcs::to_string(succ->second), id, pred));
  auto prev = primaries_.find(*v.predecessor);
  if (prev == primaries_.end()) return;
  uint64_t kept = 0, total = 0;
  // Learners (members that entered needing a transfer) have no vote.
  for (const auto& m : prev->second.members) {
    if (std::count(prev->second.learners.begin(), prev->second.learners.end(), m)) continue;
    total += weight(m);
    if (std::count(v.view.members.begin(), v.view.members.end(), m)) kept += weight(m);
  }
  if (2 * kept <= total)
    throw SimViolation(fmt::format("primary view {} holds weight {} of {} of {}: no majority", id,
                                   kept, total, pred));
}

void ViewChecker::crashing(const gcs::NodeId& id, const gcs::Durable& d) const {
  if (!d.last_committed) return;
  const gcs::ViewInfo& v = *d.last_committed;
  if (v.learner(id)) return;  // delivery never waited for a learner's copy
  auto top = stable_top_.find(v.id);
  for (uint64_t s = v.base + 1; top != stable_top_.end() && s <= top->second; ++s)
    if (s > d.delivered && !d.log.count(s))
      throw SimViolation(fmt::format("{} crashes without seqno {}, stable in its view {}", id, s,
                                     gcs::to_string(v.id)));
}

std::string view_json(const gcs::ViewEvent& v) {
  return fmt::format(
      "\"event\":\"view\",\"view\":\"{}\",\"members\":[{}],\"primary\":{},\"base\":{}{}",
      gcs::to_string(v.view.id), members_json(v.view), v.view.primary, v.view.base,
      v.predecessor ? fmt::format(",\"predecessor\":\"{}\"", gcs::to_string(*v.predecessor)) : "");
}

std::string view_text(const gcs::ViewEvent& v) {
  return fmt::format("view {} [{}] primary={} base={}", gcs::to_string(v.view.id),
                     members_json(v.view), v.view.primary, v.view.base);
}

}  // namespace tutti::sim
