#include "storage/env.hpp"

#include <sys/statvfs.h>

#include <random>

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
  void random_bytes(char* out, size_t n) override {
    std::random_device rd;
    for (size_t i = 0; i < n; i += 4) {
      const uint32_t r = rd();
      for (size_t j = 0; j < 4 && i + j < n; ++j)
        out[i + j] = static_cast<char>((r >> (8 * j)) & 0xff);
    }
  }
};

}  // namespace

Env& default_env() {
  static OsEnv env;
  return env;
}

}  // namespace tutti::storage
