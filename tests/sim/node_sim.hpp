// The whole-node simulator (tutti-sim): real node cores - core::Node over gcs::Group, with
// certification and apply - over real LMDB stores in a temporary directory, each driven through
// the same Ready carry-out as tuttid (Node::flush). Only the network (sim/network.hpp), time and
// the disk (a test::FaultEnv per node) are simulated. Simulated clients run a bank workload and
// blind puts through random nodes and retry with the same transaction id after a lost answer.
// Every event is checked against the guarantees (node_sim_check.cpp); then a liveness phase.
#pragma once

#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/node.hpp"
#include "fault_env.hpp"
#include "sim/network.hpp"
#include "sim/simulator.hpp"
#include "temp_dir.hpp"

namespace tutti::sim {

struct NodeSimOptions {
  uint64_t seed = 1;
  int nodes = 5;     // members at the start (1 to 7)
  int steps = 2000;  // fault phase length, in 10 ms steps of virtual time
  std::set<Fault> faults = {Fault::crash, Fault::partition, Fault::loss, Fault::pause,
                            Fault::join,  Fault::leave,     Fault::disk};
  int clients = 5;
  // Joiners catch up mostly by snapshots of many small chunks: short logs, larger values.
  bool snapshots = false;
  Time liveness_limit = 60000;  // virtual ms allowed to settle after the faults stop
  std::ostream* trace = nullptr;
  size_t max_ready_deliveries = gcs::Limits{}.max_ready_deliveries;
};

struct NodeSimResult {
  bool ok = true;
  std::string violation;
  std::vector<std::string> recent;
  uint64_t seqnos = 0;  // the history's length
  uint64_t commits = 0, conflicts = 0, rejected = 0;
  uint64_t acked = 0;  // commits acknowledged to clients
  uint64_t view_changes = 0;
  uint64_t transferred = 0;      // write-sets applied by incremental transfers
  uint64_t snapshots = 0;        // snapshot transfers installed
  uint64_t carried = 0;          // ... that carried forward a part staged from an earlier one
  uint64_t staged_restarts = 0;  // restarts with part of a snapshot staged (resumed, or redone)
  uint64_t told_early = 0;       // outcomes told before the batch that applies them committed
  uint64_t lost_after_told = 0;  // ... of batches then lost in a crash
  Time settled_after = 0;
};

NodeSimResult run_node_simulation(const NodeSimOptions& options);

class NodeCluster {
 public:
  explicit NodeCluster(const NodeSimOptions& o);
  ~NodeCluster();
  NodeCluster(const NodeCluster&) = delete;
  NodeCluster& operator=(const NodeCluster&) = delete;
  NodeSimResult run();

 private:
  struct SimNode;
  struct Event {
    // transfer: a joiner's pull arrives at its donor; transfer_reply: the answer at the joiner.
    enum Kind {
      message,
      tick,
      flush,
      client_request,
      client_reply,
      transfer,
      transfer_reply,
      decided,  // the storage thread certified the batch on its way and tells what it may
      persisted
    } kind;
    Time t = 0;
    uint64_t order = 0;
    NodeId node;         // the node it happens at (reply: the node that answered)
    NodeId from;         // message: its sender
    uint64_t epoch = 0;  // message: the link's; flush, request: the node's incarnation
    std::shared_ptr<const gcs::Message> msg;
    int client = -1;
    uint64_t op = 0;  // client_request, client_reply: the client's operation
    std::shared_ptr<const core::Request> request;
    std::shared_ptr<const core::Response> response;
    bool operator>(const Event& o) const { return std::tie(t, order) > std::tie(o.t, o.order); }
  };
  // The node's storage thread, simulated: a batch reaches the disk after the disk's latency,
  // and is lost if the node crashes first.
  struct SimPersister final : core::Persister {
    NodeCluster* cluster = nullptr;
    SimNode* node = nullptr;
    struct Job {
      core::PersistBatch batch;
      bool with_hashes;
      Done done;
      core::Decided decided;
      Time latency;
      std::vector<core::Decision> told;  // what decided told, checked against the outcome
      core::Logged logged;
    };
    std::optional<Job> job;
    void submit(core::PersistBatch batch, bool with_hashes, Done done, core::Decided decided,
                core::Logged logged) override {
      cluster->submit_persist(*node, Job{std::move(batch),
                                         with_hashes,
                                         std::move(done),
                                         std::move(decided),
                                         0,
                                         {},
                                         std::move(logged)});
    }
  };
  struct SimNode final : gcs::Outbox, core::NodeObserver {
    NodeCluster* cluster = nullptr;
    NodeId id;
    std::filesystem::path dir;
    bool up = false, left = false, paused = false;
    Time restart_at = 0, unpause_at = 0, disk_until = 0;
    uint64_t incarnation = 0;
    // When this incarnation last submitted a batch (none yet: nullopt).
    std::optional<storage::Clock::time_point> last_submit;
    test::FaultEnv env;
    std::unique_ptr<storage::Store> store;
    SimPersister persister;
    Time disk_latency = 0;      // a slow disk: each batch takes this long more
    uint64_t log_bytes = 0;     // its write-set log's bound
    uint32_t chunk_bytes = 0;   // what it asks a donor for in one pull
    size_t joiner_backlog = 0;  // write-sets it logs while catching up before it asks a pause
    std::unique_ptr<gcs::Group> group;
    std::unique_ptr<core::Node> node;
    std::vector<NodeId> seeds;
    std::deque<Event> held;  // arrived while paused
    // The joiner's pulls awaiting an answer, by number (numbers never repeat, so an answer to a
    // pull of an earlier incarnation finds nothing).
    std::map<uint64_t, std::function<void(std::optional<core::Response>)>> pulls;
    uint64_t next_pull = 1;
    uint64_t applied_top = 0;
    gcs::ViewKey in_view;  // deliveries happen in the view of the last view event
    void send(const NodeId& to, const gcs::Message& m) override { cluster->send(id, to, m); }
    void applied(const core::Applied& a) override { cluster->on_applied(*this, a); }
    void view_installed(const gcs::ViewEvent& v) override { cluster->on_view(*this, v); }
    void snapshot_installed(uint64_t seqno, const storage::ContentHash& hash,
                            bool carried) override {
      cluster->on_snapshot(*this, seqno, hash, carried);
    }
  };
  struct Client {
    int index = 0;
    enum class Op { none, init, read, transfer_read, transfer, put } op = Op::none;
    uint64_t op_id = 0;
    core::Request request;
    int tries = 0;
    Time wake = 0;  // idle: when to start the next operation; busy: when to give up waiting
    uint64_t next = 0;
  };
  struct Record {  // what a seqno is, as first applied anywhere
    std::string payload, txn, outcome, hash;
    NodeId origin;
    uint64_t sender_seq = 0;
    bool marker = false;
  };

  // node_sim.cpp: the nodes, the events, the faults
  uint64_t rand(uint64_t lo, uint64_t hi) { return draw(rng_, lo, hi); }
  bool chance(double p) { return sim::chance(rng_, p); }
  void schedule(Event e);
  void trace(const std::string& node, const std::string& json_body, const std::string& text);
  storage::Clock::time_point clock(Time t) const;
  void add_node(const NodeId& id, std::vector<NodeId> seeds, bool bootstrap);
  bool start(SimNode& n);
  void crash(SimNode& n);
  void send(const NodeId& from, const NodeId& to, const gcs::Message& m);
  void handle(const Event& e);
  void at_node(SimNode& n, const Event& e);
  void run_until(Time t);
  void fault_step();
  void disk_fault(SimNode& victim);
  void recoveries();
  void heal_all();
  std::vector<SimNode*> up_nodes();
  void send_pull(SimNode& joiner, const NodeId& donor, core::Request request,
                 std::function<void(std::optional<core::Response>)> done);
  void serve_pull(SimNode& donor, const Event& e);
  void submit_persist(SimNode& n, SimPersister::Job job);
  void tell_decided(SimNode& n);
  void finish_persist(SimNode& n);
  std::string settled_problem();
  Time settle(const std::string& after);

  // node_sim_clients.cpp: the workload
  void client_step(Client& c, bool start_new);
  void start_op(Client& c);
  void send_request(Client& c);
  void on_reply(const Event& e);
  void on_commit_reply(Client& c, const core::CommitReply& r);
  void check_bank(const core::ScanReply& r, const NodeId& at);
  void transfer_after_read(Client& c, const core::ScanReply& r);

  // node_sim_check.cpp: every guarantee, at every event
  void on_applied(SimNode& n, const core::Applied& a);
  void on_view(SimNode& n, const gcs::ViewEvent& v);
  void on_snapshot(SimNode& n, uint64_t seqno, const storage::ContentHash& hash, bool carried);
  void check_crash(SimNode& n);
  void check_acked(const std::string& txn, uint64_t seqno, bool committed, const NodeId& at);
  void final_checks();

  NodeSimOptions o_;
  std::mt19937_64 rng_;
  Network network_{rng_};
  test::TempDir dir_;
  Time now_ = 0;
  uint64_t order_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  std::map<NodeId, SimNode> nodes_;
  std::vector<Client> clients_;
  Time heal_at_ = 0;
  int next_node_ = 1;
  bool faults_on_ = true;
  int old_log_level_ = 0;
  bool log_nodes_ = false;
  NodeId at_;  // the node the current event is at

  // checker state
  std::map<uint64_t, Record> history_;
  std::map<std::string, uint64_t> committed_at_;  // txn id -> the seqno it was applied at
  struct ToldAhead {
    std::string txn, outcome;
    NodeId at;
  };
  std::multimap<uint64_t, ToldAhead> told_ahead_;  // answers no node had applied yet, by seqno
  std::map<std::string, uint64_t> acked_;          // txn id -> seqno acknowledged committed
  std::map<std::string, std::string> acked_puts_;  // key -> value, of acknowledged puts
  ViewChecker views_;
  std::deque<std::string> recent_;
  NodeSimResult result_;
};

}  // namespace tutti::sim
