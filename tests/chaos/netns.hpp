// The fault-injection suite's network (issue 12): one network namespace per node, each linked by
// a veth pair to a bridge in the host's namespace, which the harness reaches the nodes through.
// Partitions cut links between nodes with blackhole routes inside their namespaces, so clients
// (through the bridge) still reach every node. Everything created here is removed by the
// destructor, also after a failed check.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace tutti::chaos {

// Why this machine cannot run the suite (not root, no `ip`, no namespaces), or empty.
std::string netns_unavailable();
// The `ip` program's path (processes here are spawned without a PATH search).
const std::string& ip_bin();
// The `tc` program's path, or empty.
const std::string& tc_bin();
// Runs a set-up command to its end; throws with the command and its stderr when it fails.
void run_or_throw(const std::vector<std::string>& argv);

class Topology {
 public:
  // REQUIRES: netns_unavailable() is empty. Nodes are numbered 1..nodes.
  Topology(int nodes, uint32_t run);
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  int nodes() const { return nodes_; }
  std::string ns(int node) const;
  std::string ip(int node) const;
  // The command prefix that runs a program inside the node's namespace (it execs, so the pid is
  // the program's).
  std::vector<std::string> exec_in(int node) const { return {ip_bin(), "netns", "exec", ns(node)}; }

  // Nodes of different sides no longer reach each other; a node in no side keeps every link
  // (a bridge between the sides). Replaces any partition before it.
  void partition(const std::vector<std::vector<int>>& sides);
  // Every link whole again: no partition, no slow link.
  void heal();
  bool partitioned() const { return !cut_.empty(); }

  // Delay and loss on one node's link, both ways (its clients' traffic too). With netem: delay
  // (with jitter of half of it) and random loss. Without it, a token bucket (tbf) at rate_kbit
  // whose queue holds delay_ms of traffic: what waits in it is delayed, what overflows it is
  // lost. Replaced by the next call; undone by heal().
  struct LinkFault {
    int delay_ms = 100;
    int loss_percent = 5;  // netem only
    int rate_kbit = 256;   // tbf only
  };
  void slow(int node, const LinkFault& fault);
  // Whether the kernel offers netem, and tbf; slow() needs one of them.
  bool has_netem() const { return netem_; }
  bool has_tbf() const { return tbf_; }

 private:
  void cut(int a, int b);  // a no longer sends to b
  void teardown();
  std::string host_end(int node) const;
  int nodes_;
  std::string prefix_;
  std::string subnet_;  // "10.250.N."
  std::set<std::pair<int, int>> cut_;
  bool netem_ = false;
  bool tbf_ = false;
  std::set<int> slowed_;
  bool bridge_made_ = false;
  std::vector<std::string> namespaces_made_;
};

}  // namespace tutti::chaos
