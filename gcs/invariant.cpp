#include "gcs/invariant.hpp"

#include <cstdio>
#include <cstdlib>

namespace tutti {
namespace {
InvariantHandler g_handler = nullptr;
}

void set_invariant_handler(InvariantHandler handler) {
  g_handler = handler;
}

void invariant_failed(const char* condition, const char* file, int line,
                      const std::string& message) {
  if (g_handler) g_handler(fmt::format("{} ({}, at {}:{})", message, condition, file, line));
  // stderr, not the logger: this must reach the operator even if logging is what broke.
  std::fprintf(stderr, "tutti: invariant broken at %s:%d: %s (%s); stopping\n", file, line,
               message.c_str(), condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace tutti
