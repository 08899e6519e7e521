// The store's checks of itself: Store::verify in this process, verify_store in a child that a
// damaged file may crash without taking the caller down.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "storage/lmdb.hpp"
#include "storage/store.hpp"

namespace tutti::storage {
using namespace lmdb;
namespace {

// Every entry of one database, each read once: a damaged page fails here, not in a client's scan.
template <typename Fn>
uint64_t walk(MDB_txn* txn, MDB_dbi dbi, Fn&& fn) {
  Cursor cursor(txn, dbi);
  MDB_val k, d;
  uint64_t n = 0;
  for (bool more = cursor.get(&k, &d, MDB_FIRST); more; more = cursor.get(&k, &d, MDB_NEXT)) {
    fn(view(k), view(d));
    ++n;
  }
  return n;
}

}  // namespace

std::string Store::verify(bool full) const {
  auto r = read();
  MDB_txn* txn = r->txn_;
  const std::pair<const char*, MDB_dbi> dbs[] = {{"data", dbis_.data},
                                                 {"meta", dbis_.meta},
                                                 {"txns.even", dbis_.txns[0]},
                                                 {"txns.odd", dbis_.txns[1]}};
  std::string summary;
  for (const auto& [name, dbi] : dbs) {
    MDB_stat st;
    check(mdb_stat(txn, dbi, &st), fmt::format("stat of database {}", name));
    Cursor cursor(txn, dbi);
    MDB_val k, d;
    cursor.get(&k, &d, MDB_FIRST);
    cursor.get(&k, &d, MDB_LAST);
    summary += fmt::format("{}{}: {} entries", summary.empty() ? "" : ", ", name, st.ms_entries);
  }
  const Log::Bounds lb = log_->bounds();
  summary += fmt::format(", log: seqnos {}-{}, {} bytes", lb.first, lb.last, lb.bytes);
  if (!full) return summary;
  ContentHash recomputed;
  walk(txn, dbis_.data, [&](std::string_view key, std::string_view raw) {
    Versioned v = decode_data(raw);
    recomputed.add(key, v.version, v.value);
  });
  // The log's records were checked as it opened; this reads every entry it holds.
  uint64_t log_bytes = 0;
  for (uint64_t s = lb.first; lb.first != 0 && s <= lb.last;) {
    auto entries = log_->from(s, 4096, 64u << 20);
    if (entries.empty()) break;
    for (const auto& e : entries) log_bytes += e.bytes.size();
    s = entries.back().seqno + 1;
  }
  for (MDB_dbi dbi : {dbis_.meta, dbis_.txns[0], dbis_.txns[1]})
    walk(txn, dbi, [](std::string_view, std::string_view) {});
  const Meta& m = r->meta();
  if (recomputed != m.content_hash)
    throw StorageError(StorageError::Kind::corrupt,
                       fmt::format("storage: the data does not match its content hash: recorded "
                                   "{}, recomputed {} (at seqno {})",
                                   m.content_hash.hex(), recomputed.hex(), m.last_committed));
  if (log_bytes != lb.bytes)
    throw StorageError(StorageError::Kind::corrupt,
                       fmt::format("storage: the write-set log's entries take {} bytes, its index "
                                   "says {}",
                                   log_bytes, lb.bytes));
  return summary + fmt::format("; content hash {} matches the data, seqno {}", m.content_hash.hex(),
                               m.last_committed);
}

VerifyReport verify_store(const Options& options, bool full) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return {
        false, false,
        fmt::format("storage: cannot check {}: pipe: {}", options.dir.string(), strerror(errno))};
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return {
        false, false,
        fmt::format("storage: cannot check {}: fork: {}", options.dir.string(), strerror(errno))};
  }
  if (pid == 0) {  // the child: whatever LMDB does to it, only the report leaves it
    ::close(fds[0]);
    static int report_fd = fds[1];
    set_damage_reporter([](const char* msg) {
      [[maybe_unused]] auto n = ::write(report_fd, msg, std::strlen(msg));
    });
    std::string out;
    int code = 0;
    try {
      Options as_is = options;
      as_is.upgrade = false;
      as_is.warm_ahead_bytes = 0;  // a check extends no file, and writes nothing to warm for
      out = Store::open(as_is)->verify(full);
    } catch (const StorageError& e) {
      out = e.what();
      code = e.kind() == StorageError::Kind::corrupt    ? 1
             : e.kind() == StorageError::Kind::outdated ? 3
                                                        : 2;
    } catch (const std::exception& e) {
      out = e.what();
      code = 1;
    }
    [[maybe_unused]] auto n = ::write(fds[1], out.data(), out.size());
    ::_exit(code);
  }
  ::close(fds[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    got.append(buf, n);
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {true, false, got};
  if (WIFEXITED(status) && WEXITSTATUS(status) == 2) return {false, false, got};
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3) return {false, false, got, true};
  if (WIFEXITED(status) && WEXITSTATUS(status) == 1 && !got.empty()) return {false, true, got};
  const std::string how = WIFSIGNALED(status) ? fmt::format("signal {} ({})", WTERMSIG(status),
                                                            strsignal(WTERMSIG(status)))
                                              : fmt::format("exit status {}", WEXITSTATUS(status));
  return {false, true,
          fmt::format("storage: the data file in {} is damaged: reading it crashed the "
                      "checking process ({}){}{}",
                      options.dir.string(), how, got.empty() ? "" : ": ", got)};
}

}  // namespace tutti::storage
