#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "raw_lmdb.hpp"
#include "storage/store.hpp"
#include "temp_dir.hpp"

using namespace tutti::storage;
using tutti::test::TempDir;

namespace {

std::unique_ptr<Store> open_store(const std::filesystem::path& dir, Options o = {}) {
  o.dir = dir;
  return Store::open(o);
}

ContentHash recompute(const Store& store) {
  ContentHash h;
  for (const auto& e : store.read()->scan("", 1u << 30)) h.add(e.key, e.version, e.value);
  return h;
}

}  // namespace

TEST_CASE("put - get - delete and versions") {
  TempDir dir;
  auto store = open_store(dir.path());
  store->write([](WriteTxn& t) {
    t.put("a", 1, "one");
    t.put("b", 2, "two");
    t.set_last_committed(2);
  });
  auto r = store->read();
  REQUIRE(r->get("a")->value == "one");
  REQUIRE(r->get("a")->version == 1);
  REQUIRE_FALSE(r->get("c"));
  REQUIRE(r->meta().last_committed == 2);
  r.reset();
  store->write([](WriteTxn& t) {
    CHECK(t.del("a"));
    CHECK_FALSE(t.del("zz"));
    t.put("b", 3, "");
  });
  auto r2 = store->read();
  CHECK_FALSE(r2->get("a"));
  CHECK(r2->get("b")->version == 3);
  CHECK(r2->get("b")->value.empty());
}

TEST_CASE("a read transaction left open by a process that died is cleared while the store runs") {
  TempDir dir;
  Options o;
  o.durability = Durability::memory;  // thousands of writes below, quickly
  auto store = open_store(dir.path(), o);
  store->write([](WriteTxn& t) { t.put("a", 1, "one"); });
  // A tool reads the running store and dies without ending its read transaction: its reader
  // slot stays in the lock file, and LMDB would reuse no page freed after its snapshot.
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    MDB_env* env = nullptr;
    MDB_txn* txn = nullptr;
    const bool read = mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 16) == 0 &&
                      mdb_env_open(env, dir.path().c_str(), MDB_NOTLS | MDB_RDONLY, 0644) == 0 &&
                      mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0;
    ::_exit(read ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  for (uint64_t v = 2; v <= 4096; ++v)
    store->write([&](WriteTxn& t) { t.put("a", v, std::to_string(v)); });
  CHECK(store->stale_readers_cleared() == 1);
  CHECK(store->read()->get("a")->value == "4096");
}

TEST_CASE("a write that waits for its data but not its meta page commits like any other") {
  TempDir dir;
  {
    auto store = open_store(dir.path());
    store->write([](WriteTxn& t) { t.put("a", 1, "one"); }, Store::Sync::data_only);
    CHECK(store->read()->get("a")->value == "one");
    // The environment is back to full commits: the next one, and a reopen, see both.
    store->write([](WriteTxn& t) { t.put("b", 2, "two"); });
  }
  auto store = open_store(dir.path());
  auto r = store->read();
  CHECK(r->get("a")->value == "one");
  CHECK(r->get("b")->value == "two");
}

TEST_CASE("keys the store cannot hold are refused before anything changes - and read as absent") {
  TempDir dir;
  auto store = open_store(dir.path());
  const std::string too_long(kMaxKeyBytes + 1, 'x');
  auto refused = [&](auto fn) {
    try {
      store->write(fn);
    } catch (const StorageError& e) {
      return e.kind() == StorageError::Kind::invalid;
    }
    return false;
  };
  CHECK(refused([&](WriteTxn& t) { t.put(too_long, 1, "v"); }));
  CHECK(refused([&](WriteTxn& t) { t.put("", 1, "v"); }));
  CHECK(refused([&](WriteTxn& t) { t.record_txn(too_long, 1, "o"); }));
  auto r = store->read();
  CHECK_FALSE(r->get(too_long));
  CHECK_FALSE(r->get(""));
  CHECK(r->txn_records(too_long).empty());
  CHECK(r->scan(too_long, 10).empty());
  CHECK(r->meta().content_hash == ContentHash{});
  r.reset();
  store->write([&](WriteTxn& t) { t.put(std::string(kMaxKeyBytes, 'x'), 1, "v"); });
  CHECK(store->read()->get(std::string(kMaxKeyBytes, 'x'))->value == "v");
}

TEST_CASE("scan returns keys with the prefix - in order - up to the limit") {
  TempDir dir;
  auto store = open_store(dir.path());
  store->write([](WriteTxn& t) {
    for (const char* k : {"a", "ab", "abc", "abd", "b", "ba"}) t.put(k, 1, k);
  });
  auto r = store->read();
  auto all = r->scan("ab", 100);
  REQUIRE(all.size() == 3);
  CHECK(all[0].key == "ab");
  CHECK(all[2].key == "abd");
  CHECK(r->scan("ab", 2).size() == 2);
  CHECK(r->scan("", 100).size() == 6);
  CHECK(r->scan("c", 100).empty());
  CHECK(r->scan("", 0).empty());
}

TEST_CASE("a write batch is atomic: a failure leaves nothing of it") {
  TempDir dir;
  auto store = open_store(dir.path());
  store->write([](WriteTxn& t) {
    t.put("k", 1, "v1");
    t.set_last_committed(1);
  });
  const auto before = store->read()->meta();
  REQUIRE_THROWS(store->write([](WriteTxn& t) {
    t.put("k", 2, "v2");
    t.put("other", 2, "x");
    t.log_append(2, "ws");
    t.set_last_committed(2);
    throw std::runtime_error("apply failed halfway");
  }));
  auto r = store->read();
  CHECK(r->get("k")->value == "v1");
  CHECK_FALSE(r->get("other"));
  CHECK(r->meta().last_committed == 1);
  CHECK(r->meta().content_hash == before.content_hash);
  CHECK_FALSE(r->log_get(2));
}

TEST_CASE("content hash is order-independent and tracks every change") {
  TempDir d1, d2;
  auto s1 = open_store(d1.path());
  auto s2 = open_store(d2.path());
  s1->write([](WriteTxn& t) {
    t.put("x", 1, "1");
    t.put("y", 2, "2");
    t.put("z", 3, "3");
  });
  s2->write([](WriteTxn& t) {
    t.put("z", 3, "3");
    t.put("x", 1, "1");
  });
  s2->write([](WriteTxn& t) { t.put("y", 2, "2"); });
  CHECK(s1->read()->meta().content_hash == s2->read()->meta().content_hash);
  CHECK(s1->read()->meta().content_hash == recompute(*s1));

  s2->write([](WriteTxn& t) { t.put("y", 4, "2"); });  // same value, new version
  CHECK_FALSE(s1->read()->meta().content_hash == s2->read()->meta().content_hash);
  CHECK(s2->read()->meta().content_hash == recompute(*s2));
  s2->write([](WriteTxn& t) {
    t.del("y");
    t.put("y", 2, "2");
  });
  CHECK(s1->read()->meta().content_hash == s2->read()->meta().content_hash);
  s1->write([](WriteTxn& t) {
    t.del("x");
    t.del("y");
    t.del("z");
  });
  CHECK(s1->read()->meta().content_hash == ContentHash{});
  // Key/value boundaries matter.
  ContentHash a, b;
  a.add("ab", 1, "c");
  b.add("a", 1, "bc");
  CHECK_FALSE(a == b);
}

TEST_CASE("content hash survives a reopen") {
  TempDir dir;
  ContentHash h;
  {
    auto store = open_store(dir.path());
    store->write([](WriteTxn& t) { t.put("k", 7, "v"); });
    h = store->read()->meta().content_hash;
  }
  auto store = open_store(dir.path());
  CHECK(store->read()->meta().content_hash == h);
  CHECK(h.hex().size() == 32);
}

TEST_CASE("write-set cache is bounded by bytes and never trims unapplied entries") {
  TempDir dir;
  Options o;
  o.wscache_bytes = 10 * 100;
  auto store = open_store(dir.path(), o);
  const std::string ws(100, 'w');
  store->write([&](WriteTxn& t) {
    for (uint64_t s = 1; s <= 30; ++s) t.log_append(s, ws);
    t.set_last_committed(25);
  });
  auto r = store->read();
  CHECK(r->meta().log_bytes <= 1000);
  CHECK(r->meta().log_last == 30);
  CHECK_FALSE(r->log_get(1));
  CHECK(r->log_get(30));
  CHECK(r->meta().log_first == 21);
  r.reset();

  // Nothing applied beyond 5: the cache may exceed its bound rather than lose a write-set.
  TempDir dir2;
  auto s2 = open_store(dir2.path(), o);
  s2->write([&](WriteTxn& t) {
    for (uint64_t s = 1; s <= 30; ++s) t.log_append(s, ws);
    t.set_last_committed(5);
  });
  auto r2 = s2->read();
  CHECK(r2->meta().log_first == 6);
  CHECK(r2->log_from(6, 100).size() == 25);
  CHECK(r2->log_from(6, 100).front().seqno == 6);
}

TEST_CASE("log appends must go forward - a tentative tail can be truncated") {
  TempDir dir;
  auto store = open_store(dir.path());
  store->write([](WriteTxn& t) {
    for (uint64_t s = 1; s <= 5; ++s) t.log_append(s, "e" + std::to_string(s));
  });
  REQUIRE_THROWS_AS(store->write([](WriteTxn& t) { t.log_append(5, "again"); }), StorageError);
  store->write([](WriteTxn& t) { t.log_truncate_from(4); });
  auto r = store->read();
  CHECK(r->meta().log_last == 3);
  CHECK(r->log_from(1, 10).size() == 3);
  r.reset();
  store->write([](WriteTxn& t) { t.log_append(4, "new4"); });
  CHECK(*store->read()->log_get(4) == "new4");
}

namespace {

// Streams a snapshot of `from` in chunks of about chunk bytes into the staged set of `to`.
uint64_t stream(Snapshot& snap, Store& to, size_t chunk, ContentHash& hash) {
  SnapshotCursor cursor;
  uint64_t items = 0;
  to.write([](WriteTxn& t) { t.stage_reset(); });
  while (!cursor.done()) {
    auto part = snap.next(cursor, chunk);
    items += part.size();
    to.write([&](WriteTxn& t) {
      ContentHash h = hash;  // the write may run again (map growth)
      for (const auto& item : part) t.stage_put(item, h);
      hash = h;
    });
  }
  return items;
}

}  // namespace

TEST_CASE("a snapshot streams the state tables, and a staged copy installs in one swap") {
  TempDir dir, joiner_dir;
  auto donor = open_store(dir.path());
  donor->write([](WriteTxn& t) {
    for (int i = 0; i < 1000; ++i) t.put("key" + std::to_string(i), i + 1, std::string(i, 'v'));
    t.record_txn("txn-a", 7, "outcome-a");
    t.set_last_committed(1000);
  });
  auto joiner = open_store(joiner_dir.path());
  joiner->write([](WriteTxn& t) {
    t.put("old", 1, "gone after the install");
    t.log_append(5, "joiner's own log");
    t.set_last_committed(3);
  });
  auto snap = donor->snapshot();
  CHECK(snap->meta().last_committed == 1000);
  CHECK(snap->table_bytes() > 0);
  // The donor goes on writing: the snapshot does not see it.
  donor->write([](WriteTxn& t) {
    t.put("key0", 2000, "later");
    t.set_last_committed(1001);
  });
  ContentHash staged;
  CHECK(stream(*snap, *joiner, 4096, staged) == 1000 + 1);  // data, the odd generation's txns
  CHECK(staged == snap->meta().content_hash);
  // Until the install the joiner serves its own state.
  CHECK(joiner->read()->get("old"));
  CHECK(!joiner->read()->get("key5"));
  joiner->write([&](WriteTxn& t) { t.install_staged(1000, staged); });
  {
    auto r = joiner->read();
    CHECK(r->meta().last_committed == 1000);
    CHECK(r->meta().content_hash == staged);
    CHECK(!r->get("old"));
    CHECK(r->get("key999")->value == std::string(999, 'v'));
    CHECK(r->get("key0")->version == 1);  // as of the snapshot
    CHECK(r->txn_records("txn-a") == std::vector<std::string>{"outcome-a"});
    CHECK(*r->log_get(5) == "joiner's own log");  // the log is the joiner's own
  }
  CHECK(recompute(*joiner) == staged);
  // The swap is on disk: it survives a reopen, and a second transfer swaps back.
  joiner.reset();
  joiner = open_store(joiner_dir.path());
  CHECK(joiner->read()->get("key999"));
  auto snap2 = donor->snapshot();
  ContentHash again;
  stream(*snap2, *joiner, 1 << 20, again);
  joiner->write([&](WriteTxn& t) { t.install_staged(1001, again); });
  CHECK(joiner->read()->get("key0")->value == "later");
  CHECK(recompute(*joiner) == joiner->read()->meta().content_hash);
}

namespace {
// A store whose map starts at 1 MiB, so that a few writes make it grow.
std::unique_ptr<Store> small_map_store(const std::filesystem::path& dir) {
  Options o;
  o.dir = dir;
  o.initial_map_bytes = 1 << 20;
  o.map_headroom_bytes = 0;
  return Store::open(o);
}

// About 400 KB of new keys.
void fill_round(Store& store, int round) {
  store.write([&](WriteTxn& t) {
    for (int j = 0; j < 100; ++j) t.put(fmt::format("k{}-{}", round, j), 1, std::string(4000, 'x'));
  });
}
}  // namespace

TEST_CASE("a snapshot gives way to the map's growth: the writer never waits for a transfer") {
  TempDir dir;
  auto store = small_map_store(dir.path());
  store->write([](WriteTxn& t) { t.put("a", 1, "x"); });
  auto snap = store->snapshot();
  // Enough to grow the 1 MiB map several times over.
  for (int i = 0; i < 8; ++i) fill_round(*store, i);
  CHECK(store->map_bytes() > (1u << 20));
  SnapshotCursor cursor;
  CHECK_THROWS_WITH(snap->next(cursor, 100), Catch::Contains("snapshot cancelled"));
  snap.reset();
  CHECK(store->snapshot()->meta().content_hash == store->read()->meta().content_hash);
}

TEST_CASE("the map grows ahead while no snapshot is open: a snapshot starts with room to spare") {
  TempDir dir;
  auto store = small_map_store(dir.path());
  fill_round(*store, 0);
  fill_round(*store, 1);  // past half of 1 MiB, nothing open: grown at once, before it is full
  CHECK(store->map_bytes() == (2u << 20));
  auto snap = store->snapshot();
  fill_round(*store, 2);  // past half of 2 MiB with a snapshot open: it waits for the map to fill
  CHECK(store->map_bytes() == (2u << 20));
  SnapshotCursor cursor;
  CHECK_NOTHROW(snap->next(cursor, 100));
}

TEST_CASE("a staged entry out of order is refused") {
  TempDir dir;
  auto store = open_store(dir.path());
  ContentHash h;
  CHECK_THROWS_WITH(store->write([&](WriteTxn& t) {
    t.stage_put(TableItem{Table::data, "b", std::string(8, '\0') + "1"}, h);
    t.stage_put(TableItem{Table::data, "a", std::string(8, '\0') + "2"}, h);
  }),
                    Catch::Contains("out of order"));
}

TEST_CASE("a data dir of an unknown format version is refused") {
  TempDir dir;
  {
    auto store = open_store(dir.path());
    store->write(
        [](WriteTxn& t) { t.meta_put("format_version", std::string("\x63\0\0\0\0\0\0\0", 8)); });
  }
  try {
    open_store(dir.path());
    FAIL("opened a data dir of format 99");
  } catch (const StorageError& e) {
    CHECK(e.kind() == StorageError::Kind::format);
    CHECK_THAT(e.what(), Catch::Contains("format version 99"));
  }
}

TEST_CASE("a data dir in use is refused") {
  TempDir dir;
  auto store = open_store(dir.path());
  try {
    open_store(dir.path());
    FAIL("opened a locked data dir");
  } catch (const StorageError& e) {
    CHECK(e.kind() == StorageError::Kind::locked);
    CHECK_THAT(e.what(), Catch::Contains("in use"));
  }
}

TEST_CASE("the map grows on demand and a full database fails the write clearly") {
  TempDir dir;
  Options o;
  o.initial_map_bytes = 1 << 20;
  o.max_map_bytes = 8 << 20;
  auto store = open_store(dir.path(), o);
  const std::string value(64 << 10, 'x');
  for (int i = 0; i < 40; ++i)  // 2.5 MiB: more than the first map
    store->write([&](WriteTxn& t) { t.put("k" + std::to_string(i), 1, value); });
  CHECK(store->map_bytes() > (1u << 20));
  CHECK(store->read()->get("k39"));

  bool full = false;
  for (int i = 40; i < 400 && !full; ++i) {
    try {
      store->write([&](WriteTxn& t) { t.put("k" + std::to_string(i), 1, value); });
    } catch (const StorageError& e) {
      CHECK(e.kind() == StorageError::Kind::map_full);
      CHECK_THAT(e.what(), Catch::Contains("maximum size"));
      full = true;
    }
  }
  CHECK(full);
  // Reads go on, and so do writes that free space.
  CHECK(store->read()->get("k0")->value == value);
  store->write([](WriteTxn& t) { t.del("k0"); });
}

namespace {

// A data dir as format 2 left it: one table of records and one of the seqno each was made at.
void write_format2_store(const std::filesystem::path& dir,
                         const std::vector<std::pair<size_t, std::string>>& records) {
  tutti::test::RawLmdb raw(dir);
  const MDB_dbi meta = raw.table("meta"), txns = raw.table("txns"),
                seqnos = raw.table("txn_seqnos", MDB_INTEGERKEY), staged = raw.table("data.1");
  raw.put(meta, "format_version", tutti::test::u64_raw(2));
  raw.put(meta, "snapshot_resume", "a snapshot staged in part");
  raw.put(staged, "staged-key", std::string(8, '\0') + "staged");
  for (const auto& [seqno, id] : records) {
    raw.put(txns, id, "outcome of " + id);
    raw.put(seqnos, seqno, id);
  }
  raw.commit();
}

}  // namespace

TEST_CASE(
    "a format 2 data dir is upgraded when opened - every record kept - and checks change nothing") {
  TempDir dir;
  const size_t w = kTxnWindow;
  write_format2_store(dir.path(), {{w - 1, "even-1"}, {w, "even-2"}, {w + 1, "odd-1"}});
  // --verify and --recover open it as it is: it says what it is, and stays format 2.
  const VerifyReport report = verify_store(Options{dir.path()}, true);
  CHECK_FALSE(report.ok);
  CHECK(report.outdated);
  CHECK(report.message.find("format version 2") != std::string::npos);
  Options as_is{dir.path()};
  as_is.upgrade = false;
  try {
    open_store(dir.path(), as_is);
    FAIL("a format 2 data dir opened without upgrading it");
  } catch (const StorageError& e) {
    CHECK(e.kind() == StorageError::Kind::outdated);
  }
  auto store = open_store(dir.path());
  {
    auto r = store->read();
    CHECK(r->txn_records("even-1") == std::vector<std::string>{"outcome of even-1"});
    CHECK(r->txn_records("odd-1") == std::vector<std::string>{"outcome of odd-1"});
    CHECK_FALSE(r->meta_get("snapshot_resume"));  // the joiner starts its snapshot over
  }
  // Each record went to the table of its seqno's generation.
  store->write([](WriteTxn& t) { t.start_txn_generation(0); });
  CHECK(store->read()->txn_records("even-2").empty());
  CHECK(store->read()->txn_records("odd-1").size() == 1);
  CHECK(store->verify(true).find("txns.odd: 1 entries") != std::string::npos);
  store.reset();
  CHECK(verify_store(Options{dir.path()}, true).ok);  // format 4 now
}

namespace {

uint64_t size_of(const std::filesystem::path& file) {
  return std::filesystem::file_size(file);
}

// Polls for up to 10 s: the warmer's thread answers in milliseconds.
template <typename F>
bool eventually(F&& done) {
  for (int i = 0; i < 1000 && !done(); ++i) usleep(10'000);
  return done();
}

}  // namespace

TEST_CASE("the page warmer extends a file ahead of its used end, never over what is written") {
  TempDir dir;
  const auto file = dir.path() / "data.mdb";
  const std::string written(1u << 20, 'x');
  {
    FILE* f = std::fopen(file.c_str(), "wb");
    REQUIRE(f);
    REQUIRE(std::fwrite(written.data(), 1, written.size(), f) == written.size());
    std::fclose(f);
  }
  constexpr uint64_t kAhead = 4u << 20;
  PageWarmer warmer(file, kAhead, 0, [] { return UINT64_MAX; });
  warmer.used(1u << 20);
  REQUIRE(eventually([&] { return warmer.handled() >= 1 || warmer.failed(); }));
  if (warmer.failed())
    return tutti::test::report_skipped("this file system has no fallocate for the warmer");
  CHECK(warmer.warmed_to() == (1u << 20) + kAhead);
  CHECK(size_of(file) == (1u << 20) + kAhead);
  // Less than half the distance used since: nothing more to do.
  warmer.used(2u << 20);
  CHECK(warmer.handled() == 1);
  warmer.used(4u << 20);
  REQUIRE(eventually([&] { return warmer.handled() >= 2; }));
  CHECK(size_of(file) == (4u << 20) + kAhead);
  std::string back(written.size() + 16, '\0');
  FILE* f = std::fopen(file.c_str(), "rb");
  REQUIRE(f);
  REQUIRE(std::fread(back.data(), 1, back.size(), f) == back.size());
  std::fclose(f);
  CHECK(back.substr(0, written.size()) == written);             // what was written stays
  CHECK(back.substr(written.size()) == std::string(16, '\0'));  // the rest reads as zeros
}

TEST_CASE("the page warmer leaves the disk's last free space to the store") {
  TempDir dir;
  const auto file = dir.path() / "data.mdb";
  {
    FILE* f = std::fopen(file.c_str(), "wb");
    REQUIRE(f);
    std::fclose(f);
  }
  constexpr uint64_t kAhead = 4u << 20;
  // Free space enough for the range but not for the range and the reserve.
  PageWarmer warmer(file, kAhead, 16u << 20, [] { return uint64_t{(16u << 20) + (2u << 20)}; });
  warmer.used(4096);
  REQUIRE(eventually([&] { return warmer.handled() >= 1; }));
  CHECK_FALSE(warmer.failed());
  CHECK(size_of(file) == 0);
  CHECK(warmer.warmed_to() == 0);
}

TEST_CASE("a store warmed ahead of its data file reads, verifies and reopens as before") {
  TempDir dir;
  Options o;
  o.warm_ahead_bytes = 4u << 20;
  const std::string value(65536, 'v');
  ContentHash hash;
  {
    auto store = open_store(dir.path(), o);
    for (uint64_t i = 1; i <= 300; ++i)  // about 20 MiB: the warmer runs beside the commits
      store->write([&](WriteTxn& t) {
        t.put(fmt::format("k{:04}", i), i, value + std::to_string(i));
        t.set_last_committed(i);
      });
    hash = store->read()->meta().content_hash;
    // LMDB alone would end the file at its last page: 300 values of 17 pages and a few more.
    const uint64_t lmdb_end = 300 * 17 * 4096 + (256u << 10);
    REQUIRE(eventually([&] { return size_of(dir.path() / "data.mdb") >= lmdb_end + (2u << 20); }));
  }
  auto store = open_store(dir.path(), o);
  CHECK(store->verify(true).size() > 0);
  auto r = store->read();
  CHECK(r->meta().last_committed == 300);
  CHECK(r->meta().content_hash == hash);
  CHECK(recompute(*store) == hash);
  CHECK(r->get("k0123")->value == value + "123");
}
