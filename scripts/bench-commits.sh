#!/usr/bin/env bash
# Commits per second of a local cluster under a pipelined load of blind puts: starts N nodes
# (fsync durability) in a temp dir, runs COUNT puts through node 1 with commit-load, prints its
# figure line, stops the cluster. For before/after figures run it twice, once with TUTTID set to
# the other build's tuttid.
#   scripts/bench-commits.sh [NODES=1] [COUNT=20000]
# Env: BUILD (default build), TUTTID (default $BUILD/tools/tuttid), BENCH_PORT (default 7501),
#      LOAD_ARGS (extra commit-load flags, e.g. "--connections 8 --depth 32").
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-1}
count=${2:-20000}
build=${BUILD:-build}
tuttid=${TUTTID:-$build/tools/tuttid}
tutti=$build/tools/tutti
load=$build/tests/commit-load
base=${BENCH_PORT:-7501}
for bin in "$tuttid" "$tutti" "$load"; do
  [[ -x $bin ]] || { echo "bench-commits: $bin is missing: build it first" >&2; exit 2; }
done
work=$(mktemp -d /tmp/tutti-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
client() { echo "127.0.0.1:$((base + $1 - 1))"; }
gcs() { echo "127.0.0.1:$((base + 100 + $1 - 1))"; }
for i in $(seq "$nodes"); do
  extra=(--peers "$(gcs 1)")
  [[ $i == 1 ]] && extra=(--bootstrap)
  "$tuttid" --name "n$i" --data-dir "$work/n$i" --client-addr "$(client "$i")" \
    --gcs-addr "$(gcs "$i")" "${extra[@]}" >>"$work/n$i.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do "$tutti" --node "$(client "$i")" status >/dev/null 2>&1 && break; sleep 0.1; done
done
# Every node primary, in one view of all of them: bounded wait.
for _ in $(seq 200); do
  ready=1
  for i in $(seq "$nodes"); do
    "$tutti" --json --node "$(client "$i")" status 2>/dev/null |
      grep -q "\"cluster_size\":$nodes.*\"primary\":true\|\"primary\":true.*\"cluster_size\":$nodes" ||
      ready=0
  done
  [[ $ready == 1 ]] && break
  sleep 0.1
done
[[ $ready == 1 ]] || { echo "bench-commits: no primary view of $nodes" >&2; tail -5 "$work"/n*.log >&2; exit 1; }
# shellcheck disable=SC2086
"$load" --node "$(client 1)" --count "$count" ${LOAD_ARGS:-}
