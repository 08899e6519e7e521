// An LMDB environment written by hand, as an older tuttid left its data dir: for the tests of the
// upgrades from older storage formats.
#pragma once

#include <lmdb.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string_view>

namespace tutti::test {

class RawLmdb {
 public:
  explicit RawLmdb(const std::filesystem::path& dir) {
    REQUIRE(mdb_env_create(&env_) == 0);
    REQUIRE(mdb_env_set_maxdbs(env_, 16) == 0);
    REQUIRE(mdb_env_open(env_, dir.c_str(), 0, 0644) == 0);
    REQUIRE(mdb_txn_begin(env_, nullptr, 0, &txn_) == 0);
  }
  RawLmdb(const RawLmdb&) = delete;
  ~RawLmdb() {
    if (txn_) mdb_txn_abort(txn_);
    if (env_) mdb_env_close(env_);
  }
  MDB_dbi table(const char* name, unsigned flags = 0) {
    MDB_dbi dbi;
    REQUIRE(mdb_dbi_open(txn_, name, MDB_CREATE | flags, &dbi) == 0);
    return dbi;
  }
  void put(MDB_dbi dbi, std::string_view k, std::string_view v) {
    MDB_val mk{k.size(), const_cast<char*>(k.data())}, mv{v.size(), const_cast<char*>(v.data())};
    REQUIRE(mdb_put(txn_, dbi, &mk, &mv, 0) == 0);
  }
  // A native-endian size_t key (MDB_INTEGERKEY), as the seqno-keyed tables had.
  void put(MDB_dbi dbi, size_t key, std::string_view v) {
    MDB_val mk{sizeof key, &key}, mv{v.size(), const_cast<char*>(v.data())};
    REQUIRE(mdb_put(txn_, dbi, &mk, &mv, 0) == 0);
  }
  void commit() {
    REQUIRE(mdb_txn_commit(txn_) == 0);
    txn_ = nullptr;
    mdb_env_close(env_);
    env_ = nullptr;
  }

 private:
  MDB_env* env_ = nullptr;
  MDB_txn* txn_ = nullptr;
};

inline std::string u64_raw(uint64_t v) {
  return std::string(reinterpret_cast<const char*>(&v), 8);
}

}  // namespace tutti::test
