// One thread of tuttid's that runs blocking work off the node's loop, in order, and posts each
// job's completion back to the loop: a donor's reads (a snapshot chunk or a range of the log,
// megabytes read out of LMDB) and a joiner's pulls (a blocking client call to its donor). The
// simulator runs the same decisions on its loop instead, in a deterministic order.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "core/thread_priority.hpp"

namespace tutti::core {

class WorkerThread {
 public:
  // post: runs a function on the node's loop. max_queued: jobs waiting at most (besides the one
  // running). name: for the log.
  WorkerThread(std::function<void(std::function<void()>)> post, size_t max_queued,
               ThreadPriority priority = ThreadPriority::normal,
               const char* name = "worker thread");
  ~WorkerThread();  // the job under way ends first; queued ones are dropped, never completed

  // Runs work on the thread, then done on the loop. False (nothing runs) when the queue is full.
  bool submit(std::function<void()> work, std::function<void()> done);

 private:
  void run(ThreadPriority priority, const char* name);
  struct Job {
    std::function<void()> work, done;
  };
  std::function<void(std::function<void()>)> post_;
  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the rest is built
};

}  // namespace tutti::core
