#include "gcs/group.hpp"

#include <algorithm>

#include "gcs/invariant.hpp"

namespace tutti::gcs {

Group::Group(std::unique_ptr<Member> member, Outbox& outbox)
    : member_(std::move(member)), outbox_(outbox) {
  TUTTI_INVARIANT(member_ != nullptr, "a group needs a member");
}

bool Group::primary() const {
  return member_->phase() == Phase::operational && member_->view().primary &&
         !member_->durable().needs_transfer;
}

MemberReady Group::ready() {
  MemberReady out = member_->take_ready();
  if (!held_) {
    // Every earlier Ready is persisted and sent (REQUIRES): the early ones need not wait.
    for (size_t i = 0; i < out.early; ++i) outbox_.send(out.send[i].first, out.send[i].second);
    out.send.erase(out.send.begin(), out.send.begin() + static_cast<ptrdiff_t>(out.early));
    out.early = 0;
    return out;
  }
  // A batch held back is not on disk, and its messages have not left: nothing overtakes them.
  out.early = 0;
  MemberReady merged = std::move(*held_);
  held_.reset();
  merge_ready(merged, std::move(out));
  return merged;
}

void Group::advance(MemberReady ready, bool persisted) {
  if (!persisted) {
    held_ = std::move(ready);
    return;
  }
  for (const auto& [to, message] : ready.send) outbox_.send(to, message);
}

void merge_ready(MemberReady& a, MemberReady b) {
  if (b.truncate_after) {
    const uint64_t t = *b.truncate_after;
    std::erase_if(a.append, [t](const LogEntry& e) { return e.seqno > t; });
    a.truncate_after = a.truncate_after ? std::min(*a.truncate_after, t) : t;
  }
  if (b.meta) a.meta = std::move(b.meta);  // the later state
  a.durable_changed = a.durable_changed || b.durable_changed;
  for (auto& e : b.append) a.append.push_back(std::move(e));
  for (auto& s : b.send) a.send.push_back(std::move(s));
  for (auto& e : b.events) a.events.push_back(std::move(e));
}

}  // namespace tutti::gcs
