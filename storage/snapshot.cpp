// Snapshot transfer in storage: the donor's Snapshot (one long read transaction that gives way
// to the map's growth) and the joiner's staged set of state tables, installed by one swap.
#include <algorithm>

#include <fmt/format.h>

#include "storage/lmdb.hpp"
#include "storage/store.hpp"

namespace tutti::storage {
using namespace lmdb;
namespace {

MDB_dbi table_dbi(const Dbis& d, uint8_t table, bool staged) {
  switch (static_cast<Table>(table)) {
    case Table::data:
      return staged ? d.staged_data : d.data;
    case Table::txns_even:
      return staged ? d.staged_txns[0] : d.txns[0];
    case Table::txns_odd:
      return staged ? d.staged_txns[1] : d.txns[1];
  }
  throw StorageError(StorageError::Kind::invalid, fmt::format("storage: no table {}", table));
}

[[noreturn]] void cancelled() {
  throw StorageError(StorageError::Kind::io,
                     "storage: snapshot cancelled: the store grew its map (or closed) meanwhile");
}

}  // namespace

// ---- donor: Snapshot ----

std::unique_ptr<Snapshot> Store::snapshot() {
  std::shared_lock no_growth(growth_);  // only while it starts: after, growth cancels it
  MDB_txn* txn = nullptr;
  check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn), "begin snapshot");
  std::unique_ptr<Snapshot> snap(new Snapshot(this, txn, dbis_));
  try {
    snap->meta_ = load_meta(txn);
    for (uint8_t t = 0; t < kStateTables; ++t) {
      MDB_stat st;
      check(mdb_stat(txn, table_dbi(dbis_, t, false), &st), "stat for snapshot");
      snap->table_page_bytes_[t] =
          uint64_t{st.ms_psize} * (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages);
    }
  } catch (...) {
    std::lock_guard lock(snap->mu_);
    snap->cancel();
    snap->store_ = nullptr;
    throw;
  }
  std::lock_guard lock(snapshots_mu_);
  snapshots_.insert(snap.get());
  return snap;
}

void Store::cancel_snapshots() {
  std::lock_guard lock(snapshots_mu_);
  for (Snapshot* s : snapshots_) {
    std::lock_guard one(s->mu_);
    s->cancel();
    s->store_ = nullptr;
  }
  snapshots_.clear();
}

Snapshot::Snapshot(Store* store, MDB_txn* txn, Dbis dbis) : store_(store), txn_(txn), dbis_(dbis) {}

Snapshot::~Snapshot() {
  Store* store = nullptr;
  {
    std::lock_guard lock(mu_);
    store = store_;
  }
  // The store's lock first, as cancel_snapshots takes them; it may have cancelled us meanwhile.
  if (store) {
    std::lock_guard lock(store->snapshots_mu_);
    store->snapshots_.erase(this);
  }
  std::lock_guard lock(mu_);
  cancel();
}

uint64_t Snapshot::table_bytes() const {
  uint64_t n = 0;
  for (uint64_t t : table_page_bytes_) n += t;
  return n;
}

void Snapshot::cancel() {
  if (txn_) mdb_txn_abort(txn_);
  txn_ = nullptr;
}

std::optional<std::string> Snapshot::meta_get(std::string_view name) {
  std::lock_guard lock(mu_);
  if (!txn_) cancelled();
  auto raw = raw_get(txn_, dbis_.meta, val(name));
  if (!raw) return std::nullopt;
  return std::string(*raw);
}

std::vector<TableItem> Snapshot::next(SnapshotCursor& c, size_t max_bytes, const Reconcile* carry) {
  std::lock_guard lock(mu_);
  if (!txn_) cancelled();
  std::vector<TableItem> out;
  size_t bytes = 0;
  while (!c.done() && (out.empty() || bytes < max_bytes)) {
    Cursor cursor(txn_, table_dbi(dbis_, c.table, false));
    MDB_val k = val(c.after), d;
    bool more = c.started ? cursor.get(&k, &d, MDB_SET_RANGE) : cursor.get(&k, &d, MDB_FIRST);
    if (more && c.started && view(k) == c.after) more = cursor.get(&k, &d, MDB_NEXT);
    for (; more && (out.empty() || bytes < max_bytes); more = cursor.get(&k, &d, MDB_NEXT)) {
      std::string_view value = view(d);
      // (A value too short for its version goes whole: the joiner refuses it as damaged.)
      const bool kept = carry && c.table == 0 && value.size() >= kVersionBytes &&
                        carry->covers(view(k)) &&
                        u64_from(value.substr(0, kVersionBytes)) <= carry->since;
      if (kept) value = value.substr(0, kVersionBytes);
      out.push_back(
          TableItem{static_cast<Table>(c.table), std::string(view(k)), std::string(value), kept});
      bytes += k.mv_size + value.size() + 16;
      c.started = true;
      c.after = out.back().key;
    }
    if (!more) {  // this table is done: the next one from its start
      ++c.table;
      c.started = false;
      c.after.clear();
    }
  }
  return out;
}

// ---- joiner: the staged set ----

void WriteTxn::stage_reset(Table from) {
  dirty_ = true;
  for (auto t = static_cast<uint8_t>(from); t < kStateTables; ++t)
    check(mdb_drop(txn_, table_dbi(dbis_, t, true), 0), "empty the staged tables");
}

void WriteTxn::stage_put(const TableItem& item, ContentHash& staged_hash) {
  dirty_ = true;
  if (item.kept)
    throw StorageError(StorageError::Kind::corrupt,
                       "storage: a snapshot entry said to be held here already, outside the part "
                       "carried over: the transfer is damaged");
  if (item.table == Table::data) {
    const Versioned v = decode_data(item.value);
    staged_hash.add(item.key, v.version, v.value);
  }
  MDB_val k = val(item.key), d = val(item.value);
  const int rc =
      mdb_put(txn_, table_dbi(dbis_, static_cast<uint8_t>(item.table), true), &k, &d, MDB_APPEND);
  if (rc == MDB_KEYEXIST)
    throw StorageError(StorageError::Kind::corrupt,
                       "storage: a snapshot entry arrived out of order: the transfer is damaged");
  check(rc, "stage snapshot entry");
}

void WriteTxn::stage_chunk(const std::vector<TableItem>& items, const SnapshotCursor& from,
                           const SnapshotCursor& to, const Reconcile* carry,
                           ContentHash& staged_hash) {
  dirty_ = true;
  if (!carry || carry->passed(from)) {
    for (const auto& item : items) stage_put(item, staged_hash);
    return;
  }
  // The merge stands after `last` (nothing yet: the data table's start). Staged entries the
  // donor's stream skips over are gone at the donor's seqno: dropped.
  std::optional<std::string> last;
  if (from.table == 0 && from.started) last = from.after;
  const std::string* through = carry->through.table > 0 ? nullptr : &carry->through.after;
  bool merging = true;
  for (const auto& item : items) {
    if (merging && !(item.table == Table::data && carry->covers(item.key))) {
      stage_drop(last ? &*last : nullptr, through, true, staged_hash);
      merging = false;
    }
    if (!merging) {
      stage_put(item, staged_hash);
      continue;
    }
    if (last && item.key <= *last)
      throw StorageError(StorageError::Kind::corrupt,
                         "storage: a snapshot entry arrived out of order: the transfer is damaged");
    stage_drop(last ? &*last : nullptr, &item.key, false, staged_hash);
    stage_merge(item, staged_hash);
    last = item.key;
  }
  if (merging && carry->passed(to)) stage_drop(last ? &*last : nullptr, through, true, staged_hash);
}

void WriteTxn::stage_drop(const std::string* after, const std::string* bound, bool inclusive,
                          ContentHash& staged_hash) {
  Cursor cursor(txn_, dbis_.staged_data);
  MDB_val k, d;
  // Re-seek after every delete: where a cursor stands after mdb_cursor_del is subtle.
  for (;;) {
    k = val(after ? std::string_view(*after) : std::string_view());
    bool more = after ? cursor.get(&k, &d, MDB_SET_RANGE) : cursor.get(&k, &d, MDB_FIRST);
    if (more && after && view(k) == *after) more = cursor.get(&k, &d, MDB_NEXT);
    if (!more || (bound && (inclusive ? view(k) > *bound : view(k) >= *bound))) return;
    const Versioned v = decode_data(view(d));
    staged_hash.remove(view(k), v.version, v.value);
    cursor.del();
  }
}

void WriteTxn::stage_merge(const TableItem& item, ContentHash& staged_hash) {
  std::optional<Versioned> old;
  if (auto raw = raw_get(txn_, dbis_.staged_data, val(item.key))) old = decode_data(*raw);
  const Versioned v = decode_data(item.value);
  if (item.kept) {
    if (!old || old->version != v.version)
      throw StorageError(
          StorageError::Kind::corrupt,
          fmt::format("storage: the donor says an entry of version {} is staged here, but the "
                      "stage holds {}: the part carried over does not match",
                      v.version, old ? fmt::format("version {}", old->version) : "none"));
    return;
  }
  if (old) staged_hash.remove(item.key, old->version, old->value);
  staged_hash.add(item.key, v.version, v.value);
  MDB_val k = val(item.key), d = val(item.value);
  check(mdb_put(txn_, dbis_.staged_data, &k, &d, 0), "stage snapshot entry");
}

void WriteTxn::install_staged(uint64_t seqno, const ContentHash& content_hash) {
  dirty_ = true;
  set_last_committed(seqno);
  meta_.content_hash = content_hash;
  const bool second_live = [&] {
    auto raw = meta_get(kMetaLiveTables);
    return raw && u64_from(*raw) == 1;
  }();
  meta_put(kMetaLiveTables, u64_bytes(second_live ? 0 : 1));
  std::swap(dbis_.data, dbis_.staged_data);
  std::swap(dbis_.txns, dbis_.staged_txns);
  stage_reset();  // the old state: superseded by the snapshot
  installed_ = true;
}

}  // namespace tutti::storage
