// A deterministic simulator of many gcs members (gcs/member.hpp) over a simulated network, with
// faults, checking the protocol's guarantees after every event. One seed, one run, step for step.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gcs/member.hpp"

namespace tutti::sim {

enum class Fault { crash, partition, loss, pause, join, leave };
std::optional<Fault> parse_fault(const std::string& name);
const char* fault_name(Fault f);

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 5;     // members at the start (3 to 7)
  int steps = 2000;  // fault phase length, in 10 ms steps of virtual time
  std::set<Fault> faults = {Fault::crash, Fault::partition, Fault::loss,
                            Fault::pause, Fault::join,      Fault::leave};
  gcs::Time liveness_limit = 60000;  // virtual ms allowed to settle after the faults stop
  std::ostream* trace = nullptr;     // JSON lines of every event, when set
};

struct SimResult {
  bool ok = true;
  std::string violation;            // the first broken invariant
  std::vector<std::string> recent;  // the last events before it
  uint64_t delivered = 0;           // seqnos in the history
  uint64_t deliveries = 0;          // delivery events on all nodes
  uint64_t view_changes = 0;
  uint64_t broadcasts = 0;
  gcs::Time settled_after = 0;  // virtual ms the liveness phase took
};

SimResult run_simulation(const SimOptions& options);

}  // namespace tutti::sim
