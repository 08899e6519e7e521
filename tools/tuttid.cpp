// tuttid: one tutti node. See `tuttid --help` and README.md.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <asio.hpp>

#include <malloc.h>

#include <csignal>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/address.hpp"
#include "core/daemon.hpp"
#include "storage/store.hpp"

namespace {

using namespace tutti;

// What a node is started with (core::NodeConfig), and what only this program uses.
struct Flags : core::NodeConfig {
  std::string log_level = "info";
  uint64_t wscache_mib = 256;
};

void setup_logging(const Flags& f) {
  auto logger = spdlog::stderr_color_mt(f.name);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
  logger->set_level(spdlog::level::from_str(f.log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

// Whether f.data_dir holds a store; when not, says so on stderr for the mode `what`.
bool holds_store(const Flags& f, const char* what) {
  if (std::filesystem::exists(std::filesystem::path(f.data_dir) / "data.mdb")) return true;
  std::cerr << "tuttid " << what << ": " << f.data_dir << " holds no store (no data.mdb)\n";
  return false;
}

// tuttid --verify: reads the whole store and says whether it is sound. Exit 0 sound, 1 damaged,
// 2 could not check (in use by a running node, say).
int verify(const Flags& f) {
  storage::Options options;
  options.dir = f.data_dir;
  if (!holds_store(f, "--verify")) return 1;
  auto report = storage::verify_store(options, true);
  if (report.ok) {
    std::cout << "ok: " << f.data_dir << ": " << report.message << "\n";
    return 0;
  }
  if (!report.damaged) {
    std::cerr << "tuttid --verify: could not check " << f.data_dir << ": " << report.message
              << "\n";
    return 2;
  }
  std::cout << "DAMAGED: " << f.data_dir << ": " << report.message << "\n";
  return 1;
}

// tuttid --recover: what the data dir says about the node's place in its history; changes
// nothing. Exit 0, or 1 when there is no store to read.
int recover(const Flags& f, bool json_out) {
  storage::Options options;
  options.dir = f.data_dir;
  if (!holds_store(f, "--recover")) return 1;
  auto report = storage::verify_store(options, false);
  if (!report.ok) {
    std::cerr << "tuttid --recover: " << report.message << "\n";
    return 1;
  }
  options.upgrade = false;
  auto store = storage::Store::open(options);
  const core::Recovery r = core::recover(*store);
  const std::string view =
      r.last_primary
          ? fmt::format("{} ({} members, from seqno {}{})", core::view_text(r.last_primary->id),
                        r.last_primary->members.size(), r.last_primary->base,
                        r.last_primary_committed ? "" : ", not seen committed")
          : std::string();
  if (json_out) {
    nlohmann::json j{{"history_uuid", r.history_uuid},
                     {"last_committed", r.last_committed},
                     {"last_primary_view", r.last_primary ? nlohmann::json(view) : nullptr},
                     {"safe_to_bootstrap", r.safe_to_bootstrap},
                     {"reason", r.why}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "history uuid:      " << (r.history_uuid.empty() ? "-" : r.history_uuid) << "\n"
              << "last committed:    " << r.last_committed << "\n"
              << "last primary view: " << (view.empty() ? "-" : view) << "\n"
              << "safe to bootstrap: " << (r.safe_to_bootstrap ? "yes" : "no") << " (" << r.why
              << ")\n";
  }
  return 0;
}

// A page of the memory-mapped store that is not in the file (truncated under a running node):
// say so before dying of it. Only async-signal-safe calls here.
void on_sigbus(int) {
  static const char msg[] =
      "tuttid: SIGBUS: the data file is shorter than the store needs (truncated or damaged "
      "while running); the node stops. Check it with tuttid --data-dir DIR --verify\n";
  [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
  std::signal(SIGBUS, SIG_DFL);
  std::raise(SIGBUS);
}

// The store of another history goes to DIR/aside-<history>-<UTC time>/, whole: never deleted,
// still readable there (tuttid --data-dir that --recover). Returns that folder.
std::filesystem::path move_store_aside(const Flags& f, const core::Daemon::Rejoin& r) {
  namespace fs = std::filesystem;
  const fs::path dir(f.data_dir);
  const std::time_t t = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char when[32];
  std::strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &utc);
  fs::path aside = dir / fmt::format("aside-{}-{}", r.history.substr(0, 8), when);
  for (int i = 2; fs::exists(aside); ++i)
    aside = dir / fmt::format("aside-{}-{}-{}", r.history.substr(0, 8), when, i);
  fs::create_directory(aside);
  for (const char* file : {"data.mdb", "lock.mdb"})
    if (fs::exists(dir / file)) fs::rename(dir / file, aside / file);
  return aside;
}

// One start of the node on its data dir; *rejoin says whether it stopped to join another
// history's cluster (its store then moved aside).
int run_once(const Flags& f, std::optional<core::Daemon::Rejoin>* rejoin) {
  core::parse_host_port(f.client_addr);
  core::parse_host_port(f.gcs_addr);
  if (!f.peers.empty()) core::parse_host_port_list(f.peers);
  storage::Options options;
  options.dir = f.data_dir;
  options.durability =
      f.durability == "memory" ? storage::Durability::memory : storage::Durability::fsync;
  options.wscache_bytes = f.wscache_mib << 20;
  options.warm_ahead_bytes = 64u << 20;
  if (std::filesystem::exists(options.dir / "data.mdb")) {
    // In a child first: a damaged file must not take this process down before it says why.
    auto report = storage::verify_store(options, false);
    if (!report.ok && !report.outdated) throw std::runtime_error(report.message);
    if (report.outdated) spdlog::info("{}: upgrading it", report.message);
  }
  auto store = storage::Store::open(options);
  core::check_identity(*store, f);
  core::check_force_bootstrap(*store, f);
  int rc = 0;
  {
    core::Daemon daemon(f, *store);  // gone (its threads joined) before the store closes
    rc = daemon.run();
    *rejoin = daemon.rejoin();
  }
  if (rc != 0 || !*rejoin) return rc;
  const auto r = **rejoin;
  store.reset();
  const auto aside = move_store_aside(f, r);
  spdlog::warn(
      "moved this node's store of history {} (last committed seqno {}) aside to {}: kept, not "
      "deleted (tuttid --data-dir {} --recover reads it). Starting again on an empty store to "
      "join the cluster at {} by state transfer",
      r.history, r.last_committed, aside.string(), aside.string(), r.gcs_addr);
  return 0;
}

// A node that moved its store aside starts again at once, as a new member, through the member
// that refused it (when --peers named none, the old store's remembered members are gone too).
int run(Flags f) {
  for (;;) {
    std::optional<core::Daemon::Rejoin> rejoin;
    const int rc = run_once(f, &rejoin);
    if (rc != 0 || !rejoin) return rc;
    f.bootstrap = f.force = false;
    if (f.peers.empty()) f.peers = rejoin->gcs_addr;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{
      "tuttid: a tutti node, a member of a synchronously replicated key-value cluster.\n"
      "Start the first node of a new cluster with --bootstrap, the others with --peers\n"
      "(any running member's --gcs-addr). Restart any node on the same --data-dir without\n"
      "either: it rejoins the members it remembers."};
  bool verify_only = false, recover_only = false, json_out = false;
  app.add_option("--name", f.name, "node name, shown in logs and status (required)");
  app.add_option("--data-dir", f.data_dir, "directory of the node's LMDB environment")->required();
  app.add_option("--client-addr", f.client_addr, "HOST:PORT to serve clients on (required)");
  app.add_option("--gcs-addr", f.gcs_addr, "HOST:PORT for group communication (required)");
  app.add_flag("--verify", verify_only,
               "only check the store in --data-dir: read every entry and compare the content "
               "hash with the recorded one; prints ok or DAMAGED, exit 0 or 1 (2: could not check, "
               "say the node is running)");
  app.add_flag("--recover", recover_only,
               "only print what --data-dir says about this node: its history, last committed "
               "seqno, last primary view and whether it is safe to bootstrap from it; changes "
               "nothing");
  app.add_flag("--json", json_out, "with --recover: print one JSON object");
  app.add_option("--peers", f.peers,
                 "HOST:PORT,... gcs addresses of members to join through (any one that answers "
                 "will do)");
  app.add_option("--cluster-name", f.cluster_name,
                 "name of the cluster: members of another cluster are refused at the handshake")
      ->capture_default_str();
  app.add_flag("--bootstrap", f.bootstrap,
               "form a new cluster: a new history and a primary component of this node, on an "
               "empty data dir");
  app.add_flag("--force", f.force,
               "with --bootstrap on a data dir that already has a history: form a primary "
               "component of this node alone (when the rest of the cluster is lost for good); "
               "refused while a member it remembers runs a primary or holds newer commits");
  app.add_flag("--discard-newer-commits", f.discard_newer_commits,
               "with --bootstrap --force: go ahead although a reachable member holds commits "
               "this node lacks; they are lost");
  app.add_option("--donor", f.donors,
                 "NAME[,NAME...]: members to ask first when this node catches up by state "
                 "transfer (any other voting member serves when these cannot)")
      ->delimiter(',');
  app.add_option("--durability", f.durability,
                 "fsync: a commit is on disk before it is acknowledged (default); memory: in "
                 "memory, flushed in the background every 100 ms")
      ->check(CLI::IsMember({"fsync", "memory"}));
  app.add_option("--log-level", f.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option(
         "--max-key-size", f.limits.max_key_bytes,
         fmt::format("largest key in bytes, at most {} (the store's limit)", storage::kMaxKeyBytes))
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& text) -> std::string {
            size_t n = 0;
            if (!CLI::detail::lexical_cast(text, n) || n < 1)
              return "must be a whole number of bytes, at least 1";
            if (n > storage::kMaxKeyBytes)
              return fmt::format(
                  "{} is over {} bytes, the longest key the store (LMDB) can hold; every node "
                  "must be able to persist every key it accepts",
                  n, storage::kMaxKeyBytes);
            return "";
          },
          "1.." + std::to_string(storage::kMaxKeyBytes)));
  app.add_option("--max-value-size", f.limits.max_value_bytes, "largest value in bytes")
      ->capture_default_str()
      ->check(CLI::Range(0, 64 << 20));
  app.add_option("--max-txn-size", f.limits.max_writeset_bytes,
                 "largest transaction (encoded write-set) in bytes")
      ->capture_default_str()
      ->check(CLI::Range(1024, 1 << 30));
  app.add_option("--wscache-size", f.wscache_mib,
                 "write-set cache (replication log) size in MiB; older applied entries are trimmed")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--heartbeat-interval", f.gcs.heartbeat_interval,
                 "milliseconds between heartbeats to every member")
      ->capture_default_str()
      ->check(CLI::Range(10, 10000));
  app.add_option("--suspect-timeout", f.gcs.suspect_timeout,
                 "milliseconds of silence after which a member is suspected and a view without it "
                 "is formed")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  app.add_option("--view-change-timeout", f.gcs.install_timeout,
                 "milliseconds a view change may take before it is tried again without the "
                 "members that did not answer")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  app.add_option("--max-flow-pause", f.gcs.max_flow_pause,
                 "milliseconds a member may hold the group paused (flow control) before it is "
                 "evicted (one catching up by state transfer is evicted at once)")
      ->capture_default_str()
      ->check(CLI::Range(100, 3600000));
  app.add_option("--joiner-backlog", f.limits.max_joiner_backlog,
                 "write-sets this node, while it catches up by state transfer, logs from the group "
                 "before it asks the group to pause: the group evicts it at once instead, and it "
                 "rejoins once its transfer has caught up with what it logged")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1000}, size_t{100000000}));
  size_t backlog_mib = f.limits.max_joiner_backlog_bytes >> 20;
  app.add_option("--joiner-backlog-size", backlog_mib,
                 "MiB of write-sets this node, while it catches up by state transfer, logs from "
                 "the group (and holds in memory) before it asks the group to pause, as "
                 "--joiner-backlog")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--snapshot-busy-share", f.limits.snapshot_busy_share,
                 "percent of the time a snapshot transfer to this node takes while the group "
                 "commits writes; it waits the rest, so the group keeps its pace (100: never "
                 "waits; an idle group's snapshot always runs at full speed)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--flow-pause-backlog", f.limits.flow_pause_backlog,
                 "write-sets waiting for this node's disk at once past which it asks the group to "
                 "pause")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  app.add_option("--max-client-connections", f.server.max_connections,
                 "client connections served at once; one more is answered busy and closed (lowered "
                 "to fit the process's descriptor limit, as the log says)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  int64_t idle_ms = f.server.idle_timeout.count();
  app.add_option("--client-idle-timeout", idle_ms,
                 "milliseconds after which a client connection with nothing in flight and nothing "
                 "sent is closed")
      ->capture_default_str()
      ->check(CLI::Range(100, 86400000));
  int64_t frame_ms = f.server.frame_timeout.count();
  app.add_option("--client-frame-timeout", frame_ms,
                 "milliseconds a request frame may take to arrive whole once it started")
      ->capture_default_str()
      ->check(CLI::Range(100, 3600000));
  app.add_option("--gcs-forget-after", f.gcs_forget_after_s,
                 "seconds: a member unreachable this long is dropped from the directory and no "
                 "longer dialed (it is found again when it dials back); an address a peer claims "
                 "is dialed to check it for at most 30 s, or this long if shorter")
      ->capture_default_str()
      ->check(CLI::Range(1, 365 * 24 * 3600));
  size_t buffer_mib = f.server.max_buffered_bytes >> 20;
  app.add_option("--client-buffer-limit", buffer_mib,
                 "MiB of partly received request frames held for all clients together; a client "
                 "that would pass it is answered busy and closed")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  int64_t slow_write_ms = f.limits.flow_pause_write_time.count();
  app.add_option("--flow-pause-write-time", slow_write_ms,
                 "milliseconds: a batch that takes longer to write to this node's disk makes it "
                 "ask the group to pause")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (verify_only) return verify(f);
  if (recover_only) return recover(f, json_out);
  if (json_out) {
    std::cerr << "--json goes with --recover only\nRun with --help for more information.\n";
    return 2;
  }
  for (const auto& [value, flag] : {std::pair{&f.name, "--name"},
                                    {&f.client_addr, "--client-addr"},
                                    {&f.gcs_addr, "--gcs-addr"}})
    if (value->empty()) {
      std::cerr << flag << " is required\nRun with --help for more information.\n";
      return 2;
    }
  if (f.gcs.suspect_timeout <= 2 * f.gcs.heartbeat_interval) {
    std::cerr << "--suspect-timeout must be more than twice --heartbeat-interval\n";
    return 2;
  }
  f.gcs.persist_before_ack = f.durability == "fsync";
  f.limits.flow_pause_write_time = std::chrono::milliseconds(slow_write_ms);
  f.server.idle_timeout = std::chrono::milliseconds(idle_ms);
  f.server.frame_timeout = std::chrono::milliseconds(frame_ms);
  f.server.max_buffered_bytes = buffer_mib << 20;
  f.limits.max_joiner_backlog_bytes = backlog_mib << 20;
  f.gcs.limits.max_message_bytes = f.limits.max_writeset_bytes;
  // A state transfer moves megabyte chunks through several buffers: from the heap, reused,
  // rather than mapped, faulted in and zeroed afresh each time (perf showed that on a donor).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGBUS, on_sigbus);
  setup_logging(f);
  storage::set_damage_reporter([](const char* msg) { spdlog::critical("{}", msg); });
  try {
    return run(f);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
