// gcs-sim: runs the gcs protocol in the deterministic simulator over many seeds.
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>

#include "sim/sim_cli.hpp"
#include "sim/simulator.hpp"

int main(int argc, char** argv) {
  using namespace tutti::sim;
  uint64_t seed = 1;
  int runs = 1, nodes = 5, steps = 2000;
  std::string faults_text, trace_file;
  CLI::App app{
      "gcs-sim: the gcs protocol under a simulated network with faults; run i uses "
      "seed N+i. Exits 1 on the first violated invariant."};
  app.add_option("--seed", seed, "first seed")->required();
  app.add_option("--runs", runs, "how many runs")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--nodes", nodes, "members at the start (3-7)")
      ->capture_default_str()
      ->check(CLI::Range(1, 7));
  app.add_option("--steps", steps, "fault phase length in 10 ms steps")->capture_default_str();
  app.add_option("--faults", faults_text,
                 "comma-separated: crash,partition,loss,pause,join,leave,stall (default: all "
                 "but stall, a member whose batches stop reaching its disk while it says it "
                 "lives)");
  app.add_option("--trace", trace_file, "write every event as a JSON line (one run only)");
  size_t ready_bound = 0;
  add_ready_bound_option(app, ready_bound);
  CLI11_PARSE(app, argc, argv);

  SimOptions base;
  base.max_ready_deliveries = ready_bound;
  base.nodes = nodes;
  base.steps = steps;
  if (!faults_text.empty()) {
    std::string bad;
    auto faults = parse_faults(faults_text, bad);
    const bool nodes_only =
        faults && (faults->count(Fault::disk) || faults->count(Fault::donor_crash));
    if (!faults || nodes_only) {
      std::cerr << "gcs-sim: unknown fault '"
                << (!faults                      ? bad
                    : faults->count(Fault::disk) ? "disk"
                                                 : "donor-crash")
                << "'"
                << (faults ? " (members here have no disk or snapshots: tutti-sim simulates them)"
                           : "")
                << "\n";
      return 2;
    }
    base.faults = *faults;
  }
  std::ofstream trace;
  if (!trace_file.empty()) {
    if (runs != 1) {
      std::cerr << "gcs-sim: --trace needs --runs 1\n";
      return 2;
    }
    trace.open(trace_file);
    base.trace = &trace;
  }
  uint64_t delivered = 0, view_changes = 0, violations = 0, crashes_before_persist = 0;
  for (int i = 0; i < runs; ++i) {
    SimOptions o = base;
    o.seed = seed + i;
    SimResult r = run_simulation(o);
    delivered += r.delivered;
    view_changes += r.view_changes;
    crashes_before_persist += r.crashes_before_persist;
    std::cout << "run seed=" << o.seed << " nodes=" << o.nodes << " broadcasts=" << r.broadcasts
              << " delivered=" << r.delivered << " view_changes=" << r.view_changes
              << " settled_ms=" << r.settled_after << (r.ok ? " ok" : " VIOLATION") << "\n";
    if (!r.ok) {
      ++violations;
      std::cout << "seed " << o.seed << ": " << r.violation << "\nlast events:\n";
      for (auto& line : r.recent) std::cout << "  " << line << "\n";
      break;
    }
  }
  std::cout << "summary: runs=" << runs << " violations=" << violations
            << " delivered=" << delivered << " view_changes=" << view_changes
            << " crashes_before_persist=" << crashes_before_persist << "\n";
  return violations ? 1 : 0;
}
