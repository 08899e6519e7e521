// The node's write-set log (the replication log, wscache): seqno -> entry bytes, in files of its
// own in the data dir's log/ folder, beside the LMDB environment (docs/storage.md, "The log").
// A member acknowledges an entry once it is on disk, so the log's write is on the path of every
// commit: here it is one sequential write and one flush, where an LMDB commit writes scattered
// pages and flushes twice (data, then its meta page).
//
// The log is a sequence of records in numbered segment files: put (seqno, bytes), truncate_from
// (drop seqnos >= s) and drop_through (drop seqnos <= s). Opening it replays them into an index
// in memory. Each record carries a checksum seeded by its segment's number, so a torn write at
// the end, zeros, or a recycled file's older records all end the replay; a segment that is not
// the last ends with a seal, so a damaged record inside the log is told from its end.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

namespace tutti::storage {

struct LogEntry {
  uint64_t seqno = 0;
  std::string bytes;
};

struct LogOp {
  enum class Kind : uint8_t { put = 1, truncate_from = 2, drop_through = 3 };
  Kind kind = Kind::put;
  uint64_t seqno = 0;
  std::string bytes;  // put only
  bool removes() const { return kind != Kind::put; }
};

// fsyncs a directory, so that a file created, renamed or removed in it stays so after a crash.
// Throws StorageError(io).
void sync_dir(const std::filesystem::path& dir);

class Log {
 public:
  // Opens the log in dir (an absent dir is an empty log, created at the first write). Changes
  // nothing on disk. Throws StorageError(corrupt) for a damaged record before the last one, or
  // a file that is not a segment of this format; StorageError(io) when a file cannot be read.
  static std::unique_ptr<Log> open(const std::filesystem::path& dir, bool durable);
  Log(const Log&) = delete;
  ~Log();

  struct Bounds {
    uint64_t first = 0;  // oldest seqno held (0: none)
    uint64_t last = 0;   // newest seqno held
    uint64_t bytes = 0;  // of the entries held
  };
  // Readers run on any thread, beside the one writer; they see what write() made durable.
  Bounds bounds() const;
  std::optional<std::string> get(uint64_t seqno) const;
  std::optional<uint64_t> size_of(uint64_t seqno) const;
  // Entries with seqno >= from, in order (past any seqno the log does not hold), at most
  // max_entries, none once they took max_bytes (the last may pass it).
  std::vector<LogEntry> from(uint64_t from, size_t max_entries, size_t max_bytes) const;

  // Writes the records, in order, and with durable returns once they are on disk. Throws
  // StorageError (io, disk_full); then the index is as before (what reached the file is written
  // over by the next write). One writer thread.
  void write(const std::vector<LogOp>& ops);
  // Forgets entries from the oldest on while they take more than max_bytes, none above through,
  // and removes the files that hold nothing else (the newest is kept as the next one's). Writes
  // no record: after a restart the entries of a file it kept may be there again.
  void trim(uint64_t max_bytes, uint64_t through);
  // Flushes what a log that is not durable wrote.
  void sync();
  // Segment files, for tests and checks.
  size_t segment_count() const;

 private:
  struct Loc {
    uint64_t offset = 0;   // of the record
    uint32_t segment = 0;  // 0: not held
    uint32_t size = 0;     // of the entry's bytes
  };
  struct Segment {
    int fd = -1;
    uint64_t end = 0;     // where the next record goes
    uint64_t live = 0;    // index entries located here
    uint64_t zeroed = 0;  // the file's bytes (past end: zeros, or a recycled file's old records)
    bool sealed = false;
  };
  Log(std::filesystem::path dir, bool durable);
  void replay();
  void replay_segment(uint32_t id, Segment& seg, bool last);
  void apply(const LogOp& op, Loc loc);  // REQUIRES: mu_ held exclusively (or no reader yet)
  void drop_front();                     // REQUIRES: as apply, not empty
  void drop_back();                      // REQUIRES: as apply, not empty
  void forget(const Loc& loc);
  void normalize();
  // The segment the next write goes to, rolled over to a new one past the segment size.
  Segment& writable(uint32_t& id);
  void create_segment(uint32_t id);
  void zero_ahead(uint32_t id, Segment& seg, uint64_t need);
  void remove_unused_segments();
  std::string path_of(uint32_t id) const;
  std::string read_at(const Loc& loc) const;

  std::filesystem::path dir_;
  bool durable_;
  mutable std::shared_mutex mu_;  // the index and the segment table, against readers
  std::deque<Loc> index_;         // index_[i] is seqno base_ + i
  uint64_t base_ = 0;
  uint64_t bytes_ = 0;
  std::map<uint32_t, Segment> segments_;
  std::optional<std::filesystem::path> spare_;  // a removed segment's file, kept for the next
};

}  // namespace tutti::storage
