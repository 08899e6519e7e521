// Each node's data dir on a file system of its own (a loop-mounted ext4 image in the run's
// folder, on the machine's real disk, so fsync is real), so that one node's disk can be filled
// up (the nemesis's disk-full) without touching the machine's. Unmounted by the destructor,
// which must run after the nodes are stopped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tutti::chaos {

// Why loop-mounted file systems cannot be made here, or empty.
std::string loop_mounts_unavailable();

class Disks {
 public:
  // Makes and mounts nodes images of mib MiB each at dir/n<i>.disk; throws on failure. With
  // mib 0, plain folders on the machine's disk instead, which fill() leaves alone.
  Disks(const std::filesystem::path& dir, int nodes, uint64_t mib);
  ~Disks();
  Disks(const Disks&) = delete;
  Disks& operator=(const Disks&) = delete;

  // Where node i keeps its data (a folder inside its file system).
  std::filesystem::path data_dir(int node) const;
  // Takes all but a few KiB of the node's free space with one file; returns the bytes taken.
  uint64_t fill(int node);
  // Gives the space back.
  void unfill(int node);
  // The node's data is gone (a disk replaced): its data dir is left empty.
  void lose(int node);

 private:
  std::filesystem::path dir_;
  std::vector<std::filesystem::path> mounted_;
};

}  // namespace tutti::chaos
