#include "core/worker_thread.hpp"

namespace tutti::core {

WorkerThread::WorkerThread(std::function<void(std::function<void()>)> post, size_t max_queued,
                           ThreadPriority priority, const char* name)
    : post_(std::move(post)),
      max_queued_(max_queued),
      thread_([this, priority, name] { run(priority, name); }) {}

WorkerThread::~WorkerThread() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

bool WorkerThread::submit(std::function<void()> work, std::function<void()> done) {
  {
    std::lock_guard lock(mu_);
    if (jobs_.size() >= max_queued_) return false;
    jobs_.push_back(Job{std::move(work), std::move(done)});
  }
  wake_.notify_one();
  return true;
}

void WorkerThread::run(ThreadPriority priority, const char* name) {
  set_thread_priority(priority, name);
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job.work();
    post_(std::move(job.done));
  }
}

}  // namespace tutti::core
