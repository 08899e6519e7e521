#include "chaos/disks.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdlib>
#include <stdexcept>

#include "chaos/netns.hpp"
#include "process.hpp"

namespace tutti::chaos {

namespace {

std::filesystem::path mount_point(const std::filesystem::path& dir, int node) {
  return dir / fmt::format("n{}.disk", node);
}

}  // namespace

std::string loop_mounts_unavailable() {
  if (std::getenv("TUTTI_CHAOS_NO_LOOP")) return "TUTTI_CHAOS_NO_LOOP is set";
  for (const char* tool :
       {"/sbin/losetup", "/sbin/mkfs.ext4", "/bin/mount", "/bin/umount", "/usr/bin/truncate"})
    if (::access(tool, X_OK) != 0) return fmt::format("{} is missing", tool);
  if (test::run({"/sbin/losetup", "-f"}).code != 0) return "no free loop device";
  return {};
}

Disks::Disks(const std::filesystem::path& dir, int nodes, uint64_t mib) : dir_(dir) {
  if (mib == 0) {
    for (int i = 1; i <= nodes; ++i) std::filesystem::create_directories(mount_point(dir, i));
    return;
  }
  try {
    for (int i = 1; i <= nodes; ++i) {
      const auto image = dir / fmt::format("n{}.img", i);
      const auto at = mount_point(dir, i);
      std::filesystem::create_directories(at);
      run_or_throw({"/usr/bin/truncate", "-s", fmt::format("{}M", mib), image.string()});
      run_or_throw({"/sbin/mkfs.ext4", "-q", "-F", image.string()});
      run_or_throw({"/bin/mount", "-o", "loop", image.string(), at.string()});
      mounted_.push_back(at);
    }
  } catch (...) {
    for (const auto& m : mounted_) test::run({"/bin/umount", m.string()});
    throw;
  }
}

Disks::~Disks() {
  for (const auto& m : mounted_) test::run({"/bin/umount", m.string()});
  for (size_t i = 1; i <= mounted_.size(); ++i)
    std::filesystem::remove(dir_ / fmt::format("n{}.img", i));
}

std::filesystem::path Disks::data_dir(int node) const {
  return mount_point(dir_, node) / "data";
}

uint64_t Disks::fill(int node) {
  if (mounted_.empty()) return 0;  // the machine's own disk: never filled
  const auto at = mount_point(dir_, node);
  struct statvfs fs;
  if (::statvfs(at.c_str(), &fs) != 0) return 0;
  const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  const uint64_t keep = 64 << 10;
  if (free_bytes <= keep) return 0;
  const int fd = ::open((at / "filler").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return 0;
  const uint64_t take = free_bytes - keep;
  const bool ok = ::posix_fallocate(fd, 0, static_cast<off_t>(take)) == 0;
  ::close(fd);
  return ok ? take : 0;
}

void Disks::lose(int node) {
  std::filesystem::remove_all(data_dir(node));
  std::filesystem::create_directories(data_dir(node));
}

void Disks::unfill(int node) {
  std::filesystem::remove(mount_point(dir_, node) / "filler");
}

}  // namespace tutti::chaos
