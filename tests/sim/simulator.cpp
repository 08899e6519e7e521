#include "sim/simulator.hpp"

#include <algorithm>
#include <queue>
#include <stdexcept>

#include <fmt/format.h>

namespace tutti::sim {
namespace {

using gcs::Message;
using gcs::NodeId;
using gcs::Time;

constexpr Time kStep = 10;
using Violation = SimViolation;

std::string msg_id(const NodeId& sender, uint64_t seq) {
  return fmt::format("{}:{}", sender, seq);
}

}  // namespace

gcs::Config Cluster::config() const {
  gcs::Config c;
  c.heartbeat_interval = 100;
  c.suspect_timeout = 1000;
  c.install_timeout = 1500;
  c.resend_timeout = 300;
  c.exclude_time = 3000;
  c.weights = o_.weights;
  c.persist_before_ack = !o_.memory_durability;
  c.limits.max_ready_deliveries = o_.max_ready_deliveries;
  return c;
}

void Cluster::trace(const std::string& node, const std::string& json_body,
                    const std::string& text) {
  if (o_.trace)
    *o_.trace << fmt::format("{{\"t\":{},\"node\":\"{}\",{}}}\n", now_, node, json_body);
  recent_.push_back(fmt::format("t={} {} {}", now_, node, text));
  if (recent_.size() > 40) recent_.pop_front();
}

void Cluster::add_node(const NodeId& id, std::vector<NodeId> seeds) {
  SimNode& n = nodes_[id];
  n.id = id;
  n.seeds = std::move(seeds);
  network_.set_side(id, 0);
  start(n);
  schedule(Event{Event::tick, now_ + rand(1, kStep), 0, id, "", 0, nullptr});
}

void Cluster::start(SimNode& n) {
  n.up = true;
  n.paused = false;
  n.member = std::make_unique<gcs::Member>(n.id, n.durable, config(), n.seeds, now_);
  n.last_seqno = n.durable.delivered;
  n.fifo = n.durable.sender_high;
  n.in_view = n.member->view().id;
  trace(n.id, "\"event\":\"restart\"", "start");
  process(n);
}

void Cluster::crash_node(SimNode& n) {
  if (n.up) views_.crashing(n.id, n.durable);
  n.up = false;
  n.flow_until = 0;
  n.stalled_until = 0;
  n.member.reset();
  n.inbox.clear();
  n.pending.clear();  // a crashed sender's undelivered messages may be lost: not checked
  network_.cut(n.id);
  trace(n.id, "\"event\":\"crash\"", "crash");
}

// Carries out a Ready in order: its early sends, persist, send, then the application takes the
// events. A crash may fall between the early sends and the persist, as a real disk allows.
void Cluster::process(SimNode& n) {
  if (n.stalled_until > now_) return;  // recoveries() carries it out
  while (n.member && n.member->has_ready()) {
    gcs::MemberReady r = n.member->take_ready();
    for (size_t i = 0; i < r.early; ++i) send(n.id, r.send[i].first, std::move(r.send[i].second));
    r.send.erase(r.send.begin(), r.send.begin() + static_cast<ptrdiff_t>(r.early));
    if (r.early > 0 && o_.faults.count(Fault::crash) && chance(0.002)) {
      trace(n.id, "\"event\":\"crash-before-persist\"", "crash after early sends");
      ++result_.crashes_before_persist;
      crash_node(n);
      n.restart_at = now_ + rand(300, 4000);
      return;
    }
    if (r.truncate_after)
      std::erase_if(n.durable.log, [&](auto& e) { return e.first > *r.truncate_after; });
    for (auto& e : r.append) n.durable.log[e.seqno] = e;
    if (r.meta) {  // the log is kept incrementally above
      auto log = std::move(n.durable.log);
      n.durable = std::move(*r.meta);
      n.durable.log = std::move(log);
    }
    for (auto& [to, m] : r.send) send(n.id, to, std::move(m));
    result_.largest_ready =
        std::max<size_t>(result_.largest_ready,
                         std::count_if(r.events.begin(), r.events.end(), [](const gcs::Event& e) {
                           return std::holds_alternative<gcs::Delivery>(e);
                         }));
    for (auto& ev : r.events) {
      if (auto* d = std::get_if<gcs::Delivery>(&ev)) on_delivery(n, *d);
      if (auto* v = std::get_if<gcs::ViewEvent>(&ev)) on_view(n, *v);
    }
  }
}

void Cluster::send(const NodeId& from, const NodeId& to, Message m) {
  if (!nodes_.count(to) || network_.side(from) != network_.side(to)) return;
  if (drop_ && drop_(from, to, m)) return;
  auto route = network_.route(from, to, now_);
  if (!route) return;
  schedule(Event{Event::message, route->arrival, 0, to, from, route->epoch,
                 std::make_shared<const Message>(std::move(m))});
}

void Cluster::handle(const Event& e) {
  SimNode& n = nodes_.at(e.to);
  switch (e.kind) {
    case Event::message: {
      if (!network_.arrives(e.from, e.to, e.link_epoch) || !n.up) return;  // lost with its link
      if (n.paused) {
        n.inbox.emplace_back(e.from, *e.msg);
        return;
      }
      n.member->receive(*e.msg, now_);
      process(n);
      return;
    }
    case Event::tick:
      schedule(Event{Event::tick, now_ + kStep, 0, e.to, "", 0, nullptr});
      if (!n.up || n.paused) return;
      n.member->tick(now_);
      if (n.stalled_until > now_ && now_ - n.alive_sent >= n.member->heartbeat_interval()) {
        n.alive_sent = now_;
        for (auto& [to, m] : n.member->alive(false)) send(n.id, to, std::move(m));
      }
      process(n);
      return;
    case Event::transfer:
      do_transfer(n);
      return;
  }
}

// ---- the checker: every delivery and view against every guarantee ----

void Cluster::on_delivery(SimNode& n, const gcs::Delivery& d) {
  ++result_.deliveries;
  const std::string id = msg_id(d.origin, d.sender_seq);
  trace(n.id,
        fmt::format(
            "\"event\":\"deliver\",\"view\":\"{}\",\"seqno\":{},\"sender\":\"{}\",\"msg\":\"{}\"{}",
            gcs::to_string(n.in_view), d.seqno, d.origin, id,
            d.at_view_change ? ",\"at_view_change\":true" : ""),
        fmt::format("deliver seqno {} {}", d.seqno, id));
  if (!accepted_.count(id))
    throw Violation(fmt::format("{} delivered {}, never broadcast", n.id, id));
  if (d.seqno != n.last_seqno + 1)
    throw Violation(fmt::format("{} delivered seqno {} after {}: seqnos not contiguous", n.id,
                                d.seqno, n.last_seqno));
  auto [h, fresh] = history_.try_emplace(d.seqno, HistoryEntry{id, d.origin, d.sender_seq});
  if (!fresh && h->second.msg != id)
    throw Violation(fmt::format("total order: seqno {} is {} at {} but {} elsewhere", d.seqno, id,
                                n.id, h->second.msg));
  auto [s, first] = seqno_of_.try_emplace(id, d.seqno);
  if (!first && s->second != d.seqno)
    throw Violation(
        fmt::format("{} delivered at seqno {} and at seqno {}", id, s->second, d.seqno));
  uint64_t& last = n.fifo[d.origin];
  if (d.sender_seq <= last)
    throw Violation(
        fmt::format("sender FIFO: {} delivered {} after {}:{}", n.id, id, d.origin, last));
  last = d.sender_seq;
  n.last_seqno = d.seqno;
  // The view it is delivered in: the member's own view may already be the next one, whose view
  // event follows in the same batch.
  views_.delivered(n.in_view, d.seqno, d.at_view_change);
  for (auto& [_, node] : nodes_) node.pending.erase(id);
  result_.delivered = std::max(result_.delivered, d.seqno);
}

void Cluster::on_view(SimNode& n, const gcs::ViewEvent& v) {
  ++result_.view_changes;
  n.in_view = v.view.id;
  trace(n.id, view_json(v), view_text(v));
  if (!v.view.primary) return;
  views_.primary_installed(v);
  if (v.self_needs_transfer) {
    schedule(Event{Event::transfer, now_ + rand(20, 200), 0, n.id, "", 0, nullptr});
  } else if (n.last_seqno != v.view.base) {
    // Virtual synchrony: members passing into this view have delivered the same history.
    throw Violation(fmt::format("{} enters primary view {} at seqno {} but its base is {}", n.id,
                                gcs::to_string(v.view.id), n.last_seqno, v.view.base));
  }
}

// The application's state transfer, simulated: copy the history up to the view's base.
void Cluster::do_transfer(SimNode& n) {
  if (!n.up || !n.durable.needs_transfer || !n.durable.last_primary) return;
  if (n.paused || n.transfer_held) {
    schedule(Event{Event::transfer, now_ + 100, 0, n.id, "", 0, nullptr});
    return;
  }
  const uint64_t base = n.durable.last_primary->base;
  if (static_cast<uint64_t>(std::distance(history_.begin(), history_.upper_bound(base))) != base) {
    schedule(Event{Event::transfer, now_ + 100, 0, n.id, "", 0, nullptr});  // not delivered yet
    return;
  }
  std::map<NodeId, uint64_t> high;
  for (auto it = history_.begin(); it != history_.end() && it->first <= base; ++it) {
    uint64_t& h = high[it->second.sender];
    h = std::max(h, it->second.sender_seq);
  }
  n.last_seqno = std::max(n.last_seqno, base);
  for (auto& [s, h] : high) n.fifo[s] = std::max(n.fifo[s], h);
  trace(n.id, fmt::format("\"event\":\"transfer\",\"seqno\":{}", base),
        fmt::format("transfer to {}", base));
  n.member->transfer_done(base, high);
  process(n);
}

bool Cluster::broadcast_one(SimNode& n) {
  if (!n.member) return false;  // crashed meanwhile (before a persist, say)
  auto r = n.member->broadcast(fmt::format("payload {} {}", n.id, result_.broadcasts));
  if (r.ok()) {
    const std::string id = msg_id(n.id, r.sender_seq);
    ++result_.broadcasts;
    accepted_.insert(id);
    n.pending.insert(id);
    trace(n.id, fmt::format("\"event\":\"broadcast\",\"msg\":\"{}\"", id), "broadcast " + id);
  }
  process(n);
  return r.ok();
}

// ---- faults ----

std::vector<SimNode*> Cluster::up_nodes() {
  std::vector<SimNode*> out;
  for (auto& [_, n] : nodes_)
    if (n.up) out.push_back(&n);
  return out;
}

void Cluster::fault_step() {
  std::vector<Fault> enabled(o_.faults.begin(), o_.faults.end());
  if (enabled.empty() || !chance(0.02)) return;
  const Fault f = enabled[rand(0, enabled.size() - 1)];
  auto up = up_nodes();
  if (up.empty()) return;
  SimNode& victim = *up[rand(0, up.size() - 1)];
  switch (f) {
    case Fault::crash:
      if (chance(0.1)) {  // everyone within a moment
        trace("sim", "\"event\":\"crash-all\"", "crash all");
        for (SimNode* n : up) {
          crash_node(*n);
          n->restart_at = now_ + rand(300, 4000);
        }
      } else {
        crash_node(victim);
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
      // A link breaks, losing what is in flight, and reconnects later; sometimes one way only.
      SimNode& other = *up[rand(0, up.size() - 1)];
      if (other.id == victim.id) break;
      network_.break_link(victim.id, other.id, now_ + rand(100, 3000));
      trace("sim", "\"event\":\"loss\"", fmt::format("link {}-{} broken", victim.id, other.id));
      break;
    }
    case Fault::pause:
      if (victim.paused) break;
      if (chance(0.5)) {  // slow rather than frozen: it asks the group to wait for it
        victim.flow_until = now_ + rand(200, 8000);
        victim.member->set_flow_pause(true);
        process(victim);
        trace(victim.id, "\"event\":\"flow-pause\"", "flow control: pause");
        break;
      }
      victim.paused = true;
      victim.unpause_at = now_ + rand(200, 4000);
      trace(victim.id, "\"event\":\"pause\"", "pause");
      break;
    case Fault::join: {
      if (nodes_.size() >= 7) break;
      const NodeId id = fmt::format("n{}", next_node_++);
      // Like an operator's --peers list: every member up now (a node that knows only members
      // that all leave later could never join).
      std::vector<NodeId> seeds;
      for (SimNode* n : up) seeds.push_back(n->id);
      trace(id, "\"event\":\"join\"", "join via " + victim.id);
      add_node(id, seeds);
      break;
    }
    case Fault::leave:
      // One graceful leave at a time, from a settled group: the group shrinks view by view and
      // keeps its majority. (Leaving faster is losing members, which crash covers.)
      if (up.size() <= 2 || !settled_problem().empty()) break;
      {
        // ... and only if the rest keep a majority of the view by weight.
        uint64_t total = 0;
        for (const auto& m : victim.member->view().members)
          total += o_.weights.count(m) ? o_.weights.at(m) : 1;
        const uint64_t gone = o_.weights.count(victim.id) ? o_.weights.at(victim.id) : 1;
        if (2 * (total - gone) <= total) break;
      }
      victim.member->leave();
      process(victim);
      trace(victim.id, "\"event\":\"leave\"", "leave");
      crash_node(victim);
      victim.left = true;
      break;
    case Fault::stall:
      if (victim.stalled_until > now_) break;
      victim.stalled_until = now_ + rand(200, 5000);
      trace(victim.id, "\"event\":\"stall\"", "stall");
      break;
    case Fault::disk:         // members here have no disk of their own: the whole-node simulator's
    case Fault::donor_crash:  // nor snapshots
      break;
  }
}

void Cluster::recoveries() {
  for (auto& [_, n] : nodes_) {
    if (n.up && n.flow_until && n.flow_until <= now_) {
      n.flow_until = 0;
      n.member->set_flow_pause(false);
      process(n);
      trace(n.id, "\"event\":\"flow-resume\"", "flow control: resume");
    }
    if (!n.up && !n.left && n.restart_at && n.restart_at <= now_) {
      n.restart_at = 0;
      start(n);
    }
    if (n.up && n.stalled_until && n.stalled_until <= now_) {
      n.stalled_until = 0;
      trace(n.id, "\"event\":\"unstall\"", "stall ends");
      process(n);
    }
    if (n.up && n.paused && n.unpause_at <= now_) {
      n.paused = false;
      trace(n.id, "\"event\":\"resume\"", "resume");
      while (!n.inbox.empty() && n.up) {
        auto [from, m] = std::move(n.inbox.front());
        n.inbox.pop_front();
        n.member->receive(m, now_);
        process(n);
      }
    }
  }
  if (heal_at_ && heal_at_ <= now_) {
    heal_at_ = 0;
    network_.heal_partition();
    trace("sim", "\"event\":\"heal\"", "partition healed");
  }
}

void Cluster::heal_all() {
  for (auto& [_, n] : nodes_) {
    if (!n.up && !n.left) n.restart_at = now_;
    if (n.paused) n.unpause_at = now_;
    if (n.flow_until) n.flow_until = now_;
    if (n.stalled_until) n.stalled_until = now_;
  }
  network_.heal_links();
  heal_at_ = now_;
  recoveries();
}

void Cluster::run_until(Time t) {
  while (!queue_.empty() && queue_.top().t <= t) {
    Event e = queue_.top();
    queue_.pop();
    now_ = e.t;
    handle(e);
  }
  now_ = t;
}

// Why the live members are not yet one primary view with everything delivered ("" when they are).
std::string Cluster::settled_problem() {
  std::vector<NodeId> live;
  for (auto& [id, n] : nodes_)
    if (n.up) live.push_back(id);
  const uint64_t top = history_.empty() ? 0 : history_.rbegin()->first;
  for (auto& [id, n] : nodes_) {
    if (!n.up) continue;
    const auto& v = n.member->view();
    if (n.member->phase() != gcs::Phase::operational || !v.primary || v.members != live)
      return fmt::format("{} is {} in view {} (primary={}, {} members) with {} live", id,
                         gcs::to_string(n.member->phase()), gcs::to_string(v.id), v.primary,
                         v.members.size(), live.size());
    if (n.durable.needs_transfer) return id + " still waits for its state transfer";
    if (!v.learners.empty())
      return fmt::format("{} is in view {}, whose learners have no vote yet", id,
                         gcs::to_string(v.id));
    if (!n.pending.empty())
      return fmt::format("{} has {} broadcasts undelivered", id, n.pending.size());
    if (n.last_seqno != top) return fmt::format("{} is at seqno {} of {}", id, n.last_seqno, top);
  }
  return "";
}

SimResult Cluster::run() {
  try {
    boot(o_.nodes);
    for (int step = 0; step < o_.steps; ++step) {
      run_until(now_ + kStep);
      recoveries();
      fault_step();
      for (auto& [_, n] : nodes_) {
        if (!n.up || n.paused) continue;
        if (chance(0.03)) broadcast_one(n);
        if (chance(0.001))
          for (int k = 0; k < 20; ++k) broadcast_one(n);
      }
    }
    // Liveness: the faults stop, the network heals, everyone restarts.
    trace("sim", "\"event\":\"heal-all\"", "faults stop");
    heal_all();
    const Time start = now_;
    const std::string problem = settle(o_.liveness_limit);
    result_.settled_after = now_ - start;
    if (!problem.empty()) {
      for (auto& [_, n] : nodes_)
        if (n.up) recent_.push_back("state " + n.member->debug_string());
      throw Violation(fmt::format("liveness: not settled {} ms after the faults stopped: {}",
                                  o_.liveness_limit, problem));
    }
  } catch (const Violation& v) {
    result_.ok = false;
    result_.violation = v.what();
    result_.recent.assign(recent_.begin(), recent_.end());
  }
  return result_;
}

// ---- scripted use ----

void Cluster::boot(int count) {
  const int initial = std::clamp(count, 1, 7);
  std::vector<NodeId> peers;  // every initial node is started with all of them as --peers
  for (int i = 0; i < initial; ++i) peers.push_back(fmt::format("n{}", next_node_ + i));
  for (int i = 0; i < initial; ++i) {
    const NodeId id = fmt::format("n{}", next_node_++);
    add_node(id, peers);
    if (i == 0) {
      nodes_[id].member->bootstrap(fmt::format("history-{}", o_.seed));
      process(nodes_[id]);
    }
  }
}

void Cluster::run_for(Time ms) {
  const Time end = now_ + ms;
  while (now_ < end) {
    run_until(std::min(end, now_ + kStep));
    recoveries();
  }
}

std::string Cluster::settle(Time limit) {
  const Time start = now_;
  std::string problem = settled_problem();
  while (!problem.empty() && now_ - start < limit) {
    run_for(100);
    problem = settled_problem();
  }
  return problem;
}

void Cluster::crash(const NodeId& id) {
  crash_node(nodes_.at(id));
}

void Cluster::restart(const NodeId& id) {
  SimNode& n = nodes_.at(id);
  if (!n.up && !n.left) start(n);
}

void Cluster::pause(const NodeId& id, Time ms) {
  SimNode& n = nodes_.at(id);
  n.paused = true;
  n.unpause_at = now_ + ms;
  trace(id, "\"event\":\"pause\"", "pause");
}

void Cluster::stall(const NodeId& id, Time ms) {
  SimNode& n = nodes_.at(id);
  n.stalled_until = now_ + ms;
  trace(id, "\"event\":\"stall\"", "stall");
}

void Cluster::flow_pause(const NodeId& id, bool pause) {
  SimNode& n = nodes_.at(id);
  if (!n.member) return;
  n.member->set_flow_pause(pause);
  process(n);
}

void Cluster::hold_transfer(const NodeId& id, bool hold) {
  nodes_.at(id).transfer_held = hold;
}

void Cluster::partition(const std::vector<std::vector<NodeId>>& groups) {
  std::string text;
  for (size_t g = 0; g < groups.size(); ++g)
    for (const auto& id : groups[g]) {
      network_.set_side(id, static_cast<int>(g));
      text += fmt::format(" {}:{}", id, g);
    }
  heal_at_ = 0;
  trace("sim", "\"event\":\"partition\"", "partition" + text);
}

void Cluster::heal() {
  network_.heal_partition();
  network_.heal_links();
  trace("sim", "\"event\":\"heal\"", "healed");
}

void Cluster::join(const NodeId& id, std::vector<NodeId> seeds) {
  trace(id, "\"event\":\"join\"", "join");
  add_node(id, std::move(seeds));
}

void Cluster::leave(const NodeId& id) {
  SimNode& n = nodes_.at(id);
  n.member->leave();
  process(n);
  trace(id, "\"event\":\"leave\"", "leave");
  crash_node(n);
  n.left = true;
}

int Cluster::broadcast(const NodeId& id, int count) {
  int accepted = 0;
  for (int i = 0; i < count; ++i) accepted += broadcast_one(nodes_.at(id)) ? 1 : 0;
  return accepted;
}

std::optional<Fault> parse_fault(const std::string& name) {
  for (Fault f : {Fault::crash, Fault::partition, Fault::loss, Fault::pause, Fault::join,
                  Fault::leave, Fault::disk, Fault::donor_crash, Fault::stall})
    if (name == fault_name(f)) return f;
  return std::nullopt;
}

std::optional<std::set<Fault>> parse_faults(const std::string& text, std::string& bad) {
  std::set<Fault> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string name = text.substr(start, comma - start);
    start = comma + 1;
    if (name.empty() || name == "none") continue;
    auto f = parse_fault(name);
    if (!f) {
      bad = name;
      return std::nullopt;
    }
    out.insert(*f);
  }
  return out;
}

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::crash:
      return "crash";
    case Fault::partition:
      return "partition";
    case Fault::loss:
      return "loss";
    case Fault::pause:
      return "pause";
    case Fault::join:
      return "join";
    case Fault::leave:
      return "leave";
    case Fault::disk:
      return "disk";
    case Fault::donor_crash:
      return "donor-crash";
    case Fault::stall:
      return "stall";
  }
  return "?";
}

SimResult run_simulation(const SimOptions& options) {
  return Cluster(options).run();
}

}  // namespace tutti::sim
