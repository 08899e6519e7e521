#include "core/thread_priority.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace tutti::core {

void set_thread_priority(ThreadPriority priority, const char* what) {
  switch (priority) {
    case ThreadPriority::normal:
      return;
    case ThreadPriority::low:
      // nice is per thread on Linux.
      if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10) != 0)
        spdlog::warn("{}: could not lower its priority: {}", what, std::strerror(errno));
      return;
    case ThreadPriority::background: {
      sched_param param{};
      param.sched_priority = 0;
      if (const int rc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &param); rc != 0) {
        spdlog::warn("{}: could not run at idle priority ({}): nice 19 instead", what,
                     std::strerror(rc));
        setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
      }
      return;
    }
  }
}

}  // namespace tutti::core
