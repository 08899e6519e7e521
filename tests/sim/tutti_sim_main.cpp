// tutti-sim: whole nodes (group, certification, apply over LMDB) in the deterministic simulator
// over many seeds, with a bank workload and faults of the network, the processes and the disk.
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>

#include "sim/node_sim.hpp"
#include "sim/sim_cli.hpp"

int main(int argc, char** argv) {
  using namespace tutti::sim;
  uint64_t seed = 1;
  int runs = 1, nodes = 5, steps = 2000;
  std::string faults_text, trace_file;
  CLI::App app{
      "tutti-sim: whole tutti nodes (group, certification, apply over a real LMDB store) under "
      "a simulated network, clock and disk, with clients moving money between accounts and "
      "writing blindly; run i uses seed N+i. Exits 1 on the first violated invariant."};
  app.add_option("--seed", seed, "first seed")->required();
  app.add_option("--runs", runs, "how many runs")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--nodes", nodes, "nodes at the start (1-7)")
      ->capture_default_str()
      ->check(CLI::Range(1, 7));
  app.add_option("--steps", steps, "fault phase length in 10 ms steps")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--faults", faults_text,
                 "comma-separated: crash,partition,loss,pause,join,leave,disk,donor-crash "
                 "(default: all but donor-crash, which crashes a node while it serves a "
                 "snapshot; none for none)");
  app.add_option("--trace", trace_file, "write every event as a JSON line (one run only)");
  bool snapshot_heavy = false;
  app.add_flag("--snapshots", snapshot_heavy,
               "joiners catch up mostly by snapshot, in many small chunks (short logs, values "
               "of up to 200 bytes)");
  size_t ready_bound = 0;
  add_ready_bound_option(app, ready_bound);
  CLI11_PARSE(app, argc, argv);

  NodeSimOptions base;
  base.max_ready_deliveries = ready_bound;
  base.nodes = nodes;
  base.steps = steps;
  base.snapshots = snapshot_heavy;
  if (!faults_text.empty()) {
    std::string bad;
    auto faults = parse_faults(faults_text, bad);
    if (!faults || faults->count(Fault::stall)) {
      std::cerr << "tutti-sim: unknown fault '" << (faults ? "stall" : bad)
                << "' (crash, partition, loss, pause, join, leave, disk, donor-crash"
                << (faults ? "; gcs-sim's stall is the disk fault here, on the real node" : "")
                << ")\n";
      return 2;
    }
    base.faults = *faults;
  }
  std::ofstream trace;
  if (!trace_file.empty()) {
    if (runs != 1) {
      std::cerr << "tutti-sim: --trace needs --runs 1\n";
      return 2;
    }
    trace.open(trace_file);
    if (!trace) {
      std::cerr << "tutti-sim: cannot write " << trace_file << "\n";
      return 2;
    }
    base.trace = &trace;
  }
  uint64_t commits = 0, conflicts = 0, view_changes = 0, violations = 0, transferred = 0,
           snapshots = 0, carried = 0, staged_restarts = 0, told_early = 0, lost_after_told = 0;
  for (int i = 0; i < runs; ++i) {
    NodeSimOptions o = base;
    o.seed = seed + i;
    NodeSimResult r = run_node_simulation(o);
    commits += r.commits;
    conflicts += r.conflicts;
    view_changes += r.view_changes;
    transferred += r.transferred;
    snapshots += r.snapshots;
    carried += r.carried;
    staged_restarts += r.staged_restarts;
    told_early += r.told_early;
    lost_after_told += r.lost_after_told;
    std::cout << "run seed=" << o.seed << " nodes=" << o.nodes << " seqnos=" << r.seqnos
              << " commits=" << r.commits << " conflicts=" << r.conflicts << " acked=" << r.acked
              << " view_changes=" << r.view_changes << " transferred=" << r.transferred
              << " snapshots=" << r.snapshots << " carried=" << r.carried
              << " staged_restarts=" << r.staged_restarts << " told_early=" << r.told_early
              << " lost_after_told=" << r.lost_after_told << " settled_ms=" << r.settled_after
              << (r.ok ? " ok" : " VIOLATION") << "\n";
    if (!r.ok) {
      ++violations;
      std::cout << "seed " << o.seed << ": " << r.violation << "\nlast events:\n";
      for (auto& line : r.recent) std::cout << "  " << line << "\n";
      break;
    }
  }
  std::cout << "summary: runs=" << runs << " violations=" << violations << " commits=" << commits
            << " conflicts=" << conflicts << " view_changes=" << view_changes
            << " transferred=" << transferred << " snapshots=" << snapshots
            << " carried=" << carried << " staged_restarts=" << staged_restarts
            << " told_early=" << told_early << " lost_after_told=" << lost_after_told << "\n";
  return violations ? 1 : 0;
}
