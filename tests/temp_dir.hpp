#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>

namespace tutti::test {

// A test that cannot run its check on this machine says so this way and returns: ctest reports
// it as skipped (SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt), never as passed.
inline void report_skipped(const std::string& why) {
  std::cout << "TUTTI-TEST-SKIPPED: " << why << std::endl;
}

// A scratch directory removed when the test ends.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("tutti-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// A small tmpfs mounted at dir/name for the test (a disk that fills up), unmounted at its end.
// REQUIRES: root (can_mount()); a test without it reports itself skipped.
class SmallDisk {
 public:
  static bool can_mount() { return ::geteuid() == 0; }
  SmallDisk(const TempDir& dir, const std::string& name, const std::string& size)
      : path_(dir / name) {
    std::filesystem::create_directories(path_);
    const std::string cmd = "mount -t tmpfs -o size=" + size + " tutti-test " + path_.string();
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("could not run: " + cmd);
  }
  ~SmallDisk() { (void)std::system(("umount -l " + path_.string()).c_str()); }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace tutti::test
