// What a node asks of the operating system that its decisions depend on: the time, the free space
// on the data dir's disk, the moment a write transaction reaches the disk, and randomness (for
// node and history ids). The shipped Env
// (default_env) uses the real ones. A test's Env stands in for it to run a node in simulated time
// or to inject disk faults (a slow disk, ENOSPC, EIO on write or on fsync), so none of that is a
// product flag. In the spirit of LevelDB's Env: every such call of storage/ and core/ goes here.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>

namespace tutti::storage {

using Clock = std::chrono::steady_clock;

class Env {
 public:
  virtual ~Env() = default;
  // Monotonic time.
  virtual Clock::time_point now() = 0;
  // Bytes available to this process on dir's file system; UINT64_MAX when it cannot be told.
  virtual uint64_t free_bytes(const std::filesystem::path& dir) = 0;
  // Called by Store::write as a write transaction is about to commit and sync in dir. It may take
  // time (a slow disk) or throw StorageError (io: EIO on write or fsync; disk_full: ENOSPC), and
  // then nothing of the transaction is written, as when LMDB's own write or sync fails.
  virtual void before_commit(const std::filesystem::path& dir) = 0;
  // n random bytes.
  virtual void random_bytes(char* out, size_t n) = 0;
};

// The real clock and file system; commits are not delayed or failed.
Env& default_env();

}  // namespace tutti::storage
