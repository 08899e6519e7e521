#!/usr/bin/env bash
# Long simulator runs, all faults: gcs-sim (the group protocol alone) and tutti-sim (whole nodes:
# group, certification and LMDB stores), RUNS seeds of each for each group size 3..7; then
# gcs-sim with stalled members and tutti-sim with joiners by snapshot and donors crashing
# mid-snapshot, on 3, 5 and 7 nodes.
# Bounded: each simulator call stops after its runs, or after MAX_SECONDS (default 3600).
# Usage: scripts/sim-soak.sh [RUNS per size and simulator, default 2000] [FIRST_SEED, default: from the clock]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2000}
seed=${2:-$(date +%s)}
max_seconds=${MAX_SECONDS:-3600}
./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target gcs-sim tutti-sim >/dev/null
for sim in gcs-sim tutti-sim; do
  for nodes in 3 4 5 6 7; do
    echo "== $sim: $runs runs with $nodes nodes from seed $seed"
    timeout "$max_seconds" "./build/tests/$sim" --seed "$seed" --runs "$runs" --nodes "$nodes" \
      | grep -v '^run seed=.* ok$' || { echo "sim-soak: $sim FAILED (the seed is printed above)"; exit 1; }
    seed=$((seed + runs))
  done
done
# Stalled members: alive, their batches held (not in the default fault set).
for nodes in 3 5 7; do
  echo "== gcs-sim: $runs runs with $nodes nodes from seed $seed, stalls too"
  timeout "$max_seconds" ./build/tests/gcs-sim --seed "$seed" --runs "$runs" --nodes "$nodes" \
    --faults crash,partition,loss,pause,join,leave,stall \
    | grep -v '^run seed=.* ok$' || { echo "sim-soak: gcs-sim FAILED (the seed is printed above)"; exit 1; }
  seed=$((seed + runs))
done
# Joiners by snapshot, donors crashing mid-snapshot (not in the default fault set).
for nodes in 3 5 7; do
  echo "== tutti-sim --snapshots: $runs runs with $nodes nodes from seed $seed, donor crashes too"
  timeout "$max_seconds" ./build/tests/tutti-sim --seed "$seed" --runs "$runs" --nodes "$nodes" \
    --snapshots --faults crash,partition,loss,pause,join,leave,disk,donor-crash \
    | grep -v '^run seed=.* ok$' || { echo "sim-soak: tutti-sim FAILED (the seed is printed above)"; exit 1; }
  seed=$((seed + runs))
done
echo "sim-soak: all runs passed"
