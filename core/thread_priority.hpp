// How much of a busy machine a thread of tuttid's may take. State transfer is bulk work beside
// the group's latency-bound commits: on a machine where the donor, the joiner and the voters share
// cores, a transfer at the same priority as the group's threads takes their turns and the
// group's commit rate falls by half (docs/performance.md, "State transfer").
#pragma once

namespace tutti::core {

enum class ThreadPriority {
  normal,
  // Yields to the node's own threads, and to every other node's: still served when they are not
  // (nice 10).
  low,
  // Runs only on a core nothing else wants (SCHED_IDLE). For threads that hold no lock another
  // thread of the node may wait for: a starved holder would stall it.
  background,
};

// Lowers the calling thread's priority (a thread may always lower its own; it is never raised,
// which needs privileges). A failure is logged, and the thread runs on at its priority.
void set_thread_priority(ThreadPriority priority, const char* what);

}  // namespace tutti::core
