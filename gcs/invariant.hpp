// Invariants checked in every build, release included, at the boundaries between modules (a
// Ready's seqnos contiguous, certification fed in seqno order, a view's base where the node
// stands, ...). A broken one stops the process with a message naming it: continuing would corrupt
// state quietly, on this node and on every node it talks to.
#pragma once

#include <string>

#include <fmt/format.h>

namespace tutti {

[[noreturn]] void invariant_failed(const char* condition, const char* file, int line,
                                   const std::string& message);

// Replaces what a broken invariant does (by default: the message on stderr, then abort), for a
// simulator that reports it with its seed. The handler must not return; if it does, abort.
// nullptr restores the default.
using InvariantHandler = void (*)(const std::string& message);
void set_invariant_handler(InvariantHandler handler);

}  // namespace tutti

#define TUTTI_INVARIANT(condition, ...)                                                    \
  do {                                                                                     \
    if (!(condition))                                                                      \
      ::tutti::invariant_failed(#condition, __FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)
