// txn-window-bench: what keeping a window of transaction records costs per applied write-set,
// straight on LMDB, without ageing a cluster. Each write-set does what a node's apply does to its
// tables (docs/storage.md): a put to one of 10,000 data keys, a log entry (the log trimmed past
// --log-keep entries), a transaction record under a random 16-byte id, and last_committed in
// meta; --batch write-sets per transaction, each commit flushed as a node's delivery batch is
// (fsync: data pages, meta page unsynced). The record layouts compared:
//   keep         records are never forgotten (a history younger than the window)
//   forget       storage format 2's layout: txn_seqnos maps seqno -> id, and every write-set
//                past the window deletes the record made a window before it
//   generations  format 3's: two tables of a window's records each; the older one is emptied in
//                one step as a window begins (no delete per write-set, no txn_seqnos)
// Prints, every --report write-sets, the rate and the bytes this process wrote to disk per
// write-set (/proc/self/io): the second does not depend on what else the machine runs.
#include <lmdb.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

namespace {

void check(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string(what) + ": " + mdb_strerror(rc));
}

uint64_t disk_write_bytes() {
  std::ifstream io("/proc/self/io");
  std::string name;
  uint64_t value = 0;
  while (io >> name >> value)
    if (name == "write_bytes:") return value;
  throw std::runtime_error("/proc/self/io has no write_bytes");
}

struct Tables {
  MDB_dbi data = 0, log = 0, meta = 0, txns = 0, txn_seqnos = 0, generation[2] = {0, 0};
};

struct Settings {
  std::string layout = "forget";
  uint64_t window = 100'000;
  uint64_t count = 400'000;
  uint64_t batch = 20;
  uint64_t report = 50'000;
  uint64_t log_keep = 100'000;
};

Tables open_tables(MDB_env* env) {
  MDB_txn* t;
  check(mdb_txn_begin(env, nullptr, 0, &t), "begin");
  Tables tb;
  check(mdb_dbi_open(t, "data", MDB_CREATE, &tb.data), "open data");
  check(mdb_dbi_open(t, "wscache", MDB_CREATE | MDB_INTEGERKEY, &tb.log), "open wscache");
  check(mdb_dbi_open(t, "meta", MDB_CREATE, &tb.meta), "open meta");
  check(mdb_dbi_open(t, "txns", MDB_CREATE, &tb.txns), "open txns");
  check(mdb_dbi_open(t, "txn_seqnos", MDB_CREATE | MDB_INTEGERKEY, &tb.txn_seqnos), "open seqnos");
  check(mdb_dbi_open(t, "txns.even", MDB_CREATE, &tb.generation[0]), "open txns.even");
  check(mdb_dbi_open(t, "txns.odd", MDB_CREATE, &tb.generation[1]), "open txns.odd");
  check(mdb_txn_commit(t), "commit");
  return tb;
}

// Format 2's forgetting: every record made at a seqno at or below `through`.
void forget_through(MDB_txn* t, const Tables& tb, size_t through) {
  MDB_cursor* c;
  check(mdb_cursor_open(t, tb.txn_seqnos, &c), "cursor");
  MDB_val k, id;
  while (mdb_cursor_get(c, &k, &id, MDB_FIRST) == 0) {
    size_t s;
    std::memcpy(&s, k.mv_data, sizeof s);
    if (s > through) break;
    const int rc = mdb_del(t, tb.txns, &id, nullptr);
    if (rc != MDB_NOTFOUND) check(rc, "forget txn");
    check(mdb_cursor_del(c, 0), "forget seqno");
  }
  mdb_cursor_close(c);
}

void record(MDB_txn* t, const Tables& tb, const Settings& st, size_t seqno, std::mt19937_64& rng) {
  static const std::string outcome(24, 'o');
  uint64_t id[2] = {rng(), rng()};
  MDB_val k{sizeof id, id}, v{outcome.size(), const_cast<char*>(outcome.data())};
  if (st.layout == "generations") {
    const uint64_t generation = (seqno - 1) / st.window;
    const MDB_dbi table = tb.generation[generation % 2];
    if ((seqno - 1) % st.window == 0 && generation >= 2) check(mdb_drop(t, table, 0), "empty");
    check(mdb_put(t, table, &k, &v, 0), "record");
    return;
  }
  check(mdb_put(t, tb.txns, &k, &v, 0), "record");
  MDB_val sk{sizeof seqno, &seqno}, sv{sizeof id, id};
  check(mdb_put(t, tb.txn_seqnos, &sk, &sv, 0), "record seqno");
  if (st.layout == "forget" && seqno > st.window) forget_through(t, tb, seqno - st.window);
}

void apply(MDB_txn* t, const Tables& tb, const Settings& st, size_t seqno, std::mt19937_64& rng) {
  static const std::string value(108, 'v'), write_set(220, 'w');
  char key[16];
  std::snprintf(key, sizeof key, "key%06u", static_cast<unsigned>(rng() % 10000));
  MDB_val k{std::strlen(key), key}, v{value.size(), const_cast<char*>(value.data())};
  check(mdb_put(t, tb.data, &k, &v, 0), "put");
  MDB_val lk{sizeof seqno, &seqno}, lv{write_set.size(), const_cast<char*>(write_set.data())};
  check(mdb_put(t, tb.log, &lk, &lv, 0), "log");
  if (seqno > st.log_keep) {
    size_t oldest = seqno - st.log_keep;
    MDB_val ok{sizeof oldest, &oldest};
    check(mdb_del(t, tb.log, &ok, nullptr), "trim log");
  }
  record(t, tb, st, seqno, rng);
  MDB_val mk{14, const_cast<char*>("last_committed")}, mv{sizeof seqno, &seqno};
  check(mdb_put(t, tb.meta, &mk, &mv, 0), "meta");
}

void run(const std::filesystem::path& dir, const Settings& st) {
  MDB_env* env;
  check(mdb_env_create(&env), "create");
  check(mdb_env_set_maxdbs(env, 16), "maxdbs");
  check(mdb_env_set_mapsize(env, size_t{64} << 30), "mapsize");
  check(mdb_env_open(env, dir.c_str(), MDB_NOMETASYNC | MDB_NOTLS, 0644), "open");
  const Tables tb = open_tables(env);
  std::mt19937_64 rng(1);
  auto last = std::chrono::steady_clock::now();
  uint64_t written = disk_write_bytes();
  MDB_txn* t = nullptr;
  for (size_t seqno = 1; seqno <= st.count; ++seqno) {
    if (!t) check(mdb_txn_begin(env, nullptr, 0, &t), "begin");
    apply(t, tb, st, seqno, rng);
    if (seqno % st.batch == 0 || seqno == st.count) {
      check(mdb_txn_commit(t), "commit");
      t = nullptr;
    }
    if (seqno % st.report != 0) continue;
    const auto now = std::chrono::steady_clock::now();
    const uint64_t bytes = disk_write_bytes();
    std::printf("%s seqno=%zu write-sets/s=%.0f disk KiB/write-set=%.1f\n", st.layout.c_str(),
                seqno, st.report / std::chrono::duration<double>(now - last).count(),
                static_cast<double>(bytes - written) / 1024.0 / static_cast<double>(st.report));
    std::fflush(stdout);
    last = now;
    written = bytes;
  }
  mdb_env_close(env);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "txn-window-bench: the cost per write-set of keeping a window of transaction "
      "records, on a fresh LMDB environment in DIR (see the source's head)"};
  Settings st;
  std::string dir;
  app.add_option("dir", dir, "an empty directory for the environment")->required();
  app.add_option("--layout", st.layout, "keep, forget or generations")
      ->capture_default_str()
      ->check(CLI::IsMember({"keep", "forget", "generations"}));
  app.add_option("--window", st.window, "seqnos a record is kept for")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--count", st.count, "write-sets to apply")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--batch", st.batch, "write-sets per transaction")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--report", st.report, "write-sets per line")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--log-keep", st.log_keep, "log entries kept")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  if (!std::filesystem::is_directory(dir) || !std::filesystem::is_empty(dir)) {
    std::fprintf(stderr, "txn-window-bench: %s is not an empty directory\n", dir.c_str());
    return 2;
  }
  try {
    run(dir, st);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "txn-window-bench: %s\n", e.what());
    return 1;
  }
}
