// tuttid's donor reads off the loop: a snapshot chunk or a range of the log (megabytes read and
// copied out of LMDB) runs on a thread of its own, in order, and its answer is posted back to
// the node's loop, so the group's messages and the clients are not held behind it. The simulator
// runs the Donor on its loop instead (no thread: the same decisions, in a deterministic order).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace tutti::core {

class DonorThread {
 public:
  // Joiners pull one request at a time each: more than this queued is refused (busy).
  static constexpr size_t kMaxQueued = 16;
  static constexpr int kNice = 10;  // the thread's niceness: it yields to the node's own
  // post: runs a function on the node's loop.
  explicit DonorThread(std::function<void(std::function<void()>)> post);
  ~DonorThread();  // the read under way ends first; queued ones are dropped unanswered

  // Runs work on the thread, then done on the loop. False (nothing runs) when the queue is full.
  bool submit(std::function<void()> work, std::function<void()> done);

 private:
  void run();
  struct Job {
    std::function<void()> work, done;
  };
  std::function<void(std::function<void()>)> post_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tutti::core
