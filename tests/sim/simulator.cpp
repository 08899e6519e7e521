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

struct Violation : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SimNode {
  NodeId id;
  bool up = false;
  bool left = false;
  bool paused = false;
  Time restart_at = 0;
  Time unpause_at = 0;
  gcs::Durable durable;
  std::unique_ptr<gcs::Member> member;
  std::vector<NodeId> seeds;
  std::deque<std::pair<NodeId, Message>> inbox;  // held while paused
  uint64_t last_seqno = 0;                       // the application's state: applied up to here
  std::map<NodeId, uint64_t> fifo;               // last sender_seq applied per sender
  std::set<std::string> pending;                 // accepted broadcasts not yet delivered here
};

struct Link {
  Time last_arrival = 0;
  uint64_t epoch = 0;
  Time broken_until = 0;
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

std::string msg_id(const NodeId& sender, uint64_t seq) {
  return fmt::format("{}:{}", sender, seq);
}

class Sim {
 public:
  explicit Sim(const SimOptions& o) : o_(o), rng_(o.seed) {}
  SimResult run();

 private:
  uint64_t rand(uint64_t lo, uint64_t hi) { return lo + rng_() % (hi - lo + 1); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  void schedule(Event e) {
    e.order = order_++;
    queue_.push(std::move(e));
  }
  void trace(const std::string& node, const std::string& json_body, const std::string& text);
  gcs::Config config() const;

  void add_node(const NodeId& id, std::vector<NodeId> seeds);
  void start(SimNode& n);
  void crash(SimNode& n);
  void process(SimNode& n);
  void send(const NodeId& from, const NodeId& to, Message m);
  void handle(const Event& e);
  void on_delivery(SimNode& n, const gcs::Delivery& d);
  void on_view(SimNode& n, const gcs::ViewEvent& v);
  void do_transfer(SimNode& n);
  void broadcast(SimNode& n);

  void fault_step();
  void recoveries();
  void heal_all();
  std::vector<SimNode*> up_nodes();
  std::string settled_problem();
  void run_until(Time t);

  SimOptions o_;
  std::mt19937_64 rng_;
  Time now_ = 0;
  uint64_t order_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  std::map<NodeId, SimNode> nodes_;
  std::map<std::pair<NodeId, NodeId>, Link> links_;
  std::map<NodeId, int> group_;  // partition: nodes talk only within a group
  Time heal_at_ = 0;
  int next_node_ = 1;

  // checker state
  std::map<uint64_t, HistoryEntry> history_;  // seqno -> message, as first delivered anywhere
  std::map<std::string, uint64_t> seqno_of_;
  std::set<std::string> accepted_;
  struct Primary {
    std::vector<NodeId> members;
    uint64_t base;
  };
  std::map<gcs::ViewKey, Primary> primaries_;
  std::map<gcs::ViewKey, gcs::ViewKey> successor_;
  std::map<gcs::ViewKey, uint64_t> top_in_view_;  // highest seqno delivered in each view
  std::deque<std::string> recent_;
  SimResult result_;
};

gcs::Config Sim::config() const {
  gcs::Config c;
  c.heartbeat_interval = 100;
  c.suspect_timeout = 1000;
  c.install_timeout = 1500;
  c.resend_timeout = 300;
  c.exclude_time = 3000;
  return c;
}

void Sim::trace(const std::string& node, const std::string& json_body, const std::string& text) {
  if (o_.trace)
    *o_.trace << fmt::format("{{\"t\":{},\"node\":\"{}\",{}}}\n", now_, node, json_body);
  recent_.push_back(fmt::format("t={} {} {}", now_, node, text));
  if (recent_.size() > 40) recent_.pop_front();
}

void Sim::add_node(const NodeId& id, std::vector<NodeId> seeds) {
  SimNode& n = nodes_[id];
  n.id = id;
  n.seeds = std::move(seeds);
  group_[id] = 0;
  start(n);
  schedule(Event{Event::tick, now_ + rand(1, kStep), 0, id, "", 0, nullptr});
}

void Sim::start(SimNode& n) {
  n.up = true;
  n.paused = false;
  n.member = std::make_unique<gcs::Member>(n.id, n.durable, config(), n.seeds, now_);
  n.last_seqno = n.durable.delivered;
  n.fifo = n.durable.sender_high;
  trace(n.id, "\"event\":\"restart\"", "start");
  process(n);
}

void Sim::crash(SimNode& n) {
  n.up = false;
  n.member.reset();
  n.inbox.clear();
  n.pending.clear();  // a crashed sender's undelivered messages may be lost: not checked
  for (auto& [key, link] : links_)
    if (key.first == n.id || key.second == n.id) ++link.epoch;  // its connections die
  trace(n.id, "\"event\":\"crash\"", "crash");
}

// Carries out a Ready in order: persist, send, then the application takes the events.
void Sim::process(SimNode& n) {
  while (n.member && n.member->has_ready()) {
    gcs::MemberReady r = n.member->take_ready();
    if (r.truncate_after)
      std::erase_if(n.durable.log, [&](auto& e) { return e.first > *r.truncate_after; });
    for (auto& e : r.append) n.durable.log[e.seqno] = e;
    auto log = std::move(n.durable.log);
    n.durable = n.member->durable();  // the meta part; the log was kept incrementally above
    n.durable.log = std::move(log);
    for (auto& [to, m] : r.send) send(n.id, to, std::move(m));
    for (auto& ev : r.events) {
      if (auto* d = std::get_if<gcs::Delivery>(&ev)) on_delivery(n, *d);
      if (auto* v = std::get_if<gcs::ViewEvent>(&ev)) on_view(n, *v);
    }
  }
}

void Sim::send(const NodeId& from, const NodeId& to, Message m) {
  if (!nodes_.count(to) || group_[from] != group_[to]) return;
  Link& link = links_[{from, to}];
  if (link.broken_until > now_) return;
  const Time delay = chance(0.02) ? rand(20, 120) : rand(1, 15);
  const Time arrival = std::max(now_ + delay, link.last_arrival);
  link.last_arrival = arrival;
  schedule(Event{Event::message, arrival, 0, to, from, link.epoch,
                 std::make_shared<const Message>(std::move(m))});
}

void Sim::handle(const Event& e) {
  SimNode& n = nodes_.at(e.to);
  switch (e.kind) {
    case Event::message: {
      if (links_[{e.from, e.to}].epoch != e.link_epoch || !n.up) return;  // lost with its link
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
      process(n);
      return;
    case Event::transfer:
      do_transfer(n);
      return;
  }
}

// ---- the checker: every delivery and view against every guarantee ----

void Sim::on_delivery(SimNode& n, const gcs::Delivery& d) {
  ++result_.deliveries;
  const std::string id = msg_id(d.origin, d.sender_seq);
  trace(n.id,
        fmt::format(
            "\"event\":\"deliver\",\"view\":\"{}\",\"seqno\":{},\"sender\":\"{}\",\"msg\":\"{}\"",
            gcs::to_string(n.member->view().id), d.seqno, d.origin, id),
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
  uint64_t& top = top_in_view_[n.member->view().id];
  top = std::max(top, d.seqno);
  for (auto& [_, node] : nodes_) node.pending.erase(id);
  result_.delivered = std::max(result_.delivered, d.seqno);
}

void Sim::on_view(SimNode& n, const gcs::ViewEvent& v) {
  ++result_.view_changes;
  std::string members;
  for (const auto& m : v.view.members)
    members += fmt::format("{}\"{}\"", members.empty() ? "" : ",", m);
  trace(
      n.id,
      fmt::format("\"event\":\"view\",\"view\":\"{}\",\"members\":[{}],\"primary\":{},\"base\":{}",
                  gcs::to_string(v.view.id), members, v.view.primary, v.view.base),
      fmt::format("view {} [{}] primary={} base={}", gcs::to_string(v.view.id), members,
                  v.view.primary, v.view.base));
  if (!v.view.primary) return;
  auto [rec, first] = primaries_.try_emplace(v.view.id, Primary{v.view.members, v.view.base});
  if (!first && (rec->second.members != v.view.members || rec->second.base != v.view.base))
    throw Violation(
        fmt::format("primary view {} installed with two contents", gcs::to_string(v.view.id)));
  if (first) {
    // Safe delivery across views: nothing delivered in an earlier view may lie beyond the new
    // view's base (a coordinator paused mid-change may commit its view late: later views count
    // only against later ones).
    for (const auto& [view, top] : top_in_view_)
      if (view < v.view.id && top > v.view.base)
        throw Violation(
            fmt::format("primary view {} starts at seqno {} but seqno {} was "
                        "delivered in view {}: a delivered message is lost",
                        gcs::to_string(v.view.id), v.view.base, top, gcs::to_string(view)));
    if (v.predecessor) {
      auto [succ, fresh] = successor_.try_emplace(*v.predecessor, v.view.id);
      if (!fresh && succ->second != v.view.id)
        throw Violation(fmt::format("two primary views {} and {} continue {}: split brain",
                                    gcs::to_string(succ->second), gcs::to_string(v.view.id),
                                    gcs::to_string(*v.predecessor)));
      auto prev = primaries_.find(*v.predecessor);
      if (prev != primaries_.end()) {
        size_t kept = 0;
        for (auto& m : prev->second.members)
          kept += std::count(v.view.members.begin(), v.view.members.end(), m);
        if (2 * kept <= prev->second.members.size())
          throw Violation(fmt::format("primary view {} holds {} of {} members of {}: no majority",
                                      gcs::to_string(v.view.id), kept, prev->second.members.size(),
                                      gcs::to_string(*v.predecessor)));
      }
    }
  }
  if (v.self_needs_transfer) {
    schedule(Event{Event::transfer, now_ + rand(20, 200), 0, n.id, "", 0, nullptr});
  } else if (n.last_seqno != v.view.base) {
    // Virtual synchrony: members passing into this view have delivered the same history.
    throw Violation(fmt::format("{} enters primary view {} at seqno {} but its base is {}", n.id,
                                gcs::to_string(v.view.id), n.last_seqno, v.view.base));
  }
}

// The application's state transfer, simulated: copy the history up to the view's base.
void Sim::do_transfer(SimNode& n) {
  if (!n.up || !n.durable.needs_transfer || !n.durable.last_primary) return;
  if (n.paused) {
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

void Sim::broadcast(SimNode& n) {
  auto r = n.member->broadcast(fmt::format("payload {} {}", n.id, result_.broadcasts));
  if (r.ok()) {
    const std::string id = msg_id(n.id, r.sender_seq);
    ++result_.broadcasts;
    accepted_.insert(id);
    n.pending.insert(id);
    trace(n.id, fmt::format("\"event\":\"broadcast\",\"msg\":\"{}\"", id), "broadcast " + id);
  }
  process(n);
}

// ---- faults ----

std::vector<SimNode*> Sim::up_nodes() {
  std::vector<SimNode*> out;
  for (auto& [_, n] : nodes_)
    if (n.up) out.push_back(&n);
  return out;
}

void Sim::fault_step() {
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
          crash(*n);
          n->restart_at = now_ + rand(300, 4000);
        }
      } else {
        crash(victim);
        victim.restart_at = now_ + rand(300, 4000);
      }
      break;
    case Fault::partition: {
      const int groups = static_cast<int>(rand(2, 3));
      std::string text;
      for (auto& [id, g] : group_) {
        g = static_cast<int>(rand(0, groups - 1));
        text += fmt::format(" {}:{}", id, g);
      }
      heal_at_ = now_ + rand(500, 5000);
      trace("sim", "\"event\":\"partition\"", "partition" + text);
      break;
    }
    case Fault::loss: {
      // A link breaks, losing what is in flight, and reconnects later; sometimes one way only.
      SimNode& other = *up[rand(0, up.size() - 1)];
      if (other.id == victim.id) break;
      const Time until = now_ + rand(100, 3000);
      for (auto key : {std::pair{victim.id, other.id}, std::pair{other.id, victim.id}}) {
        Link& l = links_[key];
        ++l.epoch;
        l.broken_until = until;
        if (chance(0.5)) break;
      }
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
      trace(id, "\"event\":\"join\"", "join via " + victim.id);
      add_node(id, {victim.id});
      break;
    }
    case Fault::leave:
      // One graceful leave at a time, from a settled group: the group shrinks view by view and
      // keeps its majority. (Leaving faster is losing members, which crash covers.)
      if (up.size() <= 2 || !settled_problem().empty()) break;
      victim.member->leave();
      process(victim);
      trace(victim.id, "\"event\":\"leave\"", "leave");
      crash(victim);
      victim.left = true;
      break;
  }
}

void Sim::recoveries() {
  for (auto& [_, n] : nodes_) {
    if (!n.up && !n.left && n.restart_at && n.restart_at <= now_) {
      n.restart_at = 0;
      start(n);
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
    for (auto& [_, g] : group_) g = 0;
    trace("sim", "\"event\":\"heal\"", "partition healed");
  }
}

void Sim::heal_all() {
  for (auto& [_, n] : nodes_) {
    if (!n.up && !n.left) n.restart_at = now_;
    if (n.paused) n.unpause_at = now_;
  }
  for (auto& [_, l] : links_) l.broken_until = 0;
  heal_at_ = now_;
  recoveries();
}

void Sim::run_until(Time t) {
  while (!queue_.empty() && queue_.top().t <= t) {
    Event e = queue_.top();
    queue_.pop();
    now_ = e.t;
    handle(e);
  }
  now_ = t;
}

// Why the live members are not yet one primary view with everything delivered ("" when they are).
std::string Sim::settled_problem() {
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
    if (!n.pending.empty())
      return fmt::format("{} has {} broadcasts undelivered", id, n.pending.size());
    if (n.last_seqno != top) return fmt::format("{} is at seqno {} of {}", id, n.last_seqno, top);
  }
  return "";
}

SimResult Sim::run() {
  try {
    const int initial = std::clamp(o_.nodes, 1, 7);
    for (int i = 0; i < initial; ++i) {
      const NodeId id = fmt::format("n{}", next_node_++);
      add_node(id, {"n1"});
      if (i == 0) {
        nodes_[id].member->bootstrap(fmt::format("history-{}", o_.seed));
        process(nodes_[id]);
      }
    }
    for (int step = 0; step < o_.steps; ++step) {
      run_until(now_ + kStep);
      recoveries();
      fault_step();
      for (auto& [_, n] : nodes_) {
        if (!n.up || n.paused) continue;
        if (chance(0.03)) broadcast(n);
        if (chance(0.001))
          for (int k = 0; k < 20; ++k) broadcast(n);
      }
    }
    // Liveness: the faults stop, the network heals, everyone restarts.
    trace("sim", "\"event\":\"heal-all\"", "faults stop");
    heal_all();
    const Time start = now_;
    std::string problem = settled_problem();
    while (!problem.empty() && now_ - start < o_.liveness_limit) {
      run_until(now_ + 100);
      recoveries();
      problem = settled_problem();
    }
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

}  // namespace

std::optional<Fault> parse_fault(const std::string& name) {
  for (Fault f :
       {Fault::crash, Fault::partition, Fault::loss, Fault::pause, Fault::join, Fault::leave})
    if (name == fault_name(f)) return f;
  return std::nullopt;
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
  }
  return "?";
}

SimResult run_simulation(const SimOptions& options) {
  return Sim(options).run();
}

}  // namespace tutti::sim
