// tutti-bench's load (tools/tutti_bench.cpp): closed-loop clients on one asio thread, each with
// one connection and `pipeline` operations in flight, spread evenly over the nodes. A client whose
// node fails, or refuses (not primary, busy, unavailable), moves to the next node and sends again
// what was in flight, commits with the same transaction id: the cluster answers a retry from its
// record, so a commit is counted once, and one that no node decides is counted unknown.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "bench/histogram.hpp"
#include "bench/workload.hpp"
#include "core/address.hpp"

namespace tutti::bench {

struct DriverConfig {
  std::vector<core::HostPort> nodes;
  int clients = 1;
  int pipeline = 1;
  std::chrono::milliseconds warmup{0}, duration{10000};
  WorkloadConfig workload;
  std::string run_id;    // makes transaction ids unique across runs
  bool progress = true;  // a line on stderr every second
};

struct Totals {
  uint64_t ops = 0;          // operations completed in the measured window (for transactions:
                             // committed ones, retries after conflicts included in their latency)
  uint64_t committed = 0;    // commits decided committed in the window
  uint64_t conflicts = 0;    // commit attempts refused by certification in the window
  uint64_t errors = 0;       // operations given up with an error
  uint64_t unknown = 0;      // commits whose outcome no node told
  uint64_t failovers = 0;    // times a client moved to another node
  Histogram latency;         // of the window's operations, microseconds
  double longest_gap_s = 0;  // the longest time in the window without a completed operation
  double seconds = 0;        // the measured window
  std::string first_error;
};

// Runs the load for warmup + duration, then lets what is in flight finish (at most 10 s).
Totals run_load(const DriverConfig& config);

}  // namespace tutti::bench
