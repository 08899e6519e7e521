// storage::Log, the write-set log in files of its own: what it holds after a restart, its torn
// tail, damage before its end, files removed and reused; and the upgrade of a format 3 store,
// whose log was an LMDB table.
#include <fcntl.h>
#include <lmdb.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "raw_lmdb.hpp"
#include "storage/log.hpp"
#include "storage/store.hpp"
#include "temp_dir.hpp"

using namespace tutti::storage;
using tutti::test::TempDir;

namespace {

LogOp put(uint64_t seqno, std::string bytes) {
  return LogOp{LogOp::Kind::put, seqno, std::move(bytes)};
}

std::string entry(uint64_t seqno, size_t size = 40) {
  std::string s = "entry " + std::to_string(seqno) + " ";
  s.resize(size, static_cast<char>('a' + seqno % 26));
  return s;
}

// What the log holds, seqno by seqno, read both ways.
std::vector<LogEntry> all(const Log& log) {
  const auto b = log.bounds();
  std::vector<LogEntry> out;
  for (uint64_t s = b.first; b.first != 0 && s <= b.last; ++s)
    if (auto e = log.get(s)) out.push_back(LogEntry{s, *e});
  return out;
}

std::vector<std::filesystem::path> segments(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".log") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("log: puts, truncations and drops hold after a restart") {
  TempDir dir;
  const auto path = dir.path() / "log";
  {
    auto log = Log::open(path, true);
    CHECK(log->bounds().first == 0);
    std::vector<LogOp> ops;
    for (uint64_t s = 1; s <= 10; ++s) ops.push_back(put(s, entry(s)));
    log->write(ops);
    log->write({LogOp{LogOp::Kind::truncate_from, 8, {}}, put(8, "eight again")});
    log->write({LogOp{LogOp::Kind::drop_through, 3, {}}, put(5, "five replaced")});
    // A put below the first leaves a hole, which from() passes over.
    log->write({put(1, "one again")});
    CHECK(log->bounds().first == 1);
    CHECK(log->bounds().last == 8);
    CHECK(log->from(1, 100, SIZE_MAX).size() == 6);
    CHECK(log->from(2, 100, SIZE_MAX).front().seqno == 4);
  }
  auto log = Log::open(path, true);
  const auto b = log->bounds();
  CHECK(b.first == 1);
  CHECK(b.last == 8);
  CHECK_FALSE(log->get(2));
  CHECK_FALSE(log->get(9));
  CHECK(*log->get(5) == "five replaced");
  CHECK(*log->get(8) == "eight again");
  const auto from4 = log->from(4, 100, SIZE_MAX);
  REQUIRE(from4.size() == 5);
  CHECK(from4.front().seqno == 4);
  CHECK(from4.back().bytes == "eight again");
  uint64_t bytes = 0;
  for (const auto& e : all(*log)) bytes += e.bytes.size();
  CHECK(b.bytes == bytes);
  // max_bytes: the entry that passes it is the last.
  CHECK(log->from(4, 100, 1).size() == 1);
  CHECK(log->from(4, 2, SIZE_MAX).size() == 2);
}

TEST_CASE("log: a torn record at the end is not an entry, and the next write goes over it") {
  TempDir dir;
  const auto path = dir.path() / "log";
  {
    auto log = Log::open(path, true);
    log->write({put(1, entry(1)), put(2, entry(2))});
  }
  const auto file = segments(path).at(0);
  {
    // Half of a third record: its header says more bytes than follow.
    auto log = Log::open(path, true);
    log->write({put(3, entry(3, 1000))});
  }
  {
    auto log = Log::open(path, true);
    REQUIRE(log->bounds().last == 3);
  }
  // Cut the third record short, as a crash in the middle of its write would, and flip a byte in
  // what is left of it.
  {
    const int fd = ::open(file.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    char buf[64 * 1024];
    const ssize_t n = ::pread(fd, buf, sizeof buf, 0);
    REQUIRE(n > 1100);
    // The third record starts after the header (32) and two records of 17 + 40 bytes.
    const off_t third = 32 + 2 * (17 + 40);
    const std::string zeros(2000, '\0');
    REQUIRE(::pwrite(fd, zeros.data(), zeros.size(), third + 500) == 2000);
    ::close(fd);
  }
  {
    auto log = Log::open(path, true);
    CHECK(log->bounds().last == 2);
    CHECK(*log->get(2) == entry(2));
    log->write({put(3, "three, again")});
  }
  auto log = Log::open(path, true);
  CHECK(log->bounds().last == 3);
  CHECK(*log->get(3) == "three, again");
}

TEST_CASE("log: files of trimmed entries go, one is reused, and nothing of its past comes back") {
  TempDir dir;
  const auto path = dir.path() / "log";
  const size_t big = 1 << 20;  // 16 entries fill a segment
  uint64_t next = 1;
  {
    auto log = Log::open(path, true);
    for (int batch = 0; batch < 8; ++batch) {
      std::vector<LogOp> ops;
      for (int i = 0; i < 8; ++i, ++next) ops.push_back(put(next, entry(next, big)));
      log->write(ops);
    }
    CHECK(log->segment_count() == 4);
    // Nothing above 20 goes, whatever the bound.
    log->trim(0, 20);
    CHECK(log->bounds().first == 21);
    CHECK(log->segment_count() == 3);  // the first held 1-16
    CHECK(std::filesystem::exists(path / "spare"));
    log->trim(10 * big, 100);
    CHECK(log->bounds().first == next - 10);
    // More, into the reused file: its old records do not check under its new number.
    for (int i = 0; i < 40; ++i, ++next) log->write({put(next, entry(next, big))});
    CHECK(log->bounds().last == next - 1);
  }
  auto log = Log::open(path, true);
  const auto b = log->bounds();
  CHECK(b.last == next - 1);
  // Entries of files that stayed may be back (a trim writes no record), none of a removed one.
  CHECK(b.first <= next - 50);
  for (uint64_t s = b.first; s <= b.last; ++s) {
    auto e = log->get(s);
    REQUIRE(e);
    CHECK(*e == entry(s, big));
  }
}

TEST_CASE("log: a damaged record before the log's end is refused, not taken for its end") {
  TempDir dir;
  const auto path = dir.path() / "log";
  {
    auto log = Log::open(path, true);
    for (uint64_t s = 1; s <= 40; ++s) log->write({put(s, entry(s, 1 << 20))});
    REQUIRE(log->segment_count() >= 2);
  }
  const auto first = segments(path).at(0);
  {
    const int fd = ::open(first.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, "X", 1, 32 + 17 + 5) == 1);  // inside the first entry
    ::close(fd);
  }
  try {
    Log::open(path, true);
    FAIL("a log damaged before its end opened");
  } catch (const StorageError& e) {
    CHECK(e.kind() == StorageError::Kind::corrupt);
    CHECK_THAT(e.what(), Catch::Contains("before the log's end"));
  }
}

namespace {

// A data dir as format 3 left it: the log in the wscache table, its bounds in meta.
void write_format3_store(const std::filesystem::path& dir, uint64_t first, uint64_t last) {
  using tutti::test::u64_raw;
  tutti::test::RawLmdb raw(dir);
  const MDB_dbi meta = raw.table("meta"), wscache = raw.table("wscache", MDB_INTEGERKEY);
  raw.table("data");
  raw.put(meta, "format_version", u64_raw(3));
  raw.put(meta, "last_committed", u64_raw(last));
  uint64_t bytes = 0;
  for (size_t s = first; s <= last; ++s) {
    raw.put(wscache, s, entry(s));
    bytes += entry(s).size();
  }
  raw.put(meta, "log_first", u64_raw(first));
  raw.put(meta, "log_last", u64_raw(last));
  raw.put(meta, "log_bytes", u64_raw(bytes));
  raw.commit();
}

}  // namespace

TEST_CASE(
    "a format 3 data dir's log moves to its own files when opened, and checks change nothing") {
  TempDir dir;
  write_format3_store(dir.path(), 5, 300);
  const VerifyReport report = verify_store(Options{dir.path()}, true);
  CHECK_FALSE(report.ok);
  CHECK(report.outdated);
  CHECK(report.message.find("format version 3") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.path() / "log"));
  // A log folder an upgrade left half done is written again.
  std::filesystem::create_directories(dir.path() / "log");
  std::ofstream(dir.path() / "log" / "00000001.log") << "half an upgrade";
  {
    Options o{dir.path()};
    auto store = Store::open(o);
    auto r = store->read();
    CHECK(r->meta().log_first == 5);
    CHECK(r->meta().log_last == 300);
    CHECK(*r->log_get(77) == entry(77));
    CHECK(r->log_from(290, 100).size() == 11);
  }
  CHECK(verify_store(Options{dir.path()}, true).ok);
  // The entries are in the log's files now, and the table is gone.
  auto store = Store::open(Options{dir.path()});
  CHECK(store->verify(false).find("wscache") == std::string::npos);
  CHECK(store->read()->meta().log_last == 300);
}

TEST_CASE(
    "a batch of log entries alone commits nothing in LMDB, and is read back after a restart") {
  TempDir dir;
  {
    auto store = Store::open(Options{dir.path()});
    store->write([](WriteTxn& t) { t.set_last_committed(0); });
    const auto before = std::filesystem::last_write_time(dir.path() / "data.mdb");
    const auto size = std::filesystem::file_size(dir.path() / "data.mdb");
    for (uint64_t s = 1; s <= 100; ++s)
      store->write([&](WriteTxn& t) { t.log_append(s, entry(s)); });
    CHECK(std::filesystem::last_write_time(dir.path() / "data.mdb") == before);
    CHECK(std::filesystem::file_size(dir.path() / "data.mdb") == size);
    CHECK(store->read()->meta().log_last == 100);
  }
  auto store = Store::open(Options{dir.path()});
  CHECK(store->read()->meta().log_first == 1);
  CHECK(store->read()->meta().log_last == 100);
  CHECK(*store->read()->log_get(42) == entry(42));
}

TEST_CASE("a batch that changes the durable state writes the log around it, in the batch's order") {
  TempDir dir;
  auto store = Store::open(Options{dir.path()});
  store->write([](WriteTxn& t) {
    for (uint64_t s = 1; s <= 5; ++s) t.log_append(s, entry(s));
  });
  // Truncate, then append over the cut, then drop below: the same as written in one go.
  store->write(
      [](WriteTxn& t) {
        t.log_truncate_from(4);
        t.log_append(4, "four, again");
        t.log_drop_through(1);
        t.meta_put("durable", "changed");
      },
      Store::Sync::full, Store::LogOrder::around);
  auto r = store->read();
  CHECK(*r->meta_get("durable") == "changed");
  CHECK(r->meta().log_first == 2);
  CHECK(r->meta().log_last == 4);
  CHECK(*r->log_get(4) == "four, again");
  CHECK_FALSE(r->log_get(5));
  CHECK_FALSE(r->log_get(1));
}

TEST_CASE("log: a file left half made by a crash is not a segment, and is made again") {
  TempDir dir;
  const auto path = dir.path() / "log";
  {
    auto log = Log::open(path, true);
    log->write({put(1, entry(1))});
  }
  std::ofstream(path / "making") << "a crash before the header";
  auto log = Log::open(path, true);
  CHECK(log->bounds().last == 1);
  for (uint64_t s = 2; s <= 40; ++s) log->write({put(s, entry(s, 1 << 20))});
  CHECK(log->segment_count() >= 2);
  CHECK_FALSE(std::filesystem::exists(path / "making"));
  log.reset();
  CHECK(Log::open(path, true)->bounds().last == 40);
}
