// A deterministic simulator of many gcs members (gcs/member.hpp) over a simulated network, with
// faults, checking the protocol's guarantees after every event. One seed, one run, step for step.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <queue>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gcs/member.hpp"
#include "sim/network.hpp"
#include "sim/view_checker.hpp"

namespace tutti::sim {

// disk and donor_crash: tutti-sim only. donor_crash (a node serving a snapshot crashes) and
// stall (a node whose batches stop reaching its disk for a while, though it still takes
// messages and says it lives, as tuttid's Alive does) are not in the default set: the pinned
// seeds of the others replay as they did.
enum class Fault { crash, partition, loss, pause, join, leave, disk, donor_crash, stall };
std::optional<Fault> parse_fault(const std::string& name);
// "crash,partition,..." ("" or "none": no fault); nullopt, with the name in `bad`, for a name
// that is no fault.
std::optional<std::set<Fault>> parse_faults(const std::string& text, std::string& bad);
const char* fault_name(Fault f);

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 5;     // members at the start (3 to 7)
  int steps = 2000;  // fault phase length, in 10 ms steps of virtual time
  std::set<Fault> faults = {Fault::crash, Fault::partition, Fault::loss,
                            Fault::pause, Fault::join,      Fault::leave};
  gcs::Time liveness_limit = 60000;         // virtual ms allowed to settle after the faults stop
  std::ostream* trace = nullptr;            // JSON lines of every event, when set
  std::map<gcs::NodeId, uint32_t> weights;  // member weights (default 1)
  bool memory_durability = false;           // members run with persist_before_ack = false
  size_t max_ready_deliveries = gcs::Limits{}.max_ready_deliveries;
};

struct SimResult {
  bool ok = true;
  std::string violation;            // the first broken invariant
  std::vector<std::string> recent;  // the last events before it
  uint64_t delivered = 0;           // seqnos in the history
  uint64_t deliveries = 0;          // delivery events on all nodes
  uint64_t view_changes = 0;
  uint64_t broadcasts = 0;
  uint64_t crashes_before_persist = 0;  // after a Ready's early sends, before its persist
  gcs::Time settled_after = 0;          // virtual ms the liveness phase took
  size_t largest_ready = 0;             // most deliveries one Ready carried
};

SimResult run_simulation(const SimOptions& options);

using gcs::Message;
using gcs::NodeId;
using gcs::Time;

struct SimNode {
  NodeId id;
  bool up = false;
  bool left = false;
  bool paused = false;
  Time restart_at = 0;
  Time unpause_at = 0;
  Time flow_until = 0;         // a slow node: it holds the group paused (flow control) until then
  Time stalled_until = 0;      // its Readies wait (a batch on its way to disk) until then
  bool transfer_held = false;  // its state transfer makes no progress (a long snapshot, say)
  Time alive_sent = 0;
  gcs::Durable durable;
  std::unique_ptr<gcs::Member> member;
  std::vector<NodeId> seeds;
  std::deque<std::pair<NodeId, Message>> inbox;  // held while paused
  uint64_t last_seqno = 0;                       // the application's state: applied up to here
  gcs::ViewKey in_view;  // the view of the last view event taken: deliveries happen in it
  std::map<NodeId, uint64_t> fifo;  // last sender_seq applied per sender
  std::set<std::string> pending;    // accepted broadcasts not yet delivered here
};

struct Event {
  enum Kind { message, tick, transfer } kind;
  Time t;
  uint64_t order;
  NodeId to, from;
  uint64_t link_epoch = 0;
  std::shared_ptr<const Message> msg;
  bool operator>(const Event& o) const { return std::tie(t, order) > std::tie(o.t, o.order); }
};

struct HistoryEntry {
  std::string msg;
  NodeId sender;
  uint64_t sender_seq;
};

class Cluster {
 public:
  explicit Cluster(const SimOptions& o) : o_(o), rng_(o.seed), views_(o.weights) {}
  // The randomized run: faults, then the liveness phase.
  SimResult run();

  // Scripted use, for scenario tests. Every event is checked as it happens: a broken invariant
  // throws SimViolation.
  void boot(int nodes);
  void run_for(Time ms);
  void crash(const NodeId& id);
  void restart(const NodeId& id);
  void pause(const NodeId& id, Time ms);
  // The node's batch is on its way to disk for ms: it takes messages and ticks, carries out
  // nothing, and sends Alive.
  void stall(const NodeId& id, Time ms);
  void flow_pause(const NodeId& id, bool pause);
  // While held, the node's state transfer waits, as one streaming a snapshot for minutes would.
  void hold_transfer(const NodeId& id, bool hold);
  void partition(const std::vector<std::vector<NodeId>>& groups);
  void heal();
  void join(const NodeId& id, std::vector<NodeId> seeds);
  void leave(const NodeId& id);
  int broadcast(const NodeId& id, int count);
  // Messages for which drop returns true are lost (nullptr: none).
  void set_drop(std::function<bool(const NodeId&, const NodeId&, const Message&)> drop) {
    drop_ = std::move(drop);
  }
  const gcs::Member& member(const NodeId& id) const { return *nodes_.at(id).member; }
  bool is_up(const NodeId& id) const { return nodes_.at(id).up; }
  // Runs until every live member is in one primary view with everything delivered; returns
  // what is still wrong after limit ms ("" when settled).
  std::string settle(Time limit);
  std::string settled_problem();
  Time now() const { return now_; }
  const SimResult& result() const { return result_; }

 private:
  uint64_t rand(uint64_t lo, uint64_t hi) { return draw(rng_, lo, hi); }
  bool chance(double p) { return sim::chance(rng_, p); }
  void schedule(Event e) {
    e.order = order_++;
    queue_.push(std::move(e));
  }
  void trace(const std::string& node, const std::string& json_body, const std::string& text);
  gcs::Config config() const;

  void add_node(const NodeId& id, std::vector<NodeId> seeds);
  void start(SimNode& n);
  void crash_node(SimNode& n);
  void process(SimNode& n);
  void send(const NodeId& from, const NodeId& to, Message m);
  void handle(const Event& e);
  void on_delivery(SimNode& n, const gcs::Delivery& d);
  void on_view(SimNode& n, const gcs::ViewEvent& v);
  void do_transfer(SimNode& n);
  bool broadcast_one(SimNode& n);

  void fault_step();
  void recoveries();
  void heal_all();
  std::vector<SimNode*> up_nodes();
  void run_until(Time t);
  std::function<bool(const NodeId&, const NodeId&, const Message&)> drop_;

  SimOptions o_;
  std::mt19937_64 rng_;
  Time now_ = 0;
  uint64_t order_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  std::map<NodeId, SimNode> nodes_;
  Network network_{rng_};
  Time heal_at_ = 0;
  int next_node_ = 1;

  // checker state
  std::map<uint64_t, HistoryEntry> history_;  // seqno -> message, as first delivered anywhere
  std::map<std::string, uint64_t> seqno_of_;
  std::set<std::string> accepted_;
  ViewChecker views_;
  std::deque<std::string> recent_;
  SimResult result_;
};

}  // namespace tutti::sim
