// Keeps the page cache populated ahead of the end of LMDB's data file, on a thread of its own.
//
// A commit that extends the file (a joiner staging a snapshot: megabytes per commit) has the
// kernel allocate a page-cache page for every page it writes, on the writer's thread and in its
// write(2). On a virtual machine that hands free guest memory back to its host (free page
// reporting, as on this machine) each such page is also a fault in the host: a first write
// there ran at about 620 MB/s against 7.8 GB/s into pages already cached, and was half of a
// joiner's storage thread. The warmer extends the file ahead of LMDB's last page with
// fallocate (allocated blocks that read as zeros; the file's size only grows) and reads that
// range, so the pages are in the cache before LMDB writes them: the allocation moves to another
// core (when it is free: the thread runs at idle priority) and overlaps the writer's flushes.
//
// It changes no byte LMDB reads: LMDB uses the pages up to its last one and ignores a longer
// file (its meta pages say where the data ends). A warmer that fails (no fallocate on this file
// system, a read error) stops warming; one that would leave the disk with less than
// reserve_bytes free does not extend the file. Not through storage::Env: what it does cannot
// change an outcome, only when a write returns, and the simulator's stores do not run it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

namespace tutti::storage {

class PageWarmer {
 public:
  // file: LMDB's data file. ahead_bytes: how far past its last page to keep warm.
  // free_bytes: what the file's disk has free (Env::free_bytes).
  PageWarmer(std::filesystem::path file, uint64_t ahead_bytes, uint64_t reserve_bytes,
             std::function<uint64_t()> free_bytes);
  ~PageWarmer();  // waits for the range being warmed
  PageWarmer(const PageWarmer&) = delete;
  PageWarmer& operator=(const PageWarmer&) = delete;

  // LMDB's pages end at byte `used` of the file now: warm past it, unless that is under way.
  // Cheap when there is nothing to do (one atomic load): called after every commit.
  void used(uint64_t used);
  // The file's bytes that hold warmed pages, for tests: extended ahead of LMDB's last page.
  uint64_t warmed_to() const { return warmed_to_.load(std::memory_order_acquire); }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // Requests taken by its thread (warmed, or left for want of disk space), for tests.
  uint64_t handled() const { return handled_.load(std::memory_order_acquire); }

 private:
  void run();
  bool warm(int fd, uint64_t target);

  const std::filesystem::path file_;
  const uint64_t ahead_bytes_, reserve_bytes_;
  const std::function<uint64_t()> free_bytes_;
  std::atomic<uint64_t> requested_{0};  // warm up to here
  std::atomic<uint64_t> warmed_to_{0};
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> handled_{0};
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;  // last: it starts once the rest is built
};

}  // namespace tutti::storage
