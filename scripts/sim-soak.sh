#!/usr/bin/env bash
# Long simulator runs of the gcs protocol: RUNS seeds for each group size 3..7, all faults.
# Bounded: each gcs-sim call stops after its runs, and the whole script after MAX_SECONDS.
# Usage: scripts/sim-soak.sh [RUNS per size, default 2000] [FIRST_SEED, default: from the clock]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2000}
seed=${2:-$(date +%s)}
max_seconds=${MAX_SECONDS:-3600}
./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target gcs-sim >/dev/null
for nodes in 3 4 5 6 7; do
  echo "== $runs runs with $nodes members from seed $seed"
  timeout "$max_seconds" ./build/tests/gcs-sim --seed "$seed" --runs "$runs" --nodes "$nodes" \
    | grep -v '^run seed=.* ok$' || { echo "sim-soak: FAILED (the seed is printed above)"; exit 1; }
  seed=$((seed + runs))
done
echo "sim-soak: all runs passed"
