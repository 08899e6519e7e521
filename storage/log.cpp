#include "storage/log.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "storage/store.hpp"

namespace tutti::storage {
namespace {

// A segment is written over once it is full; a record larger than what is left goes in whole.
constexpr uint64_t kSegmentBytes = 16ull << 20;
constexpr char kMagic[8] = {'t', 'u', 't', 't', 'i', 'l', 'o', 'g'};
constexpr size_t kFileHeader = 32;  // magic, format (u32), zeros
constexpr uint32_t kLogFormat = 1;
// A record: checksum (u32) of what follows it, size (u32), kind (u8), seqno (u64), bytes.
constexpr size_t kRecordHeader = 17;
constexpr uint8_t kSeal = 4;  // the last record of a segment the log went on from

[[noreturn]] void fail_errno(const std::string& what, int err) {
  throw StorageError(err == ENOSPC ? StorageError::Kind::disk_full : StorageError::Kind::io,
                     fmt::format("storage: {}: {}", what, std::strerror(err)));
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t get_le(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Seeded by the segment's number: a recycled file's older records do not check in its new life.
uint32_t checksum(uint32_t segment, const char* p, size_t n) {
  return XXH32(p, n, 0x74757474u ^ segment);
}

void append_record(std::string& out, uint32_t segment, uint8_t kind, uint64_t seqno,
                   std::string_view bytes) {
  const size_t at = out.size();
  put_u32(out, 0);
  put_u32(out, static_cast<uint32_t>(bytes.size()));
  out.push_back(static_cast<char>(kind));
  put_u64(out, seqno);
  out.append(bytes);
  const uint32_t sum = checksum(segment, out.data() + at + 4, out.size() - at - 4);
  for (int i = 0; i < 4; ++i) out[at + i] = static_cast<char>(sum >> (8 * i));
}

void pwrite_all(int fd, const char* p, size_t n, uint64_t offset, const std::string& what) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail_errno(what, errno);
    }
    p += w, n -= static_cast<size_t>(w), offset += static_cast<uint64_t>(w);
  }
}

void pread_all(int fd, char* p, size_t n, uint64_t offset, const std::string& what) {
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail_errno(what, errno);
    if (r == 0)
      throw StorageError(StorageError::Kind::corrupt, fmt::format("storage: {}: short file", what));
    p += r, n -= static_cast<size_t>(r), offset += static_cast<uint64_t>(r);
  }
}

void sync_fd(int fd, const std::string& what) {
  if (::fdatasync(fd) != 0) fail_errno(what, errno);
}

std::optional<uint32_t> segment_id(const std::filesystem::path& p) {
  const std::string name = p.filename().string();
  if (name.size() != 12 || !name.ends_with(".log")) return std::nullopt;
  uint32_t id = 0;
  for (char c : name.substr(0, 8)) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    id = id * 16 +
         static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(c))
                                   ? c - '0'
                                   : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10);
  }
  if (id == 0) return std::nullopt;
  return id;
}

}  // namespace

void sync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_errno(fmt::format("open {}", dir.string()), errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail_errno(fmt::format("sync {}", dir.string()), err);
}

Log::Log(std::filesystem::path dir, bool durable) : dir_(std::move(dir)), durable_(durable) {}

Log::~Log() {
  for (auto& [id, seg] : segments_)
    if (seg.fd >= 0) ::close(seg.fd);
}

std::unique_ptr<Log> Log::open(const std::filesystem::path& dir, bool durable) {
  std::unique_ptr<Log> log(new Log(dir, durable));
  log->replay();
  return log;
}

std::string Log::path_of(uint32_t id) const {
  return (dir_ / fmt::format("{:08x}.log", id)).string();
}

void Log::replay() {
  std::error_code ec;
  if (!std::filesystem::exists(dir_, ec)) return;
  std::vector<uint32_t> ids;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    if (e.path().filename() == "spare") spare_ = e.path();
    if (auto id = segment_id(e.path())) ids.push_back(*id);
  }
  if (ec)
    throw StorageError(StorageError::Kind::io,
                       fmt::format("storage: cannot list {}: {}", dir_.string(), ec.message()));
  std::sort(ids.begin(), ids.end());
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string path = path_of(ids[i]);
    Segment& seg = segments_[ids[i]];
    seg.fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (seg.fd < 0) fail_errno(fmt::format("open {}", path), errno);
    replay_segment(ids[i], seg, i + 1 == ids.size());
    const off_t size = ::lseek(seg.fd, 0, SEEK_END);
    seg.zeroed = size > 0 ? static_cast<uint64_t>(size) : 0;
  }
}

void Log::replay_segment(uint32_t id, Segment& seg, bool last) {
  const std::string path = path_of(id);
  const off_t size = ::lseek(seg.fd, 0, SEEK_END);
  if (size < 0) fail_errno(fmt::format("size of {}", path), errno);
  std::string file(static_cast<size_t>(size), '\0');
  if (size > 0) pread_all(seg.fd, file.data(), file.size(), 0, "read " + path);
  if (file.size() < kFileHeader || std::memcmp(file.data(), kMagic, sizeof kMagic) != 0 ||
      get_le(file.data() + 8, 4) != kLogFormat)
    throw StorageError(
        StorageError::Kind::corrupt,
        fmt::format("storage: {} is not a log segment of format {} (damaged?)", path, kLogFormat));
  uint64_t at = kFileHeader;
  for (;;) {
    if (file.size() - at < kRecordHeader) break;
    const char* p = file.data() + at;
    const uint64_t n = get_le(p + 4, 4);
    const uint8_t kind = static_cast<uint8_t>(p[8]);
    if (kind < 1 || kind > kSeal || n > file.size() - at - kRecordHeader) break;
    if (checksum(id, p + 4, kRecordHeader - 4 + n) != get_le(p, 4)) break;
    const uint64_t seqno = get_le(p + 9, 8);
    if (kind == kSeal) {
      seg.sealed = true;
      at += kRecordHeader;
      break;
    }
    LogOp op{static_cast<LogOp::Kind>(kind), seqno, {}};
    apply(op, Loc{at, id, static_cast<uint32_t>(n)});
    at += kRecordHeader + n;
  }
  seg.end = at;
  if (!last && !seg.sealed)
    throw StorageError(StorageError::Kind::corrupt,
                       fmt::format("storage: the write-set log is damaged: {} has a bad record at "
                                   "offset {}, before the log's end. tuttid does not start on it: "
                                   "move the data dir aside and let the node join anew",
                                   path, at));
}

void Log::forget(const Loc& loc) {
  auto it = segments_.find(loc.segment);
  assert(it != segments_.end() && it->second.live > 0);
  --it->second.live;
  bytes_ -= loc.size;
}

void Log::drop_front() {
  if (index_.front().segment) forget(index_.front());
  index_.pop_front();
  ++base_;
}

void Log::drop_back() {
  if (index_.back().segment) forget(index_.back());
  index_.pop_back();
}

void Log::normalize() {
  while (!index_.empty() && index_.front().segment == 0) index_.pop_front(), ++base_;
  while (!index_.empty() && index_.back().segment == 0) index_.pop_back();
  if (index_.empty()) base_ = 0;
}

void Log::apply(const LogOp& op, Loc loc) {
  const uint64_t s = op.seqno;
  switch (op.kind) {
    case LogOp::Kind::put:
      if (index_.empty()) {
        base_ = s;
        index_.push_back(loc);
      } else if (s < base_) {
        index_.insert(index_.begin(), base_ - s, Loc{});
        index_.front() = loc;
        base_ = s;
      } else if (s - base_ >= index_.size()) {
        index_.resize(s - base_, Loc{});
        index_.push_back(loc);
      } else {
        Loc& cur = index_[s - base_];
        if (cur.segment) forget(cur);
        cur = loc;
      }
      ++segments_[loc.segment].live;
      bytes_ += loc.size;
      break;
    case LogOp::Kind::truncate_from:
      while (!index_.empty() && base_ + index_.size() - 1 >= s) drop_back();
      break;
    case LogOp::Kind::drop_through:
      while (!index_.empty() && base_ <= s) drop_front();
      break;
  }
  normalize();
}

Log::Bounds Log::bounds() const {
  std::shared_lock lock(mu_);
  if (index_.empty()) return {};
  return Bounds{base_, base_ + index_.size() - 1, bytes_};
}

std::string Log::read_at(const Loc& loc) const {
  std::string out(loc.size, '\0');
  if (loc.size > 0)
    pread_all(segments_.at(loc.segment).fd, out.data(), out.size(), loc.offset + kRecordHeader,
              "read " + path_of(loc.segment));
  return out;
}

std::optional<uint64_t> Log::size_of(uint64_t seqno) const {
  std::shared_lock lock(mu_);
  if (index_.empty() || seqno < base_ || seqno - base_ >= index_.size()) return std::nullopt;
  const Loc& loc = index_[seqno - base_];
  if (!loc.segment) return std::nullopt;
  return loc.size;
}

std::optional<std::string> Log::get(uint64_t seqno) const {
  std::shared_lock lock(mu_);
  if (index_.empty() || seqno < base_ || seqno - base_ >= index_.size()) return std::nullopt;
  const Loc& loc = index_[seqno - base_];
  if (!loc.segment) return std::nullopt;
  return read_at(loc);
}

std::vector<LogEntry> Log::from(uint64_t from, size_t max_entries, size_t max_bytes) const {
  std::shared_lock lock(mu_);
  std::vector<LogEntry> out;
  if (index_.empty()) return out;
  size_t bytes = 0;
  for (uint64_t s = std::max(from, base_); s - base_ < index_.size() && out.size() < max_entries;
       ++s) {
    const Loc& loc = index_[s - base_];
    if (!loc.segment) continue;
    if (bytes >= max_bytes) break;
    bytes += loc.size;
    out.push_back(LogEntry{s, read_at(loc)});
  }
  return out;
}

// The file is made whole under a temporary name and renamed: a crash leaves either no segment of
// that number or one with its header.
void Log::create_segment(uint32_t id) {
  const std::string path = path_of(id);
  const std::string making = (dir_ / "making").string();
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec)
    throw StorageError(StorageError::Kind::io,
                       fmt::format("storage: cannot create {}: {}", dir_.string(), ec.message()));
  int fd = -1;
  if (spare_) {
    // A removed segment's file, written over: its records check with its old number only.
    if (::rename(spare_->c_str(), making.c_str()) != 0)
      fail_errno("reuse " + spare_->string(), errno);
    spare_.reset();
    fd = ::open(making.c_str(), O_RDWR | O_CLOEXEC);
  } else {
    fd = ::open(making.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  if (fd < 0) fail_errno("open " + making, errno);
  std::string header(kMagic, sizeof kMagic);
  put_u32(header, kLogFormat);
  header.resize(kFileHeader, '\0');
  const off_t size = ::lseek(fd, 0, SEEK_END);
  try {
    pwrite_all(fd, header.data(), header.size(), 0, "write " + making);
    if (durable_) sync_fd(fd, "sync " + making);
    if (::rename(making.c_str(), path.c_str()) != 0) fail_errno("rename " + making, errno);
    if (durable_) sync_dir(dir_);
  } catch (...) {
    ::close(fd);
    throw;
  }
  Segment& seg = segments_[id];
  seg.fd = fd;
  seg.end = kFileHeader;
  seg.zeroed = std::max<uint64_t>(size > 0 ? static_cast<uint64_t>(size) : 0, kFileHeader);
}

Log::Segment& Log::writable(uint32_t& id) {
  if (!segments_.empty()) {
    auto& [last_id, seg] = *segments_.rbegin();
    if (!seg.sealed && seg.end < kSegmentBytes) {
      id = last_id;
      return seg;
    }
    if (!seg.sealed) {
      std::string seal;
      append_record(seal, last_id, kSeal, 0, {});
      pwrite_all(seg.fd, seal.data(), seal.size(), seg.end, "write " + path_of(last_id));
      // Also when not durable: sync() flushes the newest segment only.
      sync_fd(seg.fd, "sync " + path_of(last_id));
      seg.end += seal.size();
      seg.sealed = true;
    }
    id = last_id + 1;
  } else {
    id = 1;
  }
  {
    std::unique_lock lock(mu_);
    create_segment(id);
  }
  return segments_.at(id);
}

// A durable log writes zeros ahead of its records, a step at a time, so that most writes land
// inside the file and their flush is the data's alone, no file metadata with it.
void Log::zero_ahead(uint32_t id, Segment& seg, uint64_t need) {
  if (!durable_ || need <= seg.zeroed) return;
  constexpr uint64_t kStep = 1 << 20;
  const uint64_t target = (need + kStep - 1) / kStep * kStep;
  static const std::string zeros(kStep, '\0');
  for (uint64_t at = std::max(seg.zeroed, need); at < target;) {
    const uint64_t n = std::min<uint64_t>(zeros.size(), target - at);
    pwrite_all(seg.fd, zeros.data(), n, at, "write " + path_of(id));
    at += n;
  }
  seg.zeroed = target;
}

void Log::write(const std::vector<LogOp>& ops) {
  if (ops.empty()) return;
  uint32_t id = 0;
  Segment& seg = writable(id);
  std::string buf;
  std::vector<Loc> locs;
  locs.reserve(ops.size());
  for (const auto& op : ops) {
    locs.push_back(Loc{seg.end + buf.size(), id, static_cast<uint32_t>(op.bytes.size())});
    append_record(buf, id, static_cast<uint8_t>(op.kind), op.seqno, op.bytes);
  }
  zero_ahead(id, seg, seg.end + buf.size());
  pwrite_all(seg.fd, buf.data(), buf.size(), seg.end, "write " + path_of(id));
  if (durable_) sync_fd(seg.fd, "sync " + path_of(id));
  std::unique_lock lock(mu_);
  seg.end += buf.size();
  for (size_t i = 0; i < ops.size(); ++i) apply(ops[i], locs[i]);
}

void Log::remove_unused_segments() {
  while (segments_.size() > 1 && segments_.begin()->second.live == 0) {
    auto it = segments_.begin();
    const std::string path = path_of(it->first);
    ::close(it->second.fd);
    const auto spare = dir_ / "spare";
    if (!spare_ && ::rename(path.c_str(), spare.c_str()) == 0) {
      spare_ = spare;
    } else {
      ::unlink(path.c_str());
    }
    segments_.erase(it);
  }
}

void Log::trim(uint64_t max_bytes, uint64_t through) {
  std::unique_lock lock(mu_);
  while (bytes_ > max_bytes && !index_.empty() && base_ <= through) drop_front();
  normalize();
  remove_unused_segments();
}

void Log::sync() {
  std::shared_lock lock(mu_);
  if (segments_.empty()) return;
  sync_fd(segments_.rbegin()->second.fd, "sync " + path_of(segments_.rbegin()->first));
}

size_t Log::segment_count() const {
  std::shared_lock lock(mu_);
  return segments_.size();
}

}  // namespace tutti::storage
