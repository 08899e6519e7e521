#include "storage/env.hpp"

#include <sys/statvfs.h>

namespace tutti::storage {
namespace {

class OsEnv final : public Env {
 public:
  Clock::time_point now() override { return Clock::now(); }
  uint64_t free_bytes(const std::filesystem::path& dir) override {
    struct statvfs fs;
    if (::statvfs(dir.c_str(), &fs) != 0) return UINT64_MAX;  // unknown: do not refuse
    return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  }
  void before_commit(const std::filesystem::path&) override {}
};

}  // namespace

Env& default_env() {
  static OsEnv env;
  return env;
}

}  // namespace tutti::storage
