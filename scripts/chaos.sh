#!/usr/bin/env bash
# Fault injection with real processes (docs/chaos.md): tuttid nodes, each in its own network
# namespace, under inserts, bank transfers, list-append transactions and register operations
# while a seeded nemesis kills (one node, or every node within a second), freezes (SIGSTOP),
# partitions them, slows one node's link, makes one leave and come back, fills one node's disk,
# adds an empty one that joins by state transfer, and empties one node's data and kills or cuts
# off its donor mid-transfer; then everything is healed and the history checked (lost writes,
# serializability, linearizability). Needs root. The same seed replays the same schedule.
#   scripts/chaos.sh [--minutes N] [--nodes N] [--seed S] [--faults kill,kill-all,...]
# Bounded: the nemesis runs N minutes, then at most 2 minutes to converge; a hard timeout of
# N minutes + 10 stops everything. Namespaces, bridges and processes it made are removed, also
# when interrupted; on a failed check the node logs and the history are kept and printed.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=5
args=()
while (($#)); do
  case $1 in
    --minutes) minutes=$2; args+=(--minutes "$2"); shift 2 ;;
    --nodes | --seed | --faults) args+=("$1" "$2"); shift 2 ;;
    *) echo "chaos.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ " ${args[*]} " == *" --minutes "* ]] || args+=(--minutes "$minutes")
./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target tutti-chaos tuttid >/dev/null
limit=$(awk -v m="$minutes" 'BEGIN { printf "%d", (m + 10) * 60 }')
exec timeout --signal=TERM --kill-after=30 "$limit" ./build/tests/tutti-chaos "${args[@]}"
