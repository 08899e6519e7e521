// A storage::Env for tests: a clock that moves only when told to (or while the disk works), and a
// disk that can be slow, full or failing. One per node; single-threaded.
#pragma once

#include <optional>
#include <string>

#include "storage/store.hpp"

namespace tutti::test {

class FaultEnv final : public storage::Env {
 public:
  using Kind = storage::StorageError::Kind;

  storage::Clock::time_point now() override { return now_; }
  uint64_t free_bytes(const std::filesystem::path&) override { return free_; }
  // A slow disk: each commit takes commit_delay, and the node's clock moves on by as much while
  // it waits. A failing one: the commit throws and nothing of it is written.
  void before_commit(const std::filesystem::path& dir) override {
    now_ += commit_delay;
    ++commits_tried;
    if (fail)
      throw storage::StorageError(
          *fail, *fail == Kind::disk_full
                     ? "storage: commit: no space left on the data dir's disk (injected)"
                     : "storage: commit: Input/output error on " + dir.string() + " (injected)");
  }

  // Not random: a counter, so that a run replays.
  void random_bytes(char* out, size_t n) override {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(++random_counter_ * 131);
  }

  // Moves the clock to t unless it is there already (the disk may have run it ahead).
  void advance_to(storage::Clock::time_point t) {
    if (t > now_) now_ = t;
  }
  void advance(storage::Clock::duration d) { now_ += d; }

  storage::Clock::duration commit_delay{};
  std::optional<Kind> fail;  // io (EIO on write or fsync) or disk_full (ENOSPC)
  uint64_t free_ = UINT64_MAX;
  uint64_t commits_tried = 0;

 private:
  storage::Clock::time_point now_{};
  uint64_t random_counter_ = 0;
};

}  // namespace tutti::test
