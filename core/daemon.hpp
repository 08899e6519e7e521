// The composition root of a node: what tuttid runs, built from its configuration - the store,
// the group protocol over the TCP transport, the node logic with its storage thread, and the
// client server, on one io_context - and the node's policy at a start (which data dir may
// start how).
#pragma once

#include <asio.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "core/node.hpp"
#include "core/server.hpp"
#include "core/transfer_fetcher.hpp"
#include "core/worker_thread.hpp"
#include "gcs/group.hpp"
#include "gcs/transport.hpp"
#include "storage/store.hpp"

namespace tutti::core {

struct NodeConfig {
  std::string name, data_dir, client_addr, gcs_addr, peers;
  std::string cluster_name = "tutti";
  bool bootstrap = false;
  bool force = false;
  // With --bootstrap --force: form the primary even though a reachable member of the history
  // holds commits this node lacks (they are lost).
  bool discard_newer_commits = false;
  std::string durability = "fsync";
  std::vector<std::string> donors;  // names of the members to ask first for a state transfer
  NodeLimits limits;
  ServerLimits server;
  gcs::Config gcs;
  int64_t gcs_forget_after_s = 24 * 3600;
};

// A fresh data dir gets its node identity here, and only when the operator said where it
// belongs: --bootstrap (a new cluster) or --peers (an existing one). A data dir keeps the cluster
// name it was first started with, and one that belongs to a history is bootstrapped again only
// with --force. Throws std::runtime_error with the operator's message.
void check_identity(storage::Store& store, const NodeConfig& f);

// What a data dir says about its node's place in its history, read without changing anything
// (tuttid --recover).
struct Recovery {
  std::string history_uuid;  // empty: none yet
  uint64_t last_committed = 0;
  std::optional<gcs::ViewInfo> last_primary;
  bool last_primary_committed = false;  // this node saw that view commit
  bool safe_to_bootstrap = false;
  std::string why;  // of safe_to_bootstrap, in words
};
Recovery recover(const storage::Store& store);

// --bootstrap --force on a data dir of a history: refused while a member of that history that this
// node remembers is reachable and in a primary component, or holds commits this node lacks (unless
// f.discard_newer_commits). Throws std::runtime_error with the operator's message.
void check_force_bootstrap(const storage::Store& store, const NodeConfig& f);

// Everything one node runs, on one io_context: storage, the group protocol over the transport,
// the node logic and the client server.
class Daemon {
 public:
  Daemon(const NodeConfig& f, storage::Store& store)
      : f_(f),
        store_(store),
        started_(std::chrono::steady_clock::now()),
        tick_timer_(io_),
        sync_timer_(io_),
        stop_timer_(io_),
        signals_(io_, SIGINT, SIGTERM) {}

  int run();

  // The node stopped to join a cluster of another history (see foreign_primary): its caller
  // moves the data dir's store aside and starts the node again on an empty one.
  struct Rejoin {
    std::string gcs_addr;     // of a member of the cluster it joins
    std::string history;      // the data dir's own, as text
    uint64_t last_committed;  // the data dir's
  };
  const std::optional<Rejoin>& rejoin() const { return rejoin_; }

 private:
  gcs::Time now() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 started_)
        .count();
  }
  void tick();
  void background_sync();
  void shut_down(int signo);
  void foreign_primary(const gcs::PeerInfo& peer, const std::string& gcs_addr);

  const NodeConfig& f_;
  storage::Store& store_;
  std::chrono::steady_clock::time_point started_;
  asio::io_context io_;
  asio::steady_timer tick_timer_, sync_timer_, stop_timer_;
  asio::signal_set signals_;
  // Set by shut_down: a tick or sync whose timer fired before the cancel still runs once, and
  // must not arm its timer again, or io_.run() never returns.
  bool stopping_ = false;
  std::optional<gcs::Time> foreign_since_;  // refused by a primary of another history since
  uint64_t stale_readers_told_ = 0;         // of store_.stale_readers_cleared(), logged
  std::optional<Rejoin> rejoin_;
  std::unique_ptr<gcs::Transport> transport_;
  std::unique_ptr<gcs::Group> group_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<ClientServer> server_;
  // Declared after the node: its thread joined before the node goes.
  std::unique_ptr<TransferFetcher> fetcher_;
  // A donor's reads: off the loop, yielding to the node's own threads.
  std::unique_ptr<WorkerThread> donor_thread_;
  std::unique_ptr<WorkerThread> sync_thread_;  // memory durability's background flush
  // Declared after the node: destroyed (its thread joined) before it.
  std::unique_ptr<ThreadPersister> persister_;
};

}  // namespace tutti::core
