// storage/: one LMDB environment per node (DESIGN.md §7, formats in docs/storage.md).
//
// Named databases:
//   data    key -> 8-byte version (LE) + value
//   meta    name -> bytes: format version, identities, last committed seqno, content hash, ...
//   txns.even, txns.odd  client transaction id -> recorded outcome (opaque to storage), made in
//           an even or odd generation of kTxnWindow seqnos: the older one is emptied in one step
//           as a generation begins, rather than a record forgotten per write
//   data.1, txns.even.1, txns.odd.1: the other set of the three state tables. One set is live
//           (meta live_tables); a snapshot transfer stages into the other and installs it by one
//           swap.
//
// The write-set log (the replication log, bounded by bytes) is not in LMDB: storage/log.hpp, in
// the data dir's log/ folder.
//
// All writes go through Store::write(), one LMDB write transaction per call and the log's records
// beside it, in the order Store::write tells. With Durability::fsync a write() returns only once
// all of it is on disk.
#pragma once

#include <lmdb.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "storage/content_hash.hpp"
#include "storage/env.hpp"
#include "storage/log.hpp"
#include "storage/page_warmer.hpp"

namespace tutti::storage {

inline constexpr uint32_t kFormatVersion = 4;
// The layout of the state tables a snapshot transfer carries (Table): format 3's, which format 4
// kept (it moved only the log out of LMDB). Donor and joiner must agree on it.
inline constexpr uint32_t kStateLayout = 3;

// Transaction records are made in generations of this many seqnos (seqno s in generation
// (s - 1) / kTxnWindow); a store keeps those of the current and the previous generation. A
// constant of the history (certification outcomes depend on it); core/applier.hpp says which
// records count.
inline constexpr uint64_t kTxnWindow = 1'000'000;

// The meta entry in which a joiner records the snapshot it has staged in part (core/transfer):
// the store drops it with the staged tables when it changes their layout.
inline constexpr std::string_view kMetaSnapshotResume = "snapshot_resume";

// The longest key the store holds: LMDB's compile-time key limit in Debian's build (511). It is a
// constant of the history, not a node setting: certification rejects a write-set whose keys or
// transaction id are longer on every node alike, so no node can be handed a write-set it cannot
// persist. Store::open refuses an LMDB whose limit is smaller.
inline constexpr size_t kMaxKeyBytes = 511;
// The longest value: LMDB's item size is 32 bits and a stored value carries its 8-byte version.
inline constexpr size_t kMaxValueBytes = (size_t{1} << 32) - 1 - 8;

enum class Durability { fsync, memory };

struct Options {
  std::filesystem::path dir;
  Durability durability = Durability::fsync;
  uint64_t wscache_bytes = 256ull << 20;  // log entries above this are trimmed once applied
  uint64_t initial_map_bytes = 64ull << 20;
  uint64_t max_map_bytes = 1ull << 40;  // the map doubles on demand up to this
  // The map grows ahead, while no snapshot is open, to keep at least half of it and this much
  // free (address space, not disk): a donor's snapshot, which keeps every page it reads from
  // being reused, is cancelled when the map must grow under it.
  uint64_t map_headroom_bytes = 1ull << 30;
  // The clock, free space and commit point the store and the node above it use; nullptr:
  // default_env(). Tests put a fault-injecting or simulated one here.
  Env* env = nullptr;
  // A data dir of an older format (2 or 3) is upgraded in place when opened; false: it is
  // refused with StorageError(outdated) (checks that must change nothing: --verify, --recover).
  bool upgrade = true;
  // Keep the page cache this far past the data file's last page populated, from a thread of its
  // own at idle priority (storage/page_warmer.hpp), unless the disk would keep less than four
  // times this free. 0: off (tests, the simulator: their stores are many and small). tuttid:
  // 64 MiB.
  uint64_t warm_ahead_bytes = 0;
};

class StorageError : public std::runtime_error {
 public:
  // invalid: an argument the store can never hold (a key over kMaxKeyBytes, say); the same on
  // every node, unlike io, disk_full and map_full, which depend on the machine.
  // outdated: the data dir has an older format that Store::open upgrades unless told not to.
  enum class Kind { io, disk_full, map_full, format, locked, corrupt, invalid, outdated };
  StorageError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

struct Versioned {
  uint64_t version = 0;
  std::string value;
};

struct Entry {
  std::string key;
  uint64_t version = 0;
  std::string value;
};

// What meta holds that storage itself keeps current.
struct Meta {
  std::string history_uuid;  // 16 bytes, empty before the node belongs to a cluster history
  std::string node_uuid;     // 16 bytes
  uint64_t last_committed = 0;
  ContentHash content_hash;
  // The write-set log's (not LMDB's: read from the log when the transaction began).
  uint64_t log_first = 0;  // oldest seqno in the log (0 = empty)
  uint64_t log_last = 0;   // newest seqno in the log
  uint64_t log_bytes = 0;
};

struct Dbis {
  MDB_dbi data = 0, meta = 0, txns[2] = {0, 0};      // txns: even, odd generations
  MDB_dbi staged_data = 0, staged_txns[2] = {0, 0};  // the other set
};

// The tables a snapshot transfer carries: the node's state at one seqno. (The log and the meta
// are the node's own; what meta the state needs travels beside, see core/transfer.)
enum class Table : uint8_t { data = 0, txns_even = 1, txns_odd = 2 };
inline constexpr uint8_t kStateTables = 3;

// One stored entry as a snapshot streams it: the raw bytes of its table (a data value starts
// with its 8-byte version).
struct TableItem {
  Table table = Table::data;
  std::string key;
  std::string value;
  // Carried over (Reconcile): the joiner holds this data entry already; value is the 8-byte
  // version alone.
  bool kept = false;
};

// Where a snapshot's stream stands: past `after` in `table` (nothing read yet: started false).
struct SnapshotCursor {
  uint8_t table = 0;
  bool started = false;
  std::string after;
  bool done() const { return table >= kStateTables; }
};

// A snapshot that carries forward the part a joiner staged from an older one (of another donor,
// say; docs/transfer.md): the joiner holds the data entries up to `through` (all of them once
// `through` is past the data table) as they were at seqno `since`, or at a later one. The donor
// sends those of its entries there that no write changed after `since` as kept (key and version
// only); the joiner drops the staged entries there that the donor does not send.
struct Reconcile {
  uint64_t since = 0;
  // The latest seqno any staged part is at: a snapshot at an earlier one cannot carry them.
  uint64_t newest = 0;
  SnapshotCursor through;
  // Whether a data entry of this key falls in the carried part.
  bool covers(std::string_view key) const { return through.table > 0 || key <= through.after; }
  // Whether a stream at cursor c has passed the carried part.
  bool passed(const SnapshotCursor& c) const {
    return c.table > 0 || (through.table == 0 && c.started && c.after >= through.after);
  }
};

// Why the store can never hold this key ("" when it can): empty, or over kMaxKeyBytes.
std::string key_refusal(std::string_view key);

// Reads common to read and write transactions.
class ReadView {
 public:
  // A key the store cannot hold is absent.
  std::optional<Versioned> get(std::string_view key) const;
  // Entries whose key starts with prefix, in key order, at most limit of them.
  std::vector<Entry> scan(std::string_view prefix, size_t limit) const;
  // The write-set log as it is on disk now (not as of this transaction; a write transaction's own
  // log changes are not seen until it commits).
  std::optional<std::string> log_get(uint64_t seqno) const;
  // Log entries with seqno >= from, in order, at most max_entries, and no more once they take
  // max_bytes (at least one).
  std::vector<LogEntry> log_from(uint64_t from, size_t max_entries,
                                 size_t max_bytes = SIZE_MAX) const;
  // The records of txn_id in the tables of both generations (none, one or two): of the current
  // and the previous generation, or older ones the caller tells apart by what they hold.
  std::vector<std::string> txn_records(std::string_view txn_id) const;
  std::optional<std::string> meta_get(std::string_view name) const;
  const Meta& meta() const { return meta_; }

 protected:
  ReadView(MDB_txn* txn, Dbis dbis, Meta meta, const Log* log)
      : txn_(txn), dbis_(dbis), meta_(std::move(meta)), log_(log) {}
  MDB_txn* txn_;
  Dbis dbis_;
  Meta meta_;
  const Log* log_;
};

class Store;

// A consistent view of the state tables for a snapshot transfer, which may stream for minutes.
// Unlike a ReadTxn it does not hold the map's size: when the store must grow its map, it cancels
// every snapshot first (the next read throws StorageError(io), "snapshot cancelled"), so that a
// donor never stops writing for a transfer; the joiner starts that transfer again.
// Thread-safe against the store's writer; one thread reads it at a time.
class Snapshot {
 public:
  Snapshot(const Snapshot&) = delete;
  ~Snapshot();
  // The store's meta at the snapshot: last committed seqno, content hash.
  const Meta& meta() const { return meta_; }
  std::optional<std::string> meta_get(std::string_view name);
  // The bytes each state table's pages take on disk: more than its stream carries (page headers
  // and slack).
  const std::array<uint64_t, kStateTables>& table_page_bytes() const { return table_page_bytes_; }
  // All of them: what the stream will carry, about.
  uint64_t table_bytes() const;
  // The entries after the cursor, in table then key order, up to about max_bytes (at least one
  // entry while any is left); advances the cursor. Empty once cursor.done(). With carry: the
  // data entries it covers that no write changed after carry->since come as kept.
  std::vector<TableItem> next(SnapshotCursor& cursor, size_t max_bytes,
                              const Reconcile* carry = nullptr);

 private:
  friend class Store;
  Snapshot(Store* store, MDB_txn* txn, Dbis dbis);
  void cancel();  // REQUIRES: mu_ held

  std::mutex mu_;
  Store* store_;  // nullptr once the store closed
  MDB_txn* txn_;
  Dbis dbis_;
  Meta meta_;
  std::array<uint64_t, kStateTables> table_page_bytes_{};
};

class ReadTxn : public ReadView {
 public:
  ReadTxn(ReadTxn&&) = delete;
  ~ReadTxn();

 private:
  friend class Store;
  ReadTxn(MDB_txn* txn, Dbis dbis, const Log* log, std::shared_lock<std::shared_mutex> no_growth);
  std::shared_lock<std::shared_mutex> no_growth_;  // the map does not move under a reader
};

class WriteTxn : public ReadView {
 public:
  // Throw StorageError(invalid), before changing anything, for a key or value the store cannot
  // hold; the caller (certification) rules such write-sets out first.
  void put(std::string_view key, uint64_t version, std::string_view value);
  // Returns false when the key was absent.
  bool del(std::string_view key);
  void log_append(uint64_t seqno, std::string_view bytes);
  // Drops log entries with seqno >= from (a tentative tail the group replaced).
  void log_truncate_from(uint64_t from);
  // A state transfer's entries: put at seqno whatever the log held there (a tentative entry
  // of an older view that the group replaced), and drop what a snapshot supersedes.
  void log_put(uint64_t seqno, std::string_view bytes);
  void log_drop_through(uint64_t seqno);
  void record_txn(std::string_view txn_id, uint64_t generation, std::string_view outcome);
  // Empties the table of generation's parity: the records of generation - 2, in one step.
  void start_txn_generation(uint64_t generation);
  void meta_put(std::string_view name, std::string_view bytes);
  void meta_del(std::string_view name);  // absent already: nothing to do
  void set_identity(std::string_view history_uuid, std::string_view node_uuid);
  void set_last_committed(uint64_t seqno);

  // Snapshot transfer, joiner side: the other set of state tables is filled (stage_put, in the
  // snapshot's order) and installed in one step; the live set serves until then.
  // Empties the staged tables from `from` on (all of them: an earlier transfer's part, say).
  void stage_reset(Table from = Table::data);
  // Adds a data item to staged_hash, the content hash of what is staged. Throws
  // StorageError(corrupt) for an item out of order or a data value without its version.
  void stage_put(const TableItem& item, ContentHash& staged_hash);
  // Stages one chunk of a stream that stood at `from` before it and at `to` after it. Where carry
  // covers them, its items are merged into the data staged before: staged entries between them
  // are dropped, kept ones checked, the others replaced; the rest are appended (stage_put).
  // Throws StorageError(corrupt) for a kept entry the stage does not hold at that version.
  void stage_chunk(const std::vector<TableItem>& items, const SnapshotCursor& from,
                   const SnapshotCursor& to, const Reconcile* carry, ContentHash& staged_hash);
  // Makes the staged set live as the state at seqno, with that content hash, and empties the old
  // one. REQUIRES: the staged set is a whole snapshot at seqno (the caller checked its hash);
  // seqno >= last committed.
  void install_staged(uint64_t seqno, const ContentHash& content_hash);

 private:
  friend class Store;
  WriteTxn(MDB_txn* txn, Dbis dbis, Meta meta, const Log* log)
      : ReadView(txn, dbis, std::move(meta), log) {}
  bool installed_ = false;      // install_staged ran: the store swaps its sets once this commits
  bool dirty_ = false;          // changed anything in LMDB: else its commit is skipped
  std::vector<LogOp> log_ops_;  // written to the log by Store::write
  // Drops the staged data entries after `after` (from the first: nullptr) up to `bound` (to the
  // last: nullptr), taking them out of staged_hash.
  void stage_drop(const std::string* after, const std::string* bound, bool inclusive,
                  ContentHash& staged_hash);
  void stage_merge(const TableItem& item, ContentHash& staged_hash);
  void write_meta();
};

struct VerifyReport {
  bool ok = false;
  bool damaged = false;   // not ok because the store is damaged (not because it is in use, say)
  std::string message;    // what was checked, or what is wrong
  bool outdated = false;  // not ok because it has an older format (Options::upgrade)
};

// Checks the store in options.dir without trusting it, in a child process: a damaged file that
// makes LMDB fail an assertion or touch a page past the end of the file (SIGBUS) takes down only
// the child, and the report says so. full: reads every entry of every database and compares the
// recomputed content hash with the recorded one; otherwise only the file size, the database
// roots and both ends of each database. Changes nothing: a data dir of the previous format is
// reported outdated. REQUIRES: no Store of this process has dir open.
VerifyReport verify_store(const Options& options, bool full);

// LMDB aborts the process when it finds its file inconsistent; this is called first, with what
// it found, so that the reason reaches the log. Default: a line on stderr.
void set_damage_reporter(void (*report)(const char* message));

class Store {
 public:
  // Opens (creating if empty) the environment in options.dir. Throws StorageError: the dir is in
  // use by another process (locked), was written by an unknown format version (format), ...
  static std::unique_ptr<Store> open(const Options& options);
  ~Store();

  std::unique_ptr<ReadTxn> read() const;

  // Runs fn in one write transaction, commits it, and with Durability::fsync makes it durable
  // before returning. When the map is full it grows and fn runs again on a fresh transaction, so
  // fn must derive everything it produces from the transaction. Throws StorageError; then
  // nothing of fn's transaction was written. One thread may write while others read (the node's
  // storage thread and its event loop). REQUIRES: no ReadTxn of the calling thread is alive
  // (growing the map waits for every reader).
  // Sync::data_only (fsync durability): the commit waits for its data pages but writes its meta
  // page without waiting (MDB_NOMETASYNC), one flush instead of two. A crash of the machine may
  // then undo this transaction, never break the store, and the next full commit's flush makes it
  // durable. For what can be derived again from what is durable (deliveries from the log).
  // A transaction that changes nothing in LMDB (log records alone) commits nothing there.
  enum class Sync { full, data_only };
  // Where the log's records go. before: all of them before the LMDB commit, so that state never
  // counts an entry the log lacks. around: those that remove entries before it, from the first
  // that adds one on after it (in their order); for a transaction that changes what the entries
  // mean (the group's durable state in meta), which must find neither the old state with the new
  // entries nor an old tentative tail under the new state. A crash between the parts leaves the log
  // short of entries nobody was told it holds.
  enum class LogOrder { before, around };
  // logged, when given (LogOrder::before only), is called once, as soon as the log's records
  // are on disk and before the LMDB commit: a batch's messages that speak of its log alone may
  // leave then.
  void write(const std::function<void(WriteTxn&)>& fn, Sync sync = Sync::full,
             LogOrder order = LogOrder::before, const std::function<void()>* logged = nullptr);

  // Flushes what memory durability left in the page cache (the log's too). Any thread, also while
  // another writes: it blocks for as long as the disk takes, so not the node's loop.
  void sync();

  // A snapshot of the state tables for a transfer (see Snapshot).
  std::unique_ptr<Snapshot> snapshot();

  // The checks of verify_store, in this process: throws StorageError(corrupt) naming what is
  // wrong, else returns a summary of what was read.
  std::string verify(bool full) const;

  const Options& options() const { return options_; }
  uint64_t map_bytes() const { return map_bytes_; }
  // Reader slots of dead processes that this store cleared (mdb_reader_check), every 4,096
  // writes and each time its map grew: a process that read the environment while this store
  // had it open (a tool) and died without ending its read transaction would pin every page
  // freed since, and the file would grow for ever. (A store that opens the environment alone
  // starts with an empty reader table: LMDB resets it.)
  uint64_t stale_readers_cleared() const { return stale_readers_cleared_; }
  // Bytes available to this process on the data dir's file system.
  uint64_t free_bytes() const { return env().free_bytes(options_.dir); }
  Env& env() const { return options_.env ? *options_.env : default_env(); }

 private:
  Store(const Options& options, int lock_fd);
  void open_env();
  // REQUIRES: txn is the open_env write transaction, meta open. Writes the format of a new
  // store; throws for a format it cannot read (or, unless options_.upgrade, format 2 or 3).
  void open_format(MDB_txn* txn);
  // REQUIRES: as open_format, every table of this format open. Format 2's txns and txn_seqnos
  // to generations of records.
  void migrate_txn_records(MDB_txn* txn);
  // REQUIRES: as migrate_txn_records. Format 3's wscache table to the log's files.
  void migrate_log(MDB_txn* txn);
  void put_format(MDB_txn* txn);
  void check_file_size(uint64_t last_pgno);
  Meta load_meta(MDB_txn* txn) const;
  void cancel_snapshots();
  // REQUIRES: no write transaction open (called by write, after its commit).
  void grow_ahead();
  // REQUIRES: growth_ held exclusively, no snapshot open (or every one cancelled).
  void double_map();
  void clear_stale_readers();
  [[noreturn]] void fail_io(int rc) const;

  Options options_;
  int lock_fd_ = -1;
  std::unique_ptr<Log> log_;
  MDB_env* env_ = nullptr;
  Dbis dbis_;
  uint64_t map_bytes_ = 0;
  uint64_t page_bytes_ = 0;  // LMDB's page size, fixed when the environment opens
  std::atomic<uint64_t> stale_readers_cleared_{0};
  uint64_t writes_ = 0;  // committed by write(), for the reader check
  // LMDB moves the map only while no transaction is open in the process: readers share it,
  // growing takes it alone.
  mutable std::shared_mutex growth_;
  friend class Snapshot;
  std::mutex snapshots_mu_;
  std::set<Snapshot*> snapshots_;       // cancelled before the map grows
  std::unique_ptr<PageWarmer> warmer_;  // with Options::warm_ahead_bytes
};

}  // namespace tutti::storage
