// tuttid: one tutti node. See `tuttid --help` and README.md.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <asio.hpp>

#include <csignal>
#include <iostream>

#include "core/address.hpp"
#include "core/applier.hpp"
#include "core/node.hpp"
#include "core/server.hpp"
#include "core/uuid.hpp"
#include "gcs/solo_group.hpp"
#include "storage/store.hpp"

namespace {

using namespace tutti;

struct Flags {
  std::string name, data_dir, client_addr, gcs_addr, peers;
  bool bootstrap = false;
  std::string durability = "fsync";
  std::string log_level = "info";
  core::NodeLimits limits;
  uint64_t wscache_mib = 256;
};

void setup_logging(const Flags& f) {
  auto logger = spdlog::stderr_color_mt(f.name);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
  logger->set_level(spdlog::level::from_str(f.log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

// A fresh data dir gets its identities here, and only with --bootstrap: a node must never start
// a new cluster history by accident.
void ensure_identity(storage::Store& store, const Flags& f) {
  const auto meta = store.read()->meta();
  if (!meta.history_uuid.empty()) {
    spdlog::info("data dir {}: history {}, last committed seqno {}", f.data_dir,
                 core::uuid_text(meta.history_uuid), meta.last_committed);
    return;
  }
  if (!f.bootstrap)
    throw std::runtime_error(fmt::format(
        "data dir {} belongs to no cluster yet: start with --bootstrap to form a new cluster",
        f.data_dir));
  const std::string history = core::random_uuid(), node = core::random_uuid();
  store.write([&](storage::WriteTxn& txn) { txn.set_identity(history, node); });
  spdlog::info("bootstrapped a new cluster history {} (node uuid {})", core::uuid_text(history),
               core::uuid_text(node));
}

asio::ip::tcp::endpoint resolve(asio::io_context& io, const core::HostPort& hp) {
  asio::ip::tcp::resolver resolver(io);
  auto results = resolver.resolve(hp.host, std::to_string(hp.port));
  return results.begin()->endpoint();
}

int run(const Flags& f) {
  if (!f.peers.empty())
    throw std::runtime_error(
        "--peers: joining an existing cluster is not built yet in this version (the group of "
        "one is); start a single node with --bootstrap");
  const auto client_hp = core::parse_host_port(f.client_addr);
  const auto gcs_hp = core::parse_host_port(f.gcs_addr);

  storage::Options options;
  options.dir = f.data_dir;
  options.durability =
      f.durability == "memory" ? storage::Durability::memory : storage::Durability::fsync;
  options.wscache_bytes = f.wscache_mib << 20;
  auto store = storage::Store::open(options);
  ensure_identity(*store, f);
  if (const uint64_t replayed = core::replay_log(*store))
    spdlog::info("applied {} write-sets from the write-set log after a crash", replayed);

  const auto meta = store->read()->meta();
  asio::io_context io;
  auto group = std::make_unique<gcs::SoloGroup>(gcs::MemberInfo{meta.node_uuid, f.name},
                                                meta.last_committed);
  core::Node* node_ptr = nullptr;
  core::Node node(f.name, *store, std::move(group), f.limits,
                  [&io, &node_ptr] { asio::post(io, [&node_ptr] { node_ptr->flush(); }); });
  node_ptr = &node;
  core::ClientServer server(io, resolve(io, client_hp), node, core::ServerLimits{});
  spdlog::info(
      "serving clients on {} as a group of one (gcs address {} reserved: the "
      "multi-node transport is not built yet); durability {}, last committed seqno {}",
      client_hp.text(), gcs_hp.text(), f.durability, meta.last_committed);

  asio::steady_timer sync_timer(io);
  std::function<void()> background_sync = [&] {
    sync_timer.expires_after(std::chrono::milliseconds(100));
    sync_timer.async_wait([&](asio::error_code ec) {
      if (ec) return;
      store->sync();
      background_sync();
    });
  };
  if (options.durability == storage::Durability::memory) background_sync();

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](asio::error_code ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: finishing queued commits and shutting down", signo);
    node.flush();
    // Let the answers already queued reach their clients before the connections close.
    asio::post(io, [&] {
      server.stop();
      sync_timer.cancel();
    });
  });
  io.run();
  store->sync();
  spdlog::info("stopped cleanly at seqno {}", store->read()->meta().last_committed);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{
      "tuttid: a tutti node, a member of a synchronously replicated key-value cluster.\n"
      "Start the first node of a new cluster with --bootstrap; restart it on the same\n"
      "--data-dir without it. This version runs a group of one node."};
  app.add_option("--name", f.name, "node name, shown in logs and status")->required();
  app.add_option("--data-dir", f.data_dir, "directory of the node's LMDB environment")->required();
  app.add_option("--client-addr", f.client_addr, "HOST:PORT to serve clients on")->required();
  app.add_option("--gcs-addr", f.gcs_addr, "HOST:PORT for group communication")->required();
  app.add_option("--peers", f.peers,
                 "HOST:PORT,... gcs addresses of members to join through "
                 "(not built yet in this version)");
  app.add_flag("--bootstrap", f.bootstrap,
               "form a new primary component (a new cluster history "
               "when the data dir is empty)");
  app.add_option("--durability", f.durability,
                 "fsync: a commit is on disk before it is acknowledged (default); memory: in "
                 "memory, flushed in the background every 100 ms")
      ->check(CLI::IsMember({"fsync", "memory"}));
  app.add_option("--log-level", f.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--max-key-size", f.limits.max_key_bytes, "largest key in bytes")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  setup_logging(f);
  try {
    return run(f);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
