// LMDB as the store calls it (internal to storage/): every error becomes a StorageError naming
// what failed, values are string views, integers 8-byte little-endian, cursors close themselves.
#pragma once

#include <lmdb.h>

#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "storage/store.hpp"

namespace tutti::storage::lmdb {

constexpr size_t kVersionBytes = 8;  // a data value starts with the seqno that wrote it
constexpr std::string_view kMetaLiveTables = "live_tables";  // which set of state tables: 0 or 1

[[noreturn]] inline void fail(int rc, std::string_view what) {
  StorageError::Kind kind = StorageError::Kind::io;
  std::string hint;
  if (rc == MDB_MAP_FULL) {
    kind = StorageError::Kind::map_full;
    hint = " (the database reached its maximum size)";
  } else if (rc == ENOSPC) {
    kind = StorageError::Kind::disk_full;
    hint = " (no space left on the data dir's disk)";
  } else if (rc == MDB_CORRUPTED || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
             rc == MDB_PAGE_NOTFOUND) {
    kind = StorageError::Kind::corrupt;
  } else if (rc == MDB_BAD_VALSIZE) {
    kind = StorageError::Kind::invalid;
  }
  throw StorageError(kind, fmt::format("storage: {}: {}{}", what, mdb_strerror(rc), hint));
}

inline void check(int rc, std::string_view what) {
  if (rc != MDB_SUCCESS) fail(rc, what);
}

inline MDB_val val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}
inline std::string_view view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

inline std::string u64_bytes(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

inline uint64_t u64_from(std::string_view b) {
  if (b.size() < 8) throw StorageError(StorageError::Kind::corrupt, "storage: short integer");
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

inline Versioned decode_data(std::string_view raw) {
  if (raw.size() < kVersionBytes)
    throw StorageError(StorageError::Kind::corrupt, "storage: data value shorter than its version");
  return Versioned{u64_from(raw.substr(0, kVersionBytes)), std::string(raw.substr(kVersionBytes))};
}

inline std::optional<std::string_view> raw_get(MDB_txn* txn, MDB_dbi dbi, MDB_val key) {
  MDB_val out;
  const int rc = mdb_get(txn, dbi, &key, &out);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  check(rc, "get");
  return view(out);
}

// wscache keys are native-endian size_t under MDB_INTEGERKEY, so they sort numerically.
inline MDB_val seqno_key(const size_t& seqno) {
  return MDB_val{sizeof seqno, const_cast<size_t*>(&seqno)};
}

class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi) { check(mdb_cursor_open(txn, dbi, &cursor_), "cursor open"); }
  ~Cursor() { mdb_cursor_close(cursor_); }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  // Returns false at the end.
  bool get(MDB_val* key, MDB_val* data, MDB_cursor_op op) {
    const int rc = mdb_cursor_get(cursor_, key, data, op);
    if (rc == MDB_NOTFOUND) return false;
    check(rc, "cursor get");
    return true;
  }
  void del() { check(mdb_cursor_del(cursor_, 0), "cursor del"); }

 private:
  MDB_cursor* cursor_ = nullptr;
};

}  // namespace tutti::storage::lmdb
