// tutti-chaos (issue 12): real tuttid processes, each in its own network namespace, under client
// workloads while a nemesis injects faults from a seeded schedule; then everything is healed and
// the recorded history is checked. netns.hpp builds the network; this file holds the nodes, the
// workloads and what they record.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "chaos/checks.hpp"
#include "chaos/disks.hpp"
#include "chaos/netns.hpp"
#include "core/client.hpp"
#include "core/messages.hpp"
#include "process.hpp"

namespace tutti::chaos {

constexpr uint16_t kClientPort = 7100;
constexpr uint16_t kGcsPort = 7200;

// The cluster's tuttid processes, numbered 1..N, each in its namespace.
class Nodes {
 public:
  // The network may hold more nodes than start: the spares join later (join()).
  // disks: where each node keeps its data (outlives this).
  Nodes(Topology& net, Disks& disks, std::filesystem::path dir, std::string tuttid, int initial);
  // Starts the initial nodes: n1 bootstraps, the others join through it; waits for one primary
  // of all of them.
  void start_all();
  // Starts the next spare, empty: it joins the running cluster by state transfer. Returns its
  // number, or 0 when there is no spare left.
  int join();
  // Nodes started so far: 1..active().
  int active() const { return active_; }
  void kill9(int node);
  // SIGTERM: the node leaves the group gracefully and exits; false when it did not exit within
  // 20 s (it is then killed).
  bool leave(int node);
  void stop(int node);  // SIGSTOP: frozen, its sockets open
  void cont(int node);
  // Starts a node again with the command line it had, less --bootstrap: it rejoins by itself.
  void restart(int node);
  bool down(int node) const { return !procs_.at(node).running_flag; }
  bool frozen(int node) const { return procs_.at(node).frozen; }
  std::string client_addr(int node) const;
  std::optional<core::StatusReply> status(int node) const;
  // One request on a fresh connection; nothing when the node did not answer in time.
  std::optional<core::Response> call(int node, core::Request request,
                                     std::chrono::milliseconds timeout) const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  struct Proc {
    test::Process process;
    bool running_flag = false;
    bool frozen = false;
  };
  void spawn(int node, bool bootstrap);
  Topology& net_;
  Disks& disks_;
  std::filesystem::path dir_;
  std::string tuttid_;
  std::map<int, Proc> procs_;
  std::atomic<int> active_;
};

struct Counts {
  uint64_t ok = 0, failed = 0, unknown = 0, conflicts = 0;
};
void count(Counts& c, Outcome o);

// What the workloads saw, shared by their threads.
struct History {
  std::mutex mu;
  Counts inserts, transfers, reads, appends, registers;
  std::set<std::string> acked;    // insert keys whose commit was acknowledged
  std::set<std::string> unknown;  // insert keys whose outcome no node told
  std::set<std::string> refused;  // insert keys every node refused before replicating
  std::vector<ListTxn> list_txns;
  std::vector<RegisterOp> register_ops;
  std::vector<std::string> violations;
  void violation(std::string what);
};

struct WorkloadConfig {
  int insert_workers = 2;
  int bank_workers = 2;
  int accounts = 8;
  int64_t initial_balance = 100;
  // List-append and registers use fresh keys every epoch, so that a list stays short and a
  // register's history small enough for its checker's search.
  int list_workers = 2;
  int list_keys = 5;
  std::chrono::seconds list_epoch{5};
  int register_workers = 2;
  int register_keys = 2;
  std::chrono::seconds register_epoch{2};
  std::string run;  // in every transaction id: unique across runs
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  // The epoch at t (both workloads' keys carry it) and the key prefix of one list epoch.
  uint64_t epoch(std::chrono::steady_clock::time_point t, std::chrono::seconds length) const {
    return static_cast<uint64_t>((t - start) / length);
  }
  static std::string list_prefix(uint64_t epoch);
};

// A client that talks to one node at a time and moves to another when asked to.
class Conn {
 public:
  Conn(const Nodes& nodes, uint64_t seed) : nodes_(nodes), rng_(seed) {}
  void move();
  // Throws core::ClientError (the connection is then dropped).
  core::Response call(core::Request req);
  std::mt19937_64& rng() { return rng_; }

 private:
  const Nodes& nodes_;
  int node_ = 1;
  std::mt19937_64 rng_;
  std::unique_ptr<core::Client> client_;
};

// Moves to another node after a short pause: a node that is down refuses at once.
void elsewhere(Conn& conn);
// Commits with retries through other nodes under the same transaction id, so an outcome lost
// with a connection is asked for again. failed: certification refused it (*conflict set), or
// every attempt was refused before replication.
Outcome commit(Conn& conn, const core::CommitRequest& req, bool* conflict,
               const std::atomic<bool>& stop);

// List-append transactions and register operations until stop (txn_workloads.cpp).
void list_append_worker(const Nodes& nodes, const WorkloadConfig& cfg, int w, History& h,
                        const std::atomic<bool>& stop);
void register_worker(const Nodes& nodes, const WorkloadConfig& cfg, int w, History& h,
                     const std::atomic<bool>& stop);
// A list as the workload stores it (decimal elements, space-separated); nothing when it is not.
std::optional<std::vector<Element>> parse_list(const std::string& value);

// Runs until stop: unique-key inserts, bank transfers, list-append transactions and register
// operations through random nodes, with snapshot reads of every account (linearizable and local)
// checked as they come.
void run_workloads(const Nodes& nodes, const WorkloadConfig& cfg, History& history,
                   const std::atomic<bool>& stop);
// One snapshot read of every account: the balances must sum to the constant, none negative.
void check_accounts(const core::ScanReply& scan, const WorkloadConfig& cfg,
                    const std::string& where, History& h);
// Sets the accounts up before the workloads start.
void create_accounts(const Nodes& nodes, const WorkloadConfig& cfg);

}  // namespace tutti::chaos
