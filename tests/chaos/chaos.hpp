// tutti-chaos (issue 12): real tuttid processes, each in its own network namespace, under client
// workloads while a nemesis injects faults from a seeded schedule; then everything is healed and
// the recorded history is checked. netns.hpp builds the network; this file holds the nodes, the
// workloads and what they record.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "chaos/disks.hpp"
#include "chaos/netns.hpp"
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

// A commit as its client saw it: acknowledged, refused before it was replicated, or never told.
enum class Outcome { ok, failed, unknown };

struct Counts {
  uint64_t ok = 0, failed = 0, unknown = 0, conflicts = 0;
};

// What the workloads saw, shared by their threads.
struct History {
  std::mutex mu;
  Counts inserts, transfers, reads;
  std::set<std::string> acked;    // insert keys whose commit was acknowledged
  std::set<std::string> unknown;  // insert keys whose outcome no node told
  std::set<std::string> refused;  // insert keys every node refused before replicating
  std::vector<std::string> violations;
  void violation(std::string what);
};

struct WorkloadConfig {
  int insert_workers = 2;
  int bank_workers = 2;
  int accounts = 8;
  int64_t initial_balance = 100;
  std::string run;  // in every transaction id: unique across runs
};

// Runs until stop: unique-key inserts and bank transfers through random nodes, with snapshot
// reads of every account (linearizable and local) checked as they come.
void run_workloads(const Nodes& nodes, const WorkloadConfig& cfg, History& history,
                   const std::atomic<bool>& stop);
// One snapshot read of every account: the balances must sum to the constant, none negative.
void check_accounts(const core::ScanReply& scan, const WorkloadConfig& cfg,
                    const std::string& where, History& h);
// Sets the accounts up before the workloads start.
void create_accounts(const Nodes& nodes, const WorkloadConfig& cfg);

}  // namespace tutti::chaos
