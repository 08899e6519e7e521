#include "core/view_history.hpp"

#include <algorithm>

namespace tutti::core {
namespace {
constexpr size_t kViewsKept = 64;
}

void ViewHistory::add(ViewChange change) {
  change.number = ++count_;
  views_.push_back(std::move(change));
  if (views_.size() > kViewsKept) views_.pop_front();
  answer();
}

bool ViewHistory::watch(uint64_t request_id, uint64_t after, ReplyFn reply) {
  if (watchers_.size() >= max_watchers_) return false;
  watchers_.push_back(Watcher{request_id, after, std::move(reply)});
  answer();
  return true;
}

void ViewHistory::answer() {
  if (views_.empty()) return;
  std::vector<std::pair<Watcher, ViewsReply>> answers;
  std::erase_if(watchers_, [&](Watcher& w) {
    const uint64_t after = w.after == 0 ? views_.back().number - 1 : w.after;
    if (after >= views_.back().number) return false;
    ViewsReply out;
    for (const auto& v : views_)
      if (v.number > after) out.changes.push_back(v);
    answers.emplace_back(std::move(w), std::move(out));
    return true;
  });
  // Answered outside the erase: a reply can bring in a new watcher.
  for (auto& [w, out] : answers) w.reply(Response{w.request_id, std::move(out)});
}

}  // namespace tutti::core
