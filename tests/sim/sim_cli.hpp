// Command-line options both simulators (gcs-sim, tutti-sim) take alike.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>

#include "gcs/messages.hpp"

namespace tutti::sim {

// --max-ready-deliveries: the runs' histories stay far below the default bound, so without a
// small one no Ready ever holds deliveries back.
inline size_t& add_ready_bound_option(CLI::App& app, size_t& bound) {
  bound = gcs::Limits{}.max_ready_deliveries;
  app.add_option("--max-ready-deliveries", bound,
                 "deliveries a member hands over in one Ready at most (small: the rest wait for "
                 "the next, which the runs' short histories otherwise never show)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  return bound;
}

}  // namespace tutti::sim
