#include "storage/store.hpp"

#include "storage/lmdb.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include <unistd.h>
#include <mutex>
#include <thread>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace tutti::storage {
using namespace lmdb;
namespace {

constexpr unsigned kMaxDbs = 16;

void on_lmdb_assert(MDB_env* env, const char* msg);
[[noreturn]] void stop_after_partial_write(const std::filesystem::path& dir, const char* what);

// Meta names that storage owns.
constexpr std::string_view kMetaFormat = "format_version";
constexpr std::string_view kMetaHistory = "history_uuid";
constexpr std::string_view kMetaNode = "node_uuid";
constexpr std::string_view kMetaLastCommitted = "last_committed";
constexpr std::string_view kMetaContentHash = "content_hash";
constexpr std::string_view kMetaLogFirst = "log_first";
constexpr std::string_view kMetaLogLast = "log_last";
constexpr std::string_view kMetaLogBytes = "log_bytes";

void check_key(std::string_view key) {
  if (auto why = key_refusal(key); !why.empty())
    throw StorageError(StorageError::Kind::invalid, "storage: " + why);
}

}  // namespace

std::string key_refusal(std::string_view key) {
  if (key.empty()) return "empty key";
  if (key.size() > kMaxKeyBytes)
    return fmt::format("key of {} bytes is over the store's limit of {} bytes", key.size(),
                       kMaxKeyBytes);
  return "";
}

// ---- ReadView ----

std::optional<Versioned> ReadView::get(std::string_view key) const {
  if (!key_refusal(key).empty()) return std::nullopt;
  auto raw = raw_get(txn_, dbis_.data, val(key));
  if (!raw) return std::nullopt;
  return decode_data(*raw);
}

std::vector<Entry> ReadView::scan(std::string_view prefix, size_t limit) const {
  std::vector<Entry> out;
  if (limit == 0 || prefix.size() > kMaxKeyBytes) return out;
  Cursor cursor(txn_, dbis_.data);
  MDB_val k = val(prefix), d;
  bool more = prefix.empty() ? cursor.get(&k, &d, MDB_FIRST) : cursor.get(&k, &d, MDB_SET_RANGE);
  while (more && out.size() < limit) {
    const std::string_view key = view(k);
    if (!key.starts_with(prefix)) break;
    Versioned v = decode_data(view(d));
    out.push_back(Entry{std::string(key), v.version, std::move(v.value)});
    more = cursor.get(&k, &d, MDB_NEXT);
  }
  return out;
}

std::optional<std::string> ReadView::log_get(uint64_t seqno) const {
  return log_->get(seqno);
}

std::vector<LogEntry> ReadView::log_from(uint64_t from, size_t max_entries,
                                         size_t max_bytes) const {
  return log_->from(from, max_entries, max_bytes);
}

std::vector<std::string> ReadView::txn_records(std::string_view txn_id) const {
  std::vector<std::string> out;
  if (!key_refusal(txn_id).empty()) return out;
  for (MDB_dbi dbi : dbis_.txns)
    if (auto raw = raw_get(txn_, dbi, val(txn_id))) out.emplace_back(*raw);
  return out;
}

std::optional<std::string> ReadView::meta_get(std::string_view name) const {
  auto raw = raw_get(txn_, dbis_.meta, val(name));
  if (!raw) return std::nullopt;
  return std::string(*raw);
}

ReadTxn::ReadTxn(MDB_txn* txn, Dbis dbis, const Log* log,
                 std::shared_lock<std::shared_mutex> no_growth)
    : ReadView(txn, dbis, Meta{}, log), no_growth_(std::move(no_growth)) {}

ReadTxn::~ReadTxn() {
  mdb_txn_abort(txn_);
}

// ---- WriteTxn ----

void WriteTxn::put(std::string_view key, uint64_t version, std::string_view value) {
  check_key(key);
  if (value.size() > kMaxValueBytes)
    throw StorageError(StorageError::Kind::invalid,
                       fmt::format("storage: value of {} bytes is over the store's limit of {}",
                                   value.size(), kMaxValueBytes));
  dirty_ = true;
  if (auto old = get(key)) meta_.content_hash.remove(key, old->version, old->value);
  std::string raw = u64_bytes(version);
  raw.append(value);
  MDB_val k = val(key), d = val(raw);
  check(mdb_put(txn_, dbis_.data, &k, &d, 0), "put");
  meta_.content_hash.add(key, version, value);
}

bool WriteTxn::del(std::string_view key) {
  auto old = get(key);
  if (!old) return false;
  dirty_ = true;
  meta_.content_hash.remove(key, old->version, old->value);
  MDB_val k = val(key);
  check(mdb_del(txn_, dbis_.data, &k, nullptr), "delete");
  return true;
}

void WriteTxn::log_append(uint64_t seqno, std::string_view bytes) {
  if (meta_.log_last != 0 && seqno <= meta_.log_last) {
    // A batch written again after its LMDB commit failed finds its entries in the log already.
    if (log_ops_.empty() && log_->get(seqno) == bytes) return;
    throw StorageError(
        StorageError::Kind::corrupt,
        fmt::format("storage: log append of seqno {} after {}", seqno, meta_.log_last));
  }
  log_ops_.push_back(LogOp{LogOp::Kind::put, seqno, std::string(bytes)});
  if (meta_.log_first == 0) meta_.log_first = seqno;
  meta_.log_last = seqno;
  meta_.log_bytes += bytes.size();
}

void WriteTxn::log_truncate_from(uint64_t from) {
  log_ops_.push_back(LogOp{LogOp::Kind::truncate_from, from, {}});
  if (meta_.log_first >= from) {
    meta_.log_first = meta_.log_last = 0;
  } else if (meta_.log_last >= from) {
    meta_.log_last = from - 1;
  }
}

void WriteTxn::log_put(uint64_t seqno, std::string_view bytes) {
  if (auto old = log_->size_of(seqno)) meta_.log_bytes -= *old;
  log_ops_.push_back(LogOp{LogOp::Kind::put, seqno, std::string(bytes)});
  meta_.log_bytes += bytes.size();
  if (meta_.log_first == 0 || seqno < meta_.log_first) meta_.log_first = seqno;
  meta_.log_last = std::max(meta_.log_last, seqno);
}

void WriteTxn::log_drop_through(uint64_t seqno) {
  log_ops_.push_back(LogOp{LogOp::Kind::drop_through, seqno, {}});
  if (meta_.log_last <= seqno) {
    meta_.log_first = meta_.log_last = 0;
  } else if (meta_.log_first <= seqno) {
    meta_.log_first = seqno + 1;  // about: the log's own bounds count once it is written
  }
}

void WriteTxn::record_txn(std::string_view txn_id, uint64_t generation, std::string_view outcome) {
  check_key(txn_id);
  dirty_ = true;
  MDB_val k = val(txn_id), d = val(outcome);
  check(mdb_put(txn_, dbis_.txns[generation % 2], &k, &d, 0), "record txn");
}

void WriteTxn::start_txn_generation(uint64_t generation) {
  dirty_ = true;
  check(mdb_drop(txn_, dbis_.txns[generation % 2], 0), "empty a generation of txn records");
}

void WriteTxn::meta_put(std::string_view name, std::string_view bytes) {
  dirty_ = true;
  MDB_val k = val(name), d = val(bytes);
  check(mdb_put(txn_, dbis_.meta, &k, &d, 0), "meta put");
}

void WriteTxn::meta_del(std::string_view name) {
  dirty_ = true;
  MDB_val k = val(name);
  const int rc = mdb_del(txn_, dbis_.meta, &k, nullptr);
  if (rc != MDB_NOTFOUND) check(rc, "meta delete");
}

void WriteTxn::set_identity(std::string_view history_uuid, std::string_view node_uuid) {
  dirty_ = true;
  meta_.history_uuid = history_uuid;
  meta_.node_uuid = node_uuid;
}

void WriteTxn::set_last_committed(uint64_t seqno) {
  if (seqno < meta_.last_committed)
    throw StorageError(StorageError::Kind::corrupt,
                       fmt::format("storage: last committed would go back from {} to {}",
                                   meta_.last_committed, seqno));
  dirty_ = dirty_ || seqno != meta_.last_committed;
  meta_.last_committed = seqno;
}

void WriteTxn::write_meta() {
  meta_put(kMetaHistory, meta_.history_uuid);
  meta_put(kMetaNode, meta_.node_uuid);
  meta_put(kMetaLastCommitted, u64_bytes(meta_.last_committed));
  meta_put(kMetaContentHash,
           u64_bytes(meta_.content_hash.lo()) + u64_bytes(meta_.content_hash.hi()));
}

// ---- Store ----

namespace {

int lock_dir(const std::filesystem::path& dir) {
  const auto path = dir / "LOCK";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw StorageError(StorageError::Kind::io,
                       fmt::format("storage: cannot open {}: {}", path.string(), strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    throw StorageError(
        StorageError::Kind::locked,
        fmt::format("data dir {} is in use by another process (pid {})", dir.string(),
                    n > 0 ? std::string(buf, n) : std::string("unknown")));
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the pid; the pid is only there to help an operator.
  }
  return fd;
}

}  // namespace

// Pages past the end of the file would be a SIGBUS when LMDB first touches them: refuse a file
// shorter than its meta pages say before anything reads a page.
void Store::check_file_size(uint64_t last_pgno) {
  const auto path = options_.dir / "data.mdb";
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  const uint64_t need = (last_pgno + 1) * page_bytes_;
  if (ec || size >= need) return;
  mdb_env_close(env_);
  env_ = nullptr;
  throw StorageError(StorageError::Kind::corrupt,
                     fmt::format("storage: {} is damaged: it has {} bytes, but its meta pages say "
                                 "the store uses {} bytes (truncated?). tuttid does not start on "
                                 "it: move the data dir aside and restore it from a backup",
                                 path.string(), size, need));
}

std::unique_ptr<Store> Store::open(const Options& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec)
    throw StorageError(StorageError::Kind::io, fmt::format("storage: cannot create data dir {}: {}",
                                                           options.dir.string(), ec.message()));
  const int lock_fd = lock_dir(options.dir);
  std::error_code size_ec;
  const auto data_file = options.dir / "data.mdb";
  if (std::filesystem::exists(data_file) && std::filesystem::file_size(data_file, size_ec) == 0 &&
      !size_ec) {
    ::close(lock_fd);
    throw StorageError(StorageError::Kind::corrupt,
                       fmt::format("storage: {} is empty (0 bytes): truncated, or never written. "
                                   "tuttid does not create a new store over it (that would make "
                                   "this a new node silently); remove the data dir yourself if "
                                   "this node is to start afresh",
                                   data_file.string()));
  }
  std::unique_ptr<Store> store(new Store(options, lock_fd));
  store->open_env();
  return store;
}

Store::Store(const Options& options, int lock_fd) : options_(options), lock_fd_(lock_fd) {}

Store::~Store() {
  warmer_.reset();
  cancel_snapshots();
  if (env_) {
    if (options_.durability == Durability::memory) {
      mdb_env_sync(env_, 1);
      try {
        if (log_) log_->sync();
      } catch (const StorageError&) {
        // Closing: what the page cache holds still reaches the disk, unless the machine fails.
      }
    }
    mdb_env_close(env_);
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void Store::open_env() {
  check(mdb_env_create(&env_), "env create");
  check(mdb_env_set_maxdbs(env_, kMaxDbs), "set maxdbs");
  check(mdb_env_set_assert(env_, on_lmdb_assert), "set assert");
  check(mdb_env_set_mapsize(env_, options_.initial_map_bytes), "set mapsize");
  // fsync: LMDB's default, every commit is durable when it returns (one commit per batch).
  // memory: commits reach the page cache; sync() flushes them in the background.
  unsigned flags = MDB_NOTLS;
  if (options_.durability == Durability::memory) flags |= MDB_NOSYNC | MDB_NOMETASYNC;
  const int rc = mdb_env_open(env_, options_.dir.c_str(), flags, 0644);
  if (rc != MDB_SUCCESS) {
    mdb_env_close(env_);
    env_ = nullptr;
    fail(rc, fmt::format("open {}", options_.dir.string()));
  }
  if (mdb_env_get_maxkeysize(env_) < static_cast<int>(kMaxKeyBytes)) {
    const int lmdb_max = mdb_env_get_maxkeysize(env_);
    mdb_env_close(env_);
    env_ = nullptr;
    throw StorageError(StorageError::Kind::format,
                       fmt::format("storage: this LMDB build holds keys of at most {} bytes; tutti "
                                   "needs {} (every node must hold every key)",
                                   lmdb_max, kMaxKeyBytes));
  }
  MDB_envinfo info;
  check(mdb_env_info(env_, &info), "env info");
  map_bytes_ = info.me_mapsize;
  MDB_stat st;
  check(mdb_env_stat(env_, &st), "env stat");
  page_bytes_ = st.ms_psize;
  check_file_size(info.me_last_pgno);
  if (options_.warm_ahead_bytes > 0)
    warmer_ = std::make_unique<PageWarmer>(options_.dir / "data.mdb", options_.warm_ahead_bytes,
                                           4 * options_.warm_ahead_bytes,
                                           [this] { return free_bytes(); });

  MDB_txn* txn = nullptr;
  check(mdb_txn_begin(env_, nullptr, 0, &txn), "begin");
  auto open_db = [&](const char* name, unsigned db_flags) {
    MDB_dbi dbi;
    const int rc2 = mdb_dbi_open(txn, name, MDB_CREATE | db_flags, &dbi);
    if (rc2 != MDB_SUCCESS) {
      mdb_txn_abort(txn);
      fail(rc2, fmt::format("open database {}", name));
    }
    return dbi;
  };
  dbis_.meta = open_db("meta", 0);
  try {
    // A new store starts with an empty log, whatever a log/ folder beside it holds.
    if (!raw_get(txn, dbis_.meta, val(kMetaFormat))) {
      std::error_code ec;
      std::filesystem::remove_all(options_.dir / "log", ec);
      if (ec)
        throw StorageError(StorageError::Kind::io,
                           fmt::format("storage: cannot remove {}: {}",
                                       (options_.dir / "log").string(), ec.message()));
    }
    open_format(txn);
  } catch (...) {
    mdb_txn_abort(txn);
    throw;
  }
  const MDB_dbi set0[] = {open_db("data", 0), open_db("txns.even", 0), open_db("txns.odd", 0)};
  const MDB_dbi set1[] = {open_db("data.1", 0), open_db("txns.even.1", 0),
                          open_db("txns.odd.1", 0)};
  std::optional<std::string_view> live;
  try {
    live = raw_get(txn, dbis_.meta, val(kMetaLiveTables));
  } catch (...) {
    mdb_txn_abort(txn);
    throw;
  }
  const bool second = live && u64_from(*live) == 1;
  const MDB_dbi* on = second ? set1 : set0;
  const MDB_dbi* off = second ? set0 : set1;
  dbis_.data = on[0], dbis_.txns[0] = on[1], dbis_.txns[1] = on[2];
  dbis_.staged_data = off[0], dbis_.staged_txns[0] = off[1], dbis_.staged_txns[1] = off[2];
  try {
    const auto f = raw_get(txn, dbis_.meta, val(kMetaFormat));
    const uint64_t format = f ? u64_from(*f) : kFormatVersion;
    if (format == 2) migrate_txn_records(txn);
    if (format < kFormatVersion) {
      migrate_log(txn);
    } else if (options_.upgrade) {
      std::error_code ec;
      std::filesystem::remove_all(options_.dir / "log.new", ec);  // an upgrade's, left half done
    }
    if (!log_) log_ = Log::open(options_.dir / "log", options_.durability == Durability::fsync);
  } catch (...) {
    mdb_txn_abort(txn);
    throw;
  }
  check(mdb_txn_commit(txn), "commit database handles");
}

// Format 3 and before kept the write-set log in LMDB (wscache, with its bounds in meta). Its
// entries are written to a new log in log.new, made durable and renamed to log, before the
// transaction that drops the table commits: a crash before that commit leaves a format 3 store,
// upgraded again (from scratch) at the next start.
void Store::migrate_log(MDB_txn* txn) {
  std::error_code ec;
  const auto fresh = options_.dir / "log.new", final_dir = options_.dir / "log";
  std::filesystem::remove_all(fresh, ec);
  std::filesystem::remove_all(final_dir, ec);
  MDB_dbi wscache;
  const int rc = mdb_dbi_open(txn, "wscache", MDB_INTEGERKEY, &wscache);
  if (rc != MDB_NOTFOUND) check(rc, "open database wscache");
  {
    auto log = Log::open(fresh, true);
    if (rc == MDB_SUCCESS) {
      Cursor cursor(txn, wscache);
      MDB_val k, d;
      std::vector<LogOp> ops;
      size_t bytes = 0;
      for (bool more = cursor.get(&k, &d, MDB_FIRST); more; more = cursor.get(&k, &d, MDB_NEXT)) {
        size_t seqno;
        std::memcpy(&seqno, k.mv_data, sizeof seqno);
        ops.push_back(LogOp{LogOp::Kind::put, seqno, std::string(view(d))});
        bytes += d.mv_size;
        if (bytes >= (4u << 20)) log->write(ops), ops.clear(), bytes = 0;
      }
      log->write(ops);
    }
  }
  if (std::filesystem::exists(fresh, ec)) {
    std::filesystem::rename(fresh, final_dir, ec);
    if (ec)
      throw StorageError(StorageError::Kind::io,
                         fmt::format("storage: cannot rename {} to {}: {}", fresh.string(),
                                     final_dir.string(), ec.message()));
    sync_dir(options_.dir);  // the rename is on disk before the commit that counts on it
  }
  if (rc == MDB_SUCCESS) check(mdb_drop(txn, wscache, 1), "drop the format 3 log table");
  for (std::string_view name : {kMetaLogFirst, kMetaLogLast, kMetaLogBytes}) {
    MDB_val k = val(name);
    if (const int del = mdb_del(txn, dbis_.meta, &k, nullptr); del != MDB_NOTFOUND)
      check(del, "drop the format 3 log bounds");
  }
  put_format(txn);
}

void Store::open_format(MDB_txn* txn) {
  auto raw = raw_get(txn, dbis_.meta, val(kMetaFormat));
  if (!raw) return put_format(txn);  // a new store
  const uint64_t version = u64_from(*raw);
  const bool older = version == 2 || version == 3;
  if (version == kFormatVersion || (older && options_.upgrade)) return;
  if (older)
    throw StorageError(StorageError::Kind::outdated,
                       fmt::format("data dir {} has storage format version {}; this tuttid reads "
                                   "format version {}, and upgrades a format {} data dir when it "
                                   "starts on it (every record kept)",
                                   options_.dir.string(), version, kFormatVersion, version));
  throw StorageError(StorageError::Kind::format,
                     fmt::format("data dir {} has storage format version {}; this tuttid reads "
                                 "format version {} only",
                                 options_.dir.string(), version, kFormatVersion));
}

// Format 2 kept one table of records (txns) and one of the seqno each was made at (txn_seqnos),
// per set of state tables. Each record goes to the table of its generation's parity: the
// records that count at a seqno are the same before and after (core/applier.hpp). The other
// set is a snapshot staged in part, if any: emptied (with its record, kMetaSnapshotResume), so a
// joiner starts its snapshot over, in the new layout.
void Store::migrate_txn_records(MDB_txn* txn) {
  auto old_db = [&](const char* name) {
    MDB_dbi dbi;
    const int rc = mdb_dbi_open(txn, name, 0, &dbi);
    if (rc == MDB_NOTFOUND) return std::optional<MDB_dbi>();
    check(rc, fmt::format("open database {}", name));
    return std::optional<MDB_dbi>(dbi);
  };
  const bool second = [&] {
    auto live = raw_get(txn, dbis_.meta, val(kMetaLiveTables));
    return live && u64_from(*live) == 1;
  }();
  auto live_txns = old_db(second ? "txns.1" : "txns");
  auto live_seqnos = old_db(second ? "txn_seqnos.1" : "txn_seqnos");
  if (live_txns && live_seqnos) {
    Cursor cursor(txn, *live_seqnos);
    MDB_val k, id;
    for (bool more = cursor.get(&k, &id, MDB_FIRST); more; more = cursor.get(&k, &id, MDB_NEXT)) {
      size_t seqno;
      std::memcpy(&seqno, k.mv_data, sizeof seqno);
      auto outcome = raw_get(txn, *live_txns, id);
      if (!outcome) continue;
      MDB_val d = val(*outcome);
      check(mdb_put(txn, dbis_.txns[((seqno - 1) / kTxnWindow) % 2], &id, &d, 0),
            "migrate a txn record");
    }
  }
  for (const char* name : {"txns", "txn_seqnos", "txns.1", "txn_seqnos.1"})
    if (auto dbi = old_db(name)) check(mdb_drop(txn, *dbi, 1), "drop a format 2 table");
  check(mdb_drop(txn, dbis_.staged_data, 0), "empty the staged data");
  MDB_val resume = val(kMetaSnapshotResume);
  if (const int rc = mdb_del(txn, dbis_.meta, &resume, nullptr); rc != MDB_NOTFOUND)
    check(rc, "drop the staged snapshot's record");
  put_format(txn);
}

void Store::put_format(MDB_txn* txn) {
  MDB_val k = val(kMetaFormat);
  const std::string v = u64_bytes(kFormatVersion);
  MDB_val d = val(v);
  check(mdb_put(txn, dbis_.meta, &k, &d, 0), "write the format version");
}

Meta Store::load_meta(MDB_txn* txn) const {
  Meta m;
  auto get = [&](std::string_view name) { return raw_get(txn, dbis_.meta, val(name)); };
  auto get_u64 = [&](std::string_view name) {
    auto raw = get(name);
    return raw ? u64_from(*raw) : 0;
  };
  if (auto h = get(kMetaHistory)) m.history_uuid = std::string(*h);
  if (auto n = get(kMetaNode)) m.node_uuid = std::string(*n);
  m.last_committed = get_u64(kMetaLastCommitted);
  if (auto ch = get(kMetaContentHash)) {
    if (ch->size() != 16)
      throw StorageError(StorageError::Kind::corrupt, "storage: content hash has a bad size");
    m.content_hash = ContentHash(u64_from(ch->substr(0, 8)), u64_from(ch->substr(8)));
  }
  const Log::Bounds b = log_->bounds();
  m.log_first = b.first;
  m.log_last = b.last;
  m.log_bytes = b.bytes;
  return m;
}

std::unique_ptr<ReadTxn> Store::read() const {
  std::shared_lock no_growth(growth_);
  MDB_txn* txn = nullptr;
  check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn), "begin read");
  std::unique_ptr<ReadTxn> r(new ReadTxn(txn, dbis_, log_.get(), std::move(no_growth)));
  r->meta_ = load_meta(txn);
  return r;
}

void Store::write(const std::function<void(WriteTxn&)>& fn, Sync sync, LogOrder order,
                  const std::function<void()>* logged) {
  // LMDB 0.9 takes MDB_NOMETASYNC from the environment only (not per transaction); this thread
  // is the one writer, so it sets it around its own commit. Readers meanwhile look only at other
  // flags of the same word. Memory durability has it always.
  const bool meta_async = sync == Sync::data_only && options_.durability == Durability::fsync;
  for (;;) {
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env_, nullptr, 0, &txn), "begin write");
    int rc = MDB_SUCCESS;
    bool installed = false;
    bool dirty = false;
    uint64_t committed = 0;
    std::vector<LogOp> log_ops;
    try {
      WriteTxn w(txn, dbis_, load_meta(txn), log_.get());
      fn(w);
      if (w.dirty_) w.write_meta();
      installed = w.installed_;
      dirty = w.dirty_;
      committed = w.meta_.last_committed;
      log_ops = std::move(w.log_ops_);
    } catch (const StorageError& e) {
      mdb_txn_abort(txn);
      if (e.kind() != StorageError::Kind::map_full) throw;
      rc = MDB_MAP_FULL;
    } catch (...) {
      mdb_txn_abort(txn);
      throw;
    }
    if (rc == MDB_SUCCESS) {
      // The additions that go after the commit (LogOrder::around).
      std::vector<LogOp> later;
      try {
        env().before_commit(options_.dir);
        if (order == LogOrder::around) {
          // From the first addition on, in their order: a removal after it must stay after it.
          auto adds = std::find_if(log_ops.begin(), log_ops.end(),
                                   [](const LogOp& op) { return !op.removes(); });
          later.assign(std::make_move_iterator(adds), std::make_move_iterator(log_ops.end()));
          log_ops.erase(adds, log_ops.end());
        }
        log_->write(log_ops);
      } catch (...) {
        mdb_txn_abort(txn);
        throw;
      }
      if (logged && order == LogOrder::before) {
        (*logged)();
        logged = nullptr;  // once, though the map may grow and the transaction run again
      }
      if (!dirty) {
        mdb_txn_abort(txn);  // nothing of LMDB's changed: no commit, no flush
      } else {
        if (meta_async && (rc = mdb_env_set_flags(env_, MDB_NOMETASYNC, 1)) != MDB_SUCCESS) {
          mdb_txn_abort(txn);
          fail(rc, "set meta async");
        }
        rc = mdb_txn_commit(txn);  // frees txn whatever it returns
        if (meta_async) check(mdb_env_set_flags(env_, MDB_NOMETASYNC, 0), "set meta sync");
      }
      if (rc == MDB_SUCCESS) {
        try {
          log_->write(later);
        } catch (const StorageError& e) {
          // The state committed and the log has not the entries after it: this batch can be
          // neither undone nor written again. Stopping leaves what a crash here would, which a
          // restart recovers (the member acknowledged none of them).
          stop_after_partial_write(options_.dir, e.what());
        }
        log_->trim(options_.wscache_bytes, committed);
      }
    }
    if (rc == MDB_SUCCESS) {
      if (installed) {  // a staged snapshot is live from now on: later reads see it
        std::unique_lock swap(growth_);
        std::swap(dbis_.data, dbis_.staged_data);
        std::swap(dbis_.txns, dbis_.staged_txns);
      }
      grow_ahead();
      // Now and then: a slot costs nothing to check, and a dead one costs the file its reuse.
      constexpr uint64_t kReaderCheckEvery = 4096;
      if (++writes_ % kReaderCheckEvery == 0) clear_stale_readers();
      return;
    }
    if (rc == EIO || rc == ENOSPC) fail_io(rc);
    if (rc != MDB_MAP_FULL) fail(rc, "commit");
    if (map_bytes_ >= options_.max_map_bytes)
      throw StorageError(StorageError::Kind::map_full,
                         fmt::format("storage: the database reached its maximum size of {} bytes",
                                     options_.max_map_bytes));
    std::unique_lock alone(growth_);
    cancel_snapshots();  // a donor's long read must not stop the writer: its joiner starts over
    double_map();
  }
}

void Store::double_map() {
  const uint64_t grown = std::min<uint64_t>(map_bytes_ * 2, options_.max_map_bytes);
  check(mdb_env_set_mapsize(env_, grown), "grow map");
  map_bytes_ = grown;
  clear_stale_readers();  // a map that grows may be one that stale readers keep from reusing pages
}

void Store::clear_stale_readers() {
  int dead = 0;
  check(mdb_reader_check(env_, &dead), "reader check");
  stale_readers_cleared_ += static_cast<uint64_t>(dead);
}

// A map that fills up grows, but that cancels the snapshots being read (a joiner's transfer
// starts over). So the map grows ahead, while no snapshot is open: each one starts with at least
// half the map, and map_headroom_bytes, free. The map's size reserves address space, not disk.
void Store::grow_ahead() {
  MDB_envinfo info;
  check(mdb_env_info(env_, &info), "env info");
  const uint64_t used = (uint64_t{info.me_last_pgno} + 1) * page_bytes_;
  if (warmer_) warmer_->used(used);
  const bool roomy = used * 2 <= map_bytes_ && map_bytes_ - used >= options_.map_headroom_bytes;
  if (roomy || map_bytes_ >= options_.max_map_bytes) return;
  std::unique_lock alone(growth_);
  {
    std::lock_guard lock(snapshots_mu_);
    if (!snapshots_.empty()) return;
  }
  double_map();
}

// LMDB reports a short write as EIO: on a nearly full disk that is ENOSPC in all but name.
void Store::fail_io(int rc) const {
  struct statvfs fs;
  if (::statvfs(options_.dir.c_str(), &fs) == 0) {
    const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    if (rc == ENOSPC || free_bytes < (16u << 20))
      throw StorageError(StorageError::Kind::disk_full,
                         fmt::format("storage: commit: no space left on the data dir's disk ({} "
                                     "bytes free in {})",
                                     free_bytes, options_.dir.string()));
  }
  fail(rc, "commit");
}

namespace {

std::atomic<void (*)(const char*)> g_damage_reporter{nullptr};

void on_lmdb_assert(MDB_env* env, const char* msg) {
  const char* path = nullptr;
  if (env) mdb_env_get_path(env, &path);
  const std::string text = fmt::format(
      "storage: LMDB found the data file in {} damaged ({}); the process stops. Check "
      "it with: tuttid --data-dir {} --verify",
      path ? path : "?", msg, path ? path : "DIR");
  if (auto report = g_damage_reporter.load()) {
    report(text.c_str());
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
}

void stop_after_partial_write(const std::filesystem::path& dir, const char* what) {
  const std::string text = fmt::format(
      "storage: the log's write after a change of the group's state in {} failed ({}); the "
      "process stops, and a restart goes on from what is on disk",
      dir.string(), what);
  if (auto report = g_damage_reporter.load()) {
    report(text.c_str());
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::abort();
}

}  // namespace

void set_damage_reporter(void (*report)(const char* message)) {
  g_damage_reporter = report;
}

void Store::sync() {
  log_->sync();
  std::shared_lock no_growth(growth_);  // the map is not resized under it
  check(mdb_env_sync(env_, 1), "sync");
}

}  // namespace tutti::storage
