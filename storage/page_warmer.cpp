#include "storage/page_warmer.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace tutti::storage {

PageWarmer::PageWarmer(std::filesystem::path file, uint64_t ahead_bytes, uint64_t reserve_bytes,
                       std::function<uint64_t()> free_bytes)
    : file_(std::move(file)),
      ahead_bytes_(ahead_bytes),
      reserve_bytes_(reserve_bytes),
      free_bytes_(std::move(free_bytes)) {
  thread_ = std::thread([this] { run(); });
}

PageWarmer::~PageWarmer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void PageWarmer::used(uint64_t used) {
  // Half the distance ahead is left before it warms again: a request per ahead_bytes / 2 written.
  if (failed() || used + ahead_bytes_ / 2 <= requested_.load(std::memory_order_relaxed)) return;
  {
    std::lock_guard lock(mu_);
    requested_.store(used + ahead_bytes_, std::memory_order_relaxed);
  }
  wake_.notify_one();
}

void PageWarmer::run() {
  // Its work is bulk work done ahead, on a core nothing else wants (SCHED_IDLE, as
  // core/thread_priority.hpp's background): the writes that need it most are a joiner's snapshot
  // chunks, which yield to the group the same way. It holds no lock another thread waits for
  // beyond a flag's read; the store's destructor waits for at most a block's read. Unless the
  // system refuses, then nice 19.
  sched_param param{};
  if (::pthread_setschedparam(::pthread_self(), SCHED_IDLE, &param) != 0)
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 19);
  const int fd = ::open(file_.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    failed_.store(true, std::memory_order_release);
    return;
  }
  uint64_t handled = 0;  // the last request taken (done, or skipped for want of disk space)
  for (;;) {
    uint64_t target;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock,
                 [&] { return stopping_ || requested_.load(std::memory_order_relaxed) > handled; });
      if (stopping_) break;
      target = handled = requested_.load(std::memory_order_relaxed);
    }
    const bool ok = warm(fd, target);
    if (!ok) failed_.store(true, std::memory_order_release);
    handled_.fetch_add(1, std::memory_order_acq_rel);
    if (!ok) break;
  }
  ::close(fd);
}

// False when the file cannot be warmed at all (no fallocate here, an I/O error).
bool PageWarmer::warm(int fd, uint64_t target) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return false;
  // Past the file's end only: what LMDB wrote is cached, what the warmer extended is warm.
  uint64_t from = std::max<uint64_t>(warmed_to(), static_cast<uint64_t>(st.st_size));
  if (from >= target) return true;
  if (free_bytes_() < reserve_bytes_ + (target - from)) return true;  // the disk's room is LMDB's
  // Mode 0 allocates and moves the end of the file on, never back: LMDB may be writing past
  // `from` meanwhile, and those bytes stay as it writes them.
  if (::fallocate(fd, 0, static_cast<off_t>(from), static_cast<off_t>(target - from)) != 0)
    return false;
  constexpr size_t kBlock = 256 << 10;
  std::vector<char> block(kBlock);
  while (from < target) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return true;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kBlock, target - from));
    const ssize_t got = ::pread(fd, block.data(), n, static_cast<off_t>(from));
    if (got <= 0) return false;
    from += static_cast<uint64_t>(got);
    warmed_to_.store(from, std::memory_order_release);
  }
  return true;
}

}  // namespace tutti::storage
