#include "core/donor_thread.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tutti::core {

DonorThread::DonorThread(std::function<void(std::function<void()>)> post)
    : post_(std::move(post)), thread_([this] { run(); }) {}

DonorThread::~DonorThread() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

bool DonorThread::submit(std::function<void()> work, std::function<void()> done) {
  {
    std::lock_guard lock(mu_);
    if (jobs_.size() >= kMaxQueued) return false;
    jobs_.push_back(Job{std::move(work), std::move(done)});
  }
  wake_.notify_one();
  return true;
}

void DonorThread::run() {
  // The group's messages and the clients come first: a transfer reads with what CPU they
  // leave (nice is per thread on Linux; a thread may always lower its own priority).
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kNice) != 0)
    spdlog::warn("donor thread: could not lower its priority: {}", std::strerror(errno));
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
