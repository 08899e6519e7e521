#include "sim/node_sim.hpp"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/transfer.hpp"
#include "gcs/invariant.hpp"

namespace tutti::sim {
namespace {

constexpr Time kStep = 10;

gcs::Config group_config(size_t max_ready_deliveries) {
  gcs::Config c;  // as gcs-sim's: a fast group, so that many view changes fit in a run
  c.limits.max_ready_deliveries = max_ready_deliveries;
  c.heartbeat_interval = 100;
  c.suspect_timeout = 1000;
  c.install_timeout = 1500;
  c.resend_timeout = 300;
  c.exclude_time = 3000;
  c.persist_before_ack = true;
  return c;
}

// A broken invariant inside the node would abort the process; here it is the run's violation,
// reported with its seed. Not a std::exception: the node's own handlers (a failed persist) must
// not take it for theirs.
struct InvariantBroken {
  std::string message;
};
[[noreturn]] void invariant_to_violation(const std::string& message) {
  throw InvariantBroken{message};
}

}  // namespace

NodeCluster::NodeCluster(const NodeSimOptions& o) : o_(o), rng_(o.seed) {
  // The nodes log as tuttid does; thousands of view changes are not worth printing here.
  old_log_level_ = spdlog::get_level();
  // TUTTI_SIM_LOG=1: the nodes' own log lines, each with its node and the simulated time.
  log_nodes_ = std::getenv("TUTTI_SIM_LOG") != nullptr;
  spdlog::set_level(log_nodes_ ? spdlog::level::info : spdlog::level::off);
  set_invariant_handler(invariant_to_violation);
  clients_.resize(o_.clients);
  for (int i = 0; i < o_.clients; ++i) clients_[i].index = i;
}

NodeCluster::~NodeCluster() {
  for (auto& [_, n] : nodes_) {  // nodes before their stores
    n.node.reset();
    n.group.reset();
    n.store.reset();
  }
  set_invariant_handler(nullptr);
  spdlog::set_level(static_cast<spdlog::level::level_enum>(old_log_level_));
}

void NodeCluster::schedule(Event e) {
  e.order = order_++;
  queue_.push(std::move(e));
}

void NodeCluster::trace(const std::string& node, const std::string& json_body,
                        const std::string& text) {
  if (o_.trace)
    *o_.trace << fmt::format("{{\"t\":{},\"node\":\"{}\",{}}}\n", now_, node, json_body);
  recent_.push_back(fmt::format("t={} {} {}", now_, node, text));
  if (recent_.size() > 40) recent_.pop_front();
}

storage::Clock::time_point NodeCluster::clock(Time t) const {
  return storage::Clock::time_point(std::chrono::milliseconds(t));
}

void NodeCluster::add_node(const NodeId& id, std::vector<NodeId> seeds, bool bootstrap) {
  SimNode& n = nodes_[id];
  n.cluster = this;
  n.id = id;
  n.dir = dir_ / id;
  n.seeds = std::move(seeds);
  n.log_bytes = o_.snapshots ? rand(1, 4) << 10 : rand(1, 64) << 10;
  n.chunk_bytes = static_cast<uint32_t>(o_.snapshots ? rand(1, 8) << 6 : rand(1, 16) << 8);
  n.joiner_backlog = rand(4, 64);
  network_.set_side(id, 0);
  trace(id, "\"event\":\"join\"", "new node");
  if (!start(n)) throw SimViolation(id + " could not start on a fresh data dir");
  if (bootstrap) {
    n.group->member().bootstrap(fmt::format("history-{}", o_.seed));
    n.node->group_changed();
  }
  schedule(Event{Event::tick, now_ + rand(1, kStep), 0, id});
}

// What tuttid does at a start: open the store, load what the member persisted, build the group
// and the node on them. False when the disk refuses (it is tried again later).
bool NodeCluster::start(SimNode& n) {
  n.env.advance_to(clock(now_));
  try {
    storage::Options so;
    so.dir = n.dir;
    // The simulated crash is of the process, not of the machine: what LMDB committed is in the
    // file either way, so the OS's fsync would check nothing here and only cost time.
    so.durability = storage::Durability::memory;
    so.initial_map_bytes = 8u << 20;
    so.map_headroom_bytes = 0;  // maps that grow under snapshots now and then
    // A log this small is trimmed within a few dozen write-sets: joiners catch up now by
    // incremental transfer, now by snapshot.
    so.wscache_bytes = n.log_bytes;
    so.env = &n.env;
    n.store = storage::Store::open(so);
    if (n.store->read()->meta().node_uuid.empty())
      n.store->write([&](storage::WriteTxn& t) { t.set_identity("", n.id); });
  } catch (const storage::StorageError& e) {
    n.store.reset();
    trace(n.id, "\"event\":\"start-failed\"", std::string("start failed: ") + e.what());
    return false;
  }
  if (n.incarnation > 0 && n.store->read()->meta_get(core::kMetaSnapshotResume))
    ++result_.staged_restarts;
  n.up = true;
  n.paused = false;
  ++n.incarnation;
  n.last_submit.reset();
  n.applied_top = n.store->read()->meta().last_committed;
  auto member = std::make_unique<gcs::Member>(n.id, core::load_durable(*n.store),
                                              group_config(o_.max_ready_deliveries), n.seeds, now_);
  n.in_view = member->view().id;
  n.group = std::make_unique<gcs::Group>(std::move(member), n);
  const uint64_t incarnation = n.incarnation;
  SimNode* self = &n;
  core::NodeLimits limits;
  limits.transfer_chunk_bytes = n.chunk_bytes;   // small: transfers take many pulls
  limits.max_joiner_backlog = n.joiner_backlog;  // small: joiners hit it, pause, get evicted
  n.persister.cluster = this;
  n.persister.node = &n;
  n.persister.job.reset();
  n.node = std::make_unique<core::Node>(
      n.id, *n.store, *n.group, limits,
      [=, this] {
        schedule(Event{Event::flush, now_, 0, self->id, "", incarnation});
      },
      nullptr, &n.persister);
  n.node->set_observer(&n);
  n.node->set_transfer_link([this, self](const NodeId& donor, core::Request request,
                                         std::function<void(std::optional<core::Response>)> done) {
    send_pull(*self, donor, std::move(request), std::move(done));
  });
  trace(n.id, "\"event\":\"restart\"", fmt::format("start at seqno {}", n.applied_top));
  return true;
}

void NodeCluster::submit_persist(SimNode& n, SimPersister::Job job) {
  if (n.persister.job) throw SimViolation(n.id + ": a batch submitted while one is on its way");
  // A learner waiting for its transfer writes the group's entries at most every
  // kLearnerBatchInterval; a transfer's write or the directory may go at once.
  const auto at = n.env.now();
  const core::PersistBatch& b = job.batch;
  if (b.learner && !b.transfer && !b.directory && n.last_submit &&
      at - *n.last_submit < core::kLearnerBatchInterval)
    throw SimViolation(fmt::format(
        "{}: a learner's batch {} ms after its last one", n.id,
        std::chrono::duration_cast<std::chrono::milliseconds>(at - *n.last_submit).count()));
  n.last_submit = at;
  job.latency = static_cast<Time>(rand(1, 3)) + n.disk_latency;
  // Certification comes before the disk's wait: the node may answer in between, and a crash
  // there loses the batch after its answers went out.
  schedule(Event{Event::decided, now_ + rand(0, job.latency - 1), 0, n.id, "", n.incarnation});
  schedule(Event{Event::persisted, now_ + job.latency, 0, n.id, "", n.incarnation});
  n.persister.job = std::move(job);
}

// The storage thread's certification, before its commit: what write_batch would tell, from a
// transaction that is then abandoned (the batch is written for real at persisted).
void NodeCluster::tell_decided(SimNode& n) {
  auto& job = n.persister.job;
  if (!job || !job->decided) return;
  struct Abandon {};
  std::vector<core::Decision> told;
  const core::Decided grab = [&](std::vector<core::Decision> early) {
    told = std::move(early);
    throw Abandon{};
  };
  core::TransferWritten transferred;
  std::vector<core::Certified> transfer_certified;
  try {
    core::write_batch(*n.store, n.id, job->batch, job->with_hashes, &transferred,
                      &transfer_certified, nullptr, &grab);
  } catch (const Abandon&) {
  } catch (const std::exception&) {
    return;  // the real write fails the same way, and tells nothing
  }
  if (told.empty()) return;
  result_.told_early += told.size();
  job->told = told;
  job->decided(std::move(told));
}

// The storage thread is done: the batch is on disk (or failed), and the node carries on.
void NodeCluster::finish_persist(SimNode& n) {
  if (!n.persister.job) return;
  auto job = std::move(*n.persister.job);
  n.persister.job.reset();
  // The log's write and its messages come first, then the LMDB commit; a crash between them is
  // not drawn (the batch is written at one instant of the simulation).
  const core::Logged logged = job.logged;
  core::PersistResult r = core::persist(*n.store, n.id, std::move(job.batch), job.with_hashes,
                                        nullptr, logged ? &logged : nullptr);
  r.write_time = std::chrono::milliseconds(job.latency);
  // What was told early is what the batch decided (certification is deterministic).
  for (const auto& t : job.told) {
    auto same = [&](const core::Certified& c) {
      return c.decision.txn_id == t.txn_id && c.decision.marker == t.marker &&
             c.decision.outcome.committed == t.outcome.committed &&
             c.decision.outcome.seqno == t.outcome.seqno;
    };
    if (r.ok && std::none_of(r.certified.begin(), r.certified.end(), same))
      throw SimViolation(
          fmt::format("{}: told {} before its batch committed, which decided "
                      "otherwise",
                      n.id, t.txn_id));
  }
  job.done(std::move(r));
}

void NodeCluster::crash(SimNode& n) {
  check_crash(n);
  // What was on its way to disk is lost: acknowledged to no member, though perhaps answered
  // (the group has it: decided_before_commit).
  if (n.persister.job && !n.persister.job->told.empty())
    result_.lost_after_told += n.persister.job->told.size();
  n.persister.job.reset();
  n.node.reset();
  n.group.reset();
  n.store.reset();
  n.up = false;
  n.held.clear();
  n.pulls.clear();
  network_.cut(n.id);
  trace(n.id, "\"event\":\"crash\"", "crash");
}

void NodeCluster::send(const NodeId& from, const NodeId& to, const gcs::Message& m) {
  if (!nodes_.count(to)) return;
  auto route = network_.route(from, to, now_);
  if (!route) return;
  schedule(Event{Event::message, route->arrival, 0, to, from, route->epoch,
                 std::make_shared<const gcs::Message>(m)});
}

void NodeCluster::handle(const Event& e) {
  if (e.kind == Event::client_reply) return on_reply(e);
  SimNode& n = nodes_.at(e.node);
  if (e.kind == Event::tick) {
    schedule(Event{Event::tick, now_ + kStep, 0, e.node});
    if (!n.up || n.paused) return;
  }
  if ((e.kind == Event::message || e.kind == Event::transfer || e.kind == Event::transfer_reply) &&
      !network_.arrives(e.from, e.node, e.epoch))
    return;
  if ((e.kind == Event::flush || e.kind == Event::client_request || e.kind == Event::persisted ||
       e.kind == Event::decided) &&
      e.epoch != n.incarnation)
    return;
  if (!n.up) return;  // lost with the node
  if (n.paused) return n.held.push_back(e);
  at_node(n, e);
}

// One input to a live node, on the simulation's clock. (A slow disk slows the node's storage
// thread, not its loop: see submit_persist.)
void NodeCluster::at_node(SimNode& n, const Event& e) {
  n.env.advance_to(clock(now_));
  if (log_nodes_) spdlog::set_pattern(fmt::format("t={} [{}] %v", now_, n.id));
  at_ = n.id;
  switch (e.kind) {
    case Event::message:
      n.group->member().receive(*e.msg, now_);
      n.node->group_changed();
      break;
    case Event::tick:
      n.group->member().tick(now_);
      n.node->tick();
      n.node->group_changed();
      break;
    case Event::flush:
      n.node->flush();
      break;
    case Event::client_request: {
      const int client = e.client;
      const uint64_t op = e.op;
      const NodeId at = n.id;
      auto request = e.request;
      n.node->handle(*e.request, [=, this](core::Response r) {
        if (chance(0.03)) return;  // the answer is lost on its way
        schedule(Event{Event::client_reply, now_ + rand(1, 15), 0, at, "", 0, nullptr, client, op,
                       request, std::make_shared<const core::Response>(std::move(r))});
      });
      break;
    }
    case Event::transfer:
      serve_pull(n, e);
      break;
    case Event::transfer_reply:
      if (auto it = n.pulls.find(e.op); it != n.pulls.end()) {
        auto done = std::move(it->second);
        n.pulls.erase(it);
        done(*e.response);
      }
      break;
    case Event::decided:
      tell_decided(n);
      break;
    case Event::persisted:
      finish_persist(n);
      break;
    case Event::client_reply:
      break;
  }
}

void NodeCluster::run_until(Time t) {
  while (!queue_.empty() && queue_.top().t <= t) {
    Event e = queue_.top();
    queue_.pop();
    if (e.t < now_)
      throw SimViolation(fmt::format("simulator: an event of t={} at t={}", e.t, now_));
    now_ = e.t;
    handle(e);
  }
  now_ = t;
}

std::vector<NodeCluster::SimNode*> NodeCluster::up_nodes() {
  std::vector<SimNode*> out;
  for (auto& [_, n] : nodes_)
    if (n.up) out.push_back(&n);
  return out;
}

void NodeCluster::fault_step() {
  std::vector<Fault> enabled(o_.faults.begin(), o_.faults.end());
  if (enabled.empty() || !chance(0.02)) return;
  const Fault f = enabled[rand(0, enabled.size() - 1)];
  auto up = up_nodes();
  if (up.empty()) return;
  SimNode& victim = *up[rand(0, up.size() - 1)];
  switch (f) {
    case Fault::crash:
      if (chance(0.1)) {
        trace("sim", "\"event\":\"crash-all\"", "crash all");
        for (SimNode* n : up) {
          crash(*n);
          n->restart_at = now_ + rand(300, 4000);
        }
      } else {
        crash(victim);
        victim.restart_at = now_ + rand(300, 4000);
      }
      break;
    case Fault::partition: {
      const std::string text = network_.split_at_random();
      heal_at_ = now_ + rand(500, 5000);
      trace("sim", "\"event\":\"partition\"", "partition" + text);
      break;
    }
    case Fault::loss: {
      SimNode& other = *up[rand(0, up.size() - 1)];
      if (other.id == victim.id) break;
      network_.break_link(victim.id, other.id, now_ + rand(100, 3000));
      trace("sim", "\"event\":\"loss\"", fmt::format("link {}-{} broken", victim.id, other.id));
      break;
    }
    case Fault::pause:
      if (victim.paused) break;
      victim.paused = true;
      victim.unpause_at = now_ + rand(200, 4000);
      trace(victim.id, "\"event\":\"pause\"", "pause");
      break;
    case Fault::join: {
      if (nodes_.size() >= 7) break;
      const NodeId id = fmt::format("n{}", next_node_++);
      std::vector<NodeId> seeds;
      for (SimNode* n : up) seeds.push_back(n->id);
      add_node(id, seeds, false);
      break;
    }
    case Fault::leave: {
      // One graceful leave at a time, from a settled group whose rest keeps a majority.
      if (up.size() <= 2 || !settled_problem().empty()) break;
      const size_t members = victim.group->view().members.size();
      if (2 * (members - 1) <= members) break;
      victim.env.advance_to(clock(now_));
      victim.group->member().leave();
      victim.node->flush();
      trace(victim.id, "\"event\":\"leave\"", "leave");
      crash(victim);
      victim.left = true;
      break;
    }
    case Fault::disk:
      disk_fault(victim);
      break;
    case Fault::stall:  // gcs-sim's model of what disk does here to the real node
      break;
    case Fault::donor_crash:
      for (SimNode* n : up) {
        if (n->node->state() != core::NodeState::donor) continue;
        trace(n->id, "\"event\":\"donor-crash\"", "crash of a donor");
        crash(*n);
        n->restart_at = now_ + rand(300, 4000);
        break;
      }
      break;
  }
}

// A slow disk, a full one, or one whose writes or fsyncs fail, for a while.
void NodeCluster::disk_fault(SimNode& victim) {
  if (victim.disk_until) return;
  victim.disk_until = now_ + rand(300, 5000);
  switch (rand(0, 2)) {
    case 0:
      victim.disk_latency = static_cast<Time>(rand(50, 1500));
      trace(victim.id, "\"event\":\"disk-slow\"",
            fmt::format("disk slow: {} ms a batch", victim.disk_latency));
      break;
    case 1:
      victim.env.fail = test::FaultEnv::Kind::disk_full;
      victim.env.free_ = 0;
      trace(victim.id, "\"event\":\"disk-full\"", "disk full");
      break;
    default:
      victim.env.fail = test::FaultEnv::Kind::io;
      trace(victim.id, "\"event\":\"disk-eio\"", "disk: EIO on write and fsync");
      break;
  }
}

void NodeCluster::recoveries() {
  for (auto& [_, n] : nodes_) {
    if (n.disk_until && n.disk_until <= now_) {
      n.disk_until = 0;
      n.disk_latency = 0;
      n.env.fail.reset();
      n.env.free_ = UINT64_MAX;
      trace(n.id, "\"event\":\"disk-ok\"", "disk works again");
    }
    if (!n.up && !n.left && n.restart_at && n.restart_at <= now_) {
      n.restart_at = start(n) ? 0 : now_ + 500;
    }
    if (n.up && n.paused && n.unpause_at <= now_) {
      n.paused = false;
      trace(n.id, "\"event\":\"resume\"", "resume");
      auto held = std::move(n.held);
      n.held.clear();
      for (auto& e : held) {  // in arrival order, now
        e.t = now_;
        schedule(std::move(e));
      }
    }
  }
  if (heal_at_ && heal_at_ <= now_) {
    heal_at_ = 0;
    network_.heal_partition();
    trace("sim", "\"event\":\"heal\"", "partition healed");
  }
}

void NodeCluster::heal_all() {
  for (auto& [_, n] : nodes_) {
    if (!n.up && !n.left) n.restart_at = now_;
    if (n.paused) n.unpause_at = now_;
    if (n.disk_until) n.disk_until = now_;
  }
  network_.heal_links();
  heal_at_ = now_;
  recoveries();
}

// A joiner's pull goes over the simulated network like any message: lost with a partition, a
// broken link or a crash (the joiner then times out and turns to another donor).
void NodeCluster::send_pull(SimNode& joiner, const NodeId& donor, core::Request request,
                            std::function<void(std::optional<core::Response>)> done) {
  const uint64_t number = joiner.next_pull++;
  joiner.pulls[number] = std::move(done);
  auto route = network_.route(joiner.id, donor, now_);
  if (!route || !nodes_.count(donor)) return;
  schedule(Event{Event::transfer, route->arrival, 0, donor, joiner.id, route->epoch, nullptr, -1,
                 number, std::make_shared<const core::Request>(std::move(request))});
}

void NodeCluster::serve_pull(SimNode& donor, const Event& e) {
  const NodeId joiner = e.from;
  const NodeId from = donor.id;
  const uint64_t number = e.op;
  donor.node->handle(*e.request, [=, this](core::Response r) {
    auto route = network_.route(from, joiner, now_);
    if (!route) return;
    schedule(Event{Event::transfer_reply, route->arrival, 0, joiner, from, route->epoch, nullptr,
                   -1, number, nullptr, std::make_shared<const core::Response>(std::move(r))});
  });
}

// Why the live nodes are not yet one primary view with everything applied and every client
// answered ("" when they are).
std::string NodeCluster::settled_problem() {
  std::vector<NodeId> live;
  for (auto& [id, n] : nodes_)
    if (n.up) live.push_back(id);
  const uint64_t top = history_.empty() ? 0 : history_.rbegin()->first;
  for (auto& [id, n] : nodes_) {
    if (!n.up) continue;
    const auto& m = n.group->member();
    const auto& v = m.view();
    if (m.phase() != gcs::Phase::operational || !v.primary || v.members != live)
      return fmt::format("{} is {} in view {} (primary={}, {} members) with {} live", id,
                         gcs::to_string(m.phase()), gcs::to_string(v.id), v.primary,
                         v.members.size(), live.size());
    if (m.durable().needs_transfer) return id + " still waits for its state transfer";
    if (!v.learners.empty())
      return fmt::format("{} is in view {}, whose learners have no vote yet", id,
                         gcs::to_string(v.id));
    if (n.applied_top != top) return fmt::format("{} is at seqno {} of {}", id, n.applied_top, top);
    if (n.group->stuck()) return id + " cannot persist";
  }
  for (const auto& c : clients_)
    if (c.op != Client::Op::none)
      return fmt::format("client {} still waits for an answer", c.index);
  // A node answers a commit once certified, before its batch is on disk: the answer may come
  // while every node still shows the seqno before it (tutti-sim seed 101068).
  if (!told_ahead_.empty())
    return fmt::format("seqno {} was answered, and no node has applied it yet",
                       told_ahead_.begin()->first);
  return "";
}

// Runs without faults until settled; returns how long that took.
Time NodeCluster::settle(const std::string& after) {
  const Time start = now_;
  std::string problem = settled_problem();
  while (!problem.empty() && now_ - start < o_.liveness_limit) {
    run_until(now_ + kStep);
    recoveries();
    for (auto& c : clients_) client_step(c, false);
    problem = settled_problem();
  }
  if (!problem.empty())
    throw SimViolation(
        fmt::format("liveness: not settled {} ms {}: {}", o_.liveness_limit, after, problem));
  return now_ - start;
}

NodeSimResult NodeCluster::run() {
  try {
    const int initial = std::clamp(o_.nodes, 1, 7);
    std::vector<NodeId> peers;
    for (int i = 0; i < initial; ++i) peers.push_back(fmt::format("n{}", next_node_ + i));
    for (int i = 0; i < initial; ++i) add_node(fmt::format("n{}", next_node_++), peers, i == 0);
    for (int step = 0; step < o_.steps; ++step) {
      run_until(now_ + kStep);
      recoveries();
      fault_step();
      for (auto& c : clients_) client_step(c, true);
    }
    trace("sim", "\"event\":\"heal-all\"", "faults stop");
    heal_all();
    result_.settled_after = settle("after the faults stopped");
    final_checks();
    // Every node crashes at once and comes back: every acknowledged commit is still there.
    trace("sim", "\"event\":\"crash-all\"", "crash all, then restart all");
    for (SimNode* n : up_nodes()) crash(*n);
    heal_all();
    settle("after a crash of every node");
    final_checks();
  } catch (const SimViolation& v) {
    result_.ok = false;
    result_.violation = v.what();
  } catch (const InvariantBroken& b) {
    result_.ok = false;
    result_.violation = fmt::format("{}'s invariant broke: {}", at_, b.message);
  }
  if (!result_.ok) {
    result_.recent.assign(recent_.begin(), recent_.end());
    for (auto& [_, n] : nodes_)
      if (n.up) result_.recent.push_back("state " + n.group->member().debug_string());
  }
  result_.seqnos = history_.empty() ? 0 : history_.rbegin()->first;
  return result_;
}

NodeSimResult run_node_simulation(const NodeSimOptions& options) {
  return NodeCluster(options).run();
}

}  // namespace tutti::sim
