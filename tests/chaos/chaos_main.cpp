// tutti-chaos: see chaos.hpp. Prints the seed, every fault as it is injected, the operations'
// outcomes, the faults by kind and each check's verdict. Exit 0: every check passed; 1: a check
// failed (the node logs and the history are kept, the folder is printed); 2: the harness could
// not run; 77: this machine cannot run it (not root, no network namespaces), said on stdout.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include "chaos/chaos.hpp"
#include "core/client.hpp"

using namespace tutti;
using namespace tutti::chaos;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_interrupted{false};

struct Options {
  int nodes = 3;
  double seconds = 60;
  uint64_t seed = 0;
  std::vector<std::string> faults;
  bool lose_one_ack = false;
  bool keep = false;
};

const std::vector<std::string> kFaults = {"kill",      "kill-all", "freeze", "isolate",
                                          "split",     "bridge",   "leave",  "join",
                                          "disk-full", "donor",    "slow"};

// Sleeps until `until` or an interrupt; false when interrupted.
bool sleep_until(Clock::time_point until) {
  while (Clock::now() < until) {
    if (g_interrupted) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(50ms, until - Clock::now()));
  }
  return !g_interrupted;
}

class Nemesis {
 public:
  Nemesis(Nodes& nodes, Topology& net, Disks& disks, const Options& o)
      : nodes_(nodes), net_(net), disks_(disks), o_(o), rng_(o.seed), start_(Clock::now()) {}

  // Injects faults until `end`, each undone before the next; every draw comes from the seed, so
  // the same seed gives the same schedule.
  void run(Clock::time_point end) {
    while (Clock::now() < end && !g_interrupted) {
      if (!sleep_until(Clock::now() + ms(1000, 3000))) return;
      std::string kind = o_.faults[rng_() % o_.faults.size()];
      // One spare node joins once; after that the draw goes on among the other faults.
      for (int i = 0; kind == "join" && nodes_.active() == net_.nodes() && i < 100; ++i)
        kind = o_.faults[rng_() % o_.faults.size()];
      if (kind == "join" && nodes_.active() == net_.nodes()) continue;  // join alone was asked
      try {
        inject(kind);
      } catch (const std::exception& e) {  // a node that did not come back: a finding, not an end
        say(fmt::format("{}: {}", kind, e.what()));
        problems.push_back(fmt::format("{}: {}", kind, e.what()));
      }
      ++by_kind[kind];
    }
  }
  std::map<std::string, int> by_kind;
  std::vector<std::string> problems;  // what the nodes did wrong under a fault (or after it)

 private:
  std::chrono::milliseconds ms(int lo, int hi) {
    return std::chrono::milliseconds(lo + static_cast<int>(rng_() % (hi - lo + 1)));
  }
  int node() { return 1 + static_cast<int>(rng_() % nodes_.active()); }
  void say(const std::string& what) {
    const double t = std::chrono::duration<double>(Clock::now() - start_).count();
    std::cout << fmt::format("[{:7.2f}s] {}", t, what) << std::endl;
  }
  void inject(const std::string& kind);
  void partition(const std::string& kind);
  void donor();
  bool whole();
  std::optional<int> donor_of(int joiner);

  Nodes& nodes_;
  Topology& net_;
  Disks& disks_;
  const Options& o_;
  std::mt19937_64 rng_;
  Clock::time_point start_;
};

void Nemesis::inject(const std::string& kind) {
  if (kind == "kill") {
    const int n = node();
    const auto down = ms(500, 4000);
    say(fmt::format("kill -9 n{}, back in {} ms", n, down.count()));
    nodes_.kill9(n);
    sleep_until(Clock::now() + down);
    nodes_.restart(n);
  } else if (kind == "kill-all") {
    const auto down = ms(500, 3000);
    say(fmt::format("kill -9 of every node within a second, back in {} ms", down.count()));
    for (int n = 1; n <= nodes_.active(); ++n) {
      nodes_.kill9(n);
      std::this_thread::sleep_for(ms(0, 300));
    }
    sleep_until(Clock::now() + down);
    for (int n = 1; n <= nodes_.active(); ++n) nodes_.restart(n);
  } else if (kind == "leave") {
    const int n = node();
    const auto away = ms(500, 4000);
    say(fmt::format("n{} leaves (SIGTERM), back in {} ms", n, away.count()));
    if (!nodes_.leave(n))
      problems.push_back(fmt::format("n{} did not exit within 20 s of SIGTERM", n));
    sleep_until(Clock::now() + away);
    nodes_.restart(n);
  } else if (kind == "join") {
    say(fmt::format("n{} joins, empty, while the load goes on", nodes_.active() + 1));
    nodes_.join();
  } else if (kind == "disk-full") {
    const int n = node();
    const auto length = ms(2000, 5000);
    const uint64_t taken = disks_.fill(n);
    say(fmt::format("n{}'s disk full ({} MB taken), freed in {} ms", n, taken >> 20,
                    length.count()));
    sleep_until(Clock::now() + length);
    disks_.unfill(n);
  } else if (kind == "donor") {
    donor();
  } else if (kind == "slow") {
    const int n = node();
    const auto length = ms(2000, 6000);
    Topology::LinkFault f;
    f.delay_ms = static_cast<int>(ms(20, 300).count());
    f.loss_percent = static_cast<int>(rng_() % 21);
    f.rate_kbit = 64 << (rng_() % 4);  // 64-512 kbit/s: below what the load sends
    say(net_.has_netem()
            ? fmt::format("n{}'s link delays {} ms (+/- {}) and loses {}%, both ways, for {} ms", n,
                          f.delay_ms, f.delay_ms / 2, f.loss_percent, length.count())
            : fmt::format("n{}'s link slowed to {} kbit/s, both ways, its queue holding {} ms "
                          "(delayed in it, dropped past it), for {} ms",
                          n, f.rate_kbit, f.delay_ms, length.count()));
    net_.slow(n, f);
    sleep_until(Clock::now() + length);
    net_.heal();
  } else if (kind == "freeze") {
    const int n = node();
    const auto frozen = ms(1500, 4000);  // past the failure timeout (1 s)
    say(fmt::format("SIGSTOP n{} for {} ms", n, frozen.count()));
    nodes_.stop(n);
    sleep_until(Clock::now() + frozen);
    nodes_.cont(n);
  } else {
    partition(kind);
  }
}

// A node loses its data and rejoins empty, by state transfer; its donor is killed or cut off
// as soon as the joiner names it.
void Nemesis::donor() {
  // A node that lost its data counts as lost until it holds the state again and votes: losing a
  // second one meanwhile could take a majority of the voters, which no system survives.
  if (!whole()) {
    say("donor: the cluster is not whole (one primary view of every node, all SYNCED) within "
        "30 s: no node loses its data now");
    ++by_kind["donor: skipped, cluster not whole"];
    return;
  }
  const int n = node();
  nodes_.kill9(n);
  disks_.lose(n);
  say(fmt::format("n{} lost its data: it rejoins empty, by state transfer", n));
  nodes_.restart(n);
  const auto d = donor_of(n);
  if (!d) {
    say(fmt::format("n{}'s transfer was over before its donor could be cut", n));
    ++by_kind["donor: transfer over too soon"];
    return;
  }
  if (rng_() % 2) {
    const auto down = ms(500, 3000);
    say(fmt::format("kill -9 n{}, n{}'s donor, mid-transfer; back in {} ms", *d, n, down.count()));
    nodes_.kill9(*d);
    sleep_until(Clock::now() + down);
    nodes_.restart(*d);
  } else {
    std::vector<int> rest;
    for (int i = 1; i <= nodes_.active(); ++i)
      if (i != *d) rest.push_back(i);
    const auto length = ms(1500, 4000);
    say(fmt::format("n{}, n{}'s donor, cut off mid-transfer; healed in {} ms", *d, n,
                    length.count()));
    net_.partition({{*d}, rest});
    sleep_until(Clock::now() + length);
    net_.heal();
  }
}

bool Nemesis::whole() {
  const auto until = Clock::now() + 30s;
  while (Clock::now() < until && !g_interrupted) {
    bool all = true;
    for (int i = 1; i <= nodes_.active() && all; ++i) {
      auto s = nodes_.status(i);
      all = s && s->primary && s->state == "SYNCED" &&
            s->cluster_size == static_cast<uint32_t>(nodes_.active());
    }
    if (all) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

// The donor a joining node names in its status, once it does; nothing once it is SYNCED.
std::optional<int> Nemesis::donor_of(int joiner) {
  const auto until = Clock::now() + 20s;
  while (Clock::now() < until && !g_interrupted) {
    auto s = nodes_.status(joiner);
    if (s && s->transfer.role == "joiner" && s->transfer.peer.size() > 1 &&
        s->transfer.peer[0] == 'n')
      return std::stoi(s->transfer.peer.substr(1));
    if (s && s->state == "SYNCED") return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
  return std::nullopt;
}

void Nemesis::partition(const std::string& kind) {
  std::vector<int> order;
  for (int n = 1; n <= nodes_.active(); ++n) order.push_back(n);
  std::shuffle(order.begin(), order.end(), rng_);
  std::vector<std::vector<int>> sides;
  std::string text;
  if (kind == "isolate") {
    sides = {{order[0]}, {order.begin() + 1, order.end()}};
    text = fmt::format("n{} cut off from the others", order[0]);
  } else if (kind == "split") {
    const size_t minority = (order.size() - 1) / 2;
    sides = {{order.begin(), order.begin() + minority}, {order.begin() + minority, order.end()}};
    text = fmt::format("split into {} and {} nodes", minority, order.size() - minority);
  } else {  // bridge: order[0] sees both sides, which do not see each other
    const size_t half = 1 + (order.size() - 1) / 2;
    sides = {{order.begin() + 1, order.begin() + half}, {order.begin() + half, order.end()}};
    text = fmt::format("n{} bridges two sides that cannot see each other", order[0]);
  }
  const auto length = ms(2000, 6000);
  say(fmt::format("partition: {}, healed in {} ms", text, length.count()));
  net_.partition(sides);
  sleep_until(Clock::now() + length);
  net_.heal();
}

}  // namespace

namespace {

struct Verdict {
  std::string name;
  bool ok = false;
  std::string detail;
};

// Heals everything and waits for one primary view of every node, all SYNCED, with the same last
// committed seqno and content hash (the workloads have stopped, so they must come to agree).
Verdict converge(Nodes& nodes, Topology& net, int count) {
  net.heal();
  for (int n = 1; n <= count; ++n) nodes.cont(n);
  for (int n = 1; n <= count; ++n) {
    try {
      nodes.restart(n);
    } catch (const std::exception& e) {
      return {"converged: one primary view of all nodes, same seqno and content hash", false,
              e.what()};
    }
  }
  std::string last;
  const auto deadline = Clock::now() + 120s;
  while (Clock::now() < deadline && !g_interrupted) {
    std::vector<core::StatusReply> st;
    for (int n = 1; n <= count; ++n)
      if (auto s = nodes.status(n)) st.push_back(*s);
    bool same = st.size() == static_cast<size_t>(count);
    last.clear();
    for (const auto& s : st) {
      last += fmt::format(" {}:{}/{}/size {}/seqno {}/hash {}", s.name, s.state,
                          s.primary ? "primary" : "non-primary", s.cluster_size, s.last_committed,
                          s.content_hash.substr(0, 8));
      same = same && s.primary && s.state == "SYNCED" &&
             s.cluster_size == static_cast<uint32_t>(count) &&
             s.last_committed == st[0].last_committed && s.content_hash == st[0].content_hash;
    }
    if (same)
      return {"converged: one primary view of all nodes, same seqno and content hash", true,
              fmt::format("seqno {}, hash {}", st[0].last_committed, st[0].content_hash)};
    std::this_thread::sleep_for(250ms);
  }
  return {"converged: one primary view of all nodes, same seqno and content hash", false,
          "not within 120 s:" + last};
}

std::optional<core::ScanReply> scan_local(const Nodes& nodes, int n, const std::string& prefix) {
  auto r =
      nodes.call(n, core::Request{0, core::ScanRequest{prefix, 0, core::Consistency::local}}, 10s);
  if (auto* s = r ? std::get_if<core::ScanReply>(&r->body) : nullptr) return *s;
  return std::nullopt;
}

// Every acknowledged insert is on every node; nothing is there that no client wrote.
Verdict check_inserts(const Nodes& nodes, int count, int workers, History& h) {
  Verdict v{"acknowledged inserts: on every node, and nothing no client wrote", true, ""};
  const size_t before = h.violations.size();
  for (int n = 1; n <= count; ++n) {
    // One scan per worker and leading digit: each stays under the node's cap on a scan.
    std::vector<core::KeyValue> entries;
    bool whole = true;
    for (int w = 0; w < workers && whole; ++w)
      for (char d = '0'; d <= '9' && whole; ++d) {
        auto scan = scan_local(nodes, n, fmt::format("ins/{}/{}", w, d));
        whole = scan && !scan->truncated;
        if (whole) entries.insert(entries.end(), scan->entries.begin(), scan->entries.end());
      }
    if (!whole) {
      v.ok = false;
      v.detail += fmt::format(" n{}: could not read every insert;", n);
      continue;
    }
    std::set<std::string> present;
    for (const auto& kv : entries) {
      present.insert(kv.key);
      if (h.refused.count(kv.key))
        h.violation(fmt::format("inserts: n{} holds {}, whose commit was refused", n, kv.key));
      else if (!h.acked.count(kv.key) && !h.unknown.count(kv.key))
        h.violation(fmt::format("inserts: n{} holds {}, which no client wrote", n, kv.key));
    }
    size_t lost = 0;
    for (const auto& k : h.acked)
      if (!present.count(k) && lost++ < 5)
        h.violation(fmt::format("inserts: n{} lacks acknowledged {}", n, k));
    if (lost) v.ok = false;
    v.detail += fmt::format(" n{}: {} present, {} acknowledged missing;", n, present.size(), lost);
  }
  v.ok = v.ok && h.violations.size() == before;
  return v;
}

Verdict check_bank(const Nodes& nodes, int count, const WorkloadConfig& cfg, History& h) {
  const size_t before = h.violations.size();
  for (int n = 1; n <= count; ++n) {
    if (auto scan = scan_local(nodes, n, "acct/")) {
      check_accounts(*scan, cfg, fmt::format("n{} at the end", n), h);
    } else {
      h.violation(fmt::format("bank: n{} could not be read at the end", n));
    }
  }
  return {"bank: every snapshot read sums to the constant, no balance negative",
          h.violations.size() == before, ""};
}

// The lists every node holds at the end, epoch by epoch (each scan stays small); nothing when
// the node could not be read whole.
std::optional<std::map<std::string, std::vector<Element>>> end_lists(const Nodes& nodes, int n,
                                                                     const WorkloadConfig& cfg,
                                                                     History& h) {
  std::map<std::string, std::vector<Element>> out;
  const uint64_t last = cfg.epoch(Clock::now(), cfg.list_epoch);
  for (uint64_t e = 0; e <= last; ++e) {
    auto scan = scan_local(nodes, n, WorkloadConfig::list_prefix(e));
    if (!scan || scan->truncated) return std::nullopt;
    for (const auto& kv : scan->entries) {
      if (auto list = parse_list(kv.value)) {
        out[kv.key] = std::move(*list);
      } else {
        h.violation(
            fmt::format("list-append: n{} holds {} = '{}' at the end, which no client "
                        "wrote",
                        n, kv.key, kv.value.substr(0, 40)));
      }
    }
  }
  return out;
}

Verdict check_lists(const Nodes& nodes, int count, const WorkloadConfig& cfg, History& h) {
  Verdict v{
      "list-append: serializable (no lost update, aborted or intermediate read, or "
      "dependency cycle)",
      false, ""};
  // Every node holds the same lists when converged (the same content hash): read the first that
  // answers.
  for (int n = 1; n <= count && v.detail.empty(); ++n) {
    const size_t before = h.violations.size();
    auto end = end_lists(nodes, n, cfg, h);
    if (!end) continue;
    for (auto& what : check_list_append(h.list_txns, *end)) h.violation(std::move(what));
    size_t elements = 0;
    for (const auto& [key, list] : *end) elements += list.size();
    v.ok = h.violations.size() == before;
    v.detail =
        fmt::format(" {} transactions and scans, {} keys holding {} elements at the end (n{})",
                    h.list_txns.size(), end->size(), elements, n);
  }
  if (v.detail.empty()) v.detail = " no node could be read whole at the end";
  return v;
}

Verdict check_register_history(History& h) {
  const RegisterCheck c = check_registers(h.register_ops);
  for (const auto& what : c.violations) h.violation(what);
  std::string detail = fmt::format(" {} operations on {} keys", c.ops, c.keys);
  if (!c.undecided.empty())
    detail += fmt::format("; {} keys too big to decide, so not checked: {}", c.undecided.size(),
                          fmt::join(c.undecided, " "));
  return {"registers: every key's history is linearizable",
          c.violations.empty() && c.undecided.empty(), detail};
}

void keep_history(const std::filesystem::path& dir, const History& h, uint64_t seed) {
  std::ofstream out(dir / "history.txt");
  out << "seed " << seed << "\n";
  for (const auto& v : h.violations) out << "violation: " << v << "\n";
  for (const auto& k : h.acked) out << "acked " << k << "\n";
  for (const auto& k : h.unknown) out << "unknown " << k << "\n";
  for (const auto& k : h.refused) out << "refused " << k << "\n";
  const char* outcomes[] = {"ok", "failed", "unknown"};
  for (const auto& t : h.list_txns) {
    out << "list-txn " << t.id << " " << outcomes[static_cast<int>(t.outcome)]
        << (t.scan ? " scan" : "") << (t.conflict ? " conflict" : "");
    for (const auto& r : t.reads)
      out << fmt::format(" read {}=[{}]", r.key, fmt::join(r.list, " "));
    for (const auto& a : t.appends)
      out << fmt::format(" append {}+[{}]", a.key, fmt::join(a.elements, " "));
    out << "\n";
  }
  const char* kinds[] = {"read", "write", "cas"};
  for (const auto& op : h.register_ops)
    out << fmt::format("register {} {} value {} expected {} {} {:.6f} {:.6f}\n", op.key,
                       kinds[static_cast<int>(op.kind)], op.value, op.expected,
                       outcomes[static_cast<int>(op.outcome)], op.invoked, op.returned);
}

int report(const Options& o, const std::map<std::string, int>& faults, const History& h,
           const std::vector<Verdict>& verdicts, const std::filesystem::path& dir) {
  auto line = [](const char* what, const Counts& c) {
    std::cout << fmt::format("{:<10} ok {}, failed {}, unknown {}{}", what, c.ok, c.failed,
                             c.unknown,
                             c.conflicts ? fmt::format(", conflicts {}", c.conflicts) : "")
              << "\n";
  };
  line("inserts", h.inserts);
  line("transfers", h.transfers);
  line("reads", h.reads);
  line("appends", h.appends);
  line("registers", h.registers);
  std::string by_kind;
  for (const auto& [k, n] : faults) by_kind += fmt::format(" {} {},", k, n);
  std::cout << "faults:" << (by_kind.empty() ? " none" : by_kind) << "\n";
  bool ok = true;
  for (const auto& v : verdicts) {
    std::cout << (v.ok ? "PASS " : "FAIL ") << v.name << (v.detail.empty() ? "" : ":") << v.detail
              << "\n";
    ok = ok && v.ok;
  }
  for (const auto& v : h.violations) std::cout << "  " << v << "\n";
  // Progress is part of the verdict: a run that committed nothing checked nothing.
  if (h.inserts.ok == 0 || h.transfers.ok == 0 || h.appends.ok == 0 || h.registers.ok == 0) {
    std::cout << "FAIL the workloads committed nothing\n";
    ok = false;
  }
  if (ok) {
    std::cout << "chaos: all checks passed (seed " << o.seed << ")" << std::endl;
    return 0;
  }
  if (o.lose_one_ack) {  // the failure asked for: nothing worth keeping
    std::cout << "chaos: FAILED with seed " << o.seed << ", as --lose-one-ack asked" << std::endl;
    return 1;
  }
  keep_history(dir, h, o.seed);
  std::cout << "chaos: FAILED with seed " << o.seed << "; node logs and history kept in "
            << dir.string() << std::endl;
  return 1;
}

// REQUIRES: dir exists. Everything it starts, mounts and links is gone when it returns.
int run(const Options& o, const std::filesystem::path& dir) {
  const auto run_id = static_cast<uint32_t>(::getpid() ^ (o.seed << 8));
  const bool spare = std::find(o.faults.begin(), o.faults.end(), "join") != o.faults.end();
  Topology net(o.nodes + (spare ? 1 : 0), run_id);
  Options opts = o;
  if (net.has_netem()) {
    std::cout << "slow links: netem (delay, jitter and random loss)" << std::endl;
  } else if (net.has_tbf()) {
    std::cout << "slow links: this kernel lacks netem; a token bucket (tbf) at a low rate delays "
                 "what its queue holds and drops what overflows it"
              << std::endl;
  } else if (std::erase(opts.faults, "slow")) {
    std::cout << "slow: this kernel has neither netem nor tbf; that fault is skipped" << std::endl;
  }
  // A node's disk fills up only where loop mounts can be made; elsewhere that fault is left out.
  const std::string no_loop = loop_mounts_unavailable();
  if (!no_loop.empty() && std::erase(opts.faults, "disk-full"))
    std::cout << "disk-full: " << no_loop << "; that fault is skipped" << std::endl;
  if (opts.faults.empty()) throw std::runtime_error("no fault left to inject");
  Disks disks(dir, net.nodes(), no_loop.empty() ? 1024 : 0);  // outlives the nodes
  Nodes nodes(net, disks, dir, TUTTID_BIN, o.nodes);
  nodes.start_all();
  WorkloadConfig cfg;
  cfg.run = fmt::format("chaos-{}-{}", o.seed, ::getpid());
  create_accounts(nodes, cfg);
  History h;
  std::atomic<bool> stop{false};
  std::thread load([&] { run_workloads(nodes, cfg, h, stop); });
  struct StopLoad {  // also when something below throws: a joinable thread would terminate
    std::atomic<bool>& stop;
    std::thread& load;
    ~StopLoad() {
      stop = true;
      if (load.joinable()) load.join();
    }
  } stop_load{stop, load};
  Nemesis nemesis(nodes, net, disks, opts);
  nemesis.run(Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.seconds * 1000)));
  stop = true;
  load.join();
  if (g_interrupted) {
    std::cout << "chaos: interrupted; everything it started is stopped and removed" << std::endl;
    return 2;
  }
  std::vector<Verdict> verdicts;
  const int count = nodes.active();
  verdicts.push_back(converge(nodes, net, count));
  verdicts.push_back(
      {"every node left when told to and came back when started", nemesis.problems.empty(),
       nemesis.problems.empty() ? "" : fmt::format(" {}", fmt::join(nemesis.problems, "; "))});
  // The workloads' threads have ended: the history is this thread's alone from here on.
  if (o.lose_one_ack) {
    h.acked.insert("ins/lost/0");
    std::cout << "chaos: --lose-one-ack: the history says ins/lost/0 was acknowledged" << std::endl;
  }
  verdicts.push_back(check_inserts(nodes, count, cfg.insert_workers, h));
  verdicts.push_back(check_bank(nodes, count, cfg, h));
  verdicts.push_back(check_lists(nodes, count, cfg, h));
  verdicts.push_back(check_register_history(h));
  return report(o, nemesis.by_kind, h, verdicts, dir);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "tutti-chaos: real tuttid processes in network namespaces, under inserts, bank "
      "transfers, list-append transactions and register operations, while a seeded nemesis "
      "kills, freezes, partitions and slows them, fills or empties their disks; then checks that "
      "nothing acknowledged was lost, transactions were serializable, registers linearizable and "
      "every node agrees. Needs root (ip netns). Exit 0 pass, 1 a check failed, 2 could not run, "
      "77 skipped on this machine."};
  double minutes = 0;
  app.add_option("--seconds", o.seconds, "how long the nemesis runs (default 60)")
      ->check(CLI::Range(1.0, 86400.0));
  app.add_option("--minutes", minutes, "the same in minutes, for soaks")
      ->check(CLI::Range(0.05, 1440.0));
  app.add_option("--nodes", o.nodes, "nodes at the start (3-7); the fault join adds one")
      ->check(CLI::Range(3, 7));
  app.add_option("--seed", o.seed, "the schedule's seed (default: from the clock; printed)");
  app.add_option("--faults", o.faults,
                 "comma-separated: kill,kill-all,freeze,isolate,split,bridge,leave,join,disk-full,"
                 "donor,slow (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember(kFaults));
  app.add_flag("--lose-one-ack", o.lose_one_ack,
               "check the checker: add to the history an acknowledged insert that no node has; "
               "the run must then fail");
  app.add_flag("--keep", o.keep, "keep the node logs also when every check passes");
  CLI11_PARSE(app, argc, argv);
  if (minutes > 0) o.seconds = minutes * 60;
  if (o.faults.empty()) o.faults = kFaults;
  if (o.seed == 0)
    o.seed = static_cast<uint64_t>(Clock::now().time_since_epoch().count()) % 1000000000 + 1;
  std::cout << "chaos: seed " << o.seed << ", " << o.nodes << " nodes, " << o.seconds
            << " s of faults" << std::endl;
  if (const std::string why = netns_unavailable(); !why.empty()) {
    std::cout << "TUTTI-TEST-SKIPPED: chaos needs network namespaces: " << why << std::endl;
    return 77;
  }
  std::signal(SIGINT, [](int) { g_interrupted = true; });
  std::signal(SIGTERM, [](int) { g_interrupted = true; });
  char tmpl[] = "/tmp/tutti-chaos.XXXXXX";
  if (!::mkdtemp(tmpl)) {
    std::cout << "chaos: could not make a folder in /tmp" << std::endl;
    return 2;
  }
  const std::filesystem::path dir = tmpl;
  int rc = 2;
  bool keep = false;
  try {
    rc = run(o, dir);
    keep = o.keep || (rc == 1 && !o.lose_one_ack);
    if (o.keep) std::cout << "chaos: node logs kept in " << dir.string() << std::endl;
  } catch (const std::exception& e) {
    std::cout << "chaos: could not run: " << e.what() << std::endl;
    keep = true;
  }
  // The nodes are stopped and their disks unmounted by now: what a failed run left is kept.
  if (!keep || std::filesystem::is_empty(dir)) {
    std::filesystem::remove_all(dir);
  } else if (rc == 2) {
    std::cout << "chaos: node logs kept in " << dir.string() << std::endl;
  }
  return g_interrupted ? 2 : rc;
}
