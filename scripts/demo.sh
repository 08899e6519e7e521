#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts a 3-node tutti cluster on loopback
# (n1 with --bootstrap, n2 and n3 joining through n1), writes through each node and reads through
# the others, shows `gcs-tool members`, kills one node and shows the others go on, adds a 4th node
# that joins by snapshot transfer while writes go on, brings the killed one back (it catches up
# by incremental transfer), then stops the cluster cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target tuttid tutti gcs-tool commit-load

work=$(mktemp -d /tmp/tutti-demo.XXXXXX)
base=${TUTTI_DEMO_PORT:-7101}
declare -A pids=()
client() { echo "127.0.0.1:$((base + $1 - 1))"; }
gcs() { echo "127.0.0.1:$((base + 100 + $1 - 1))"; }
cleanup() {
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then kill "${pids[$i]}"; wait "${pids[$i]}" || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
tutti() { local i=$1; shift; ./build/tools/tutti --node "$(client "$i")" "$@"; }
members() { ./build/tools/gcs-tool --node "$(client "$1")" members "${@:2}"; }
start() {
  local i=$1; shift
  # A 4 MiB write-set log (256 MiB by default): a node that missed a few thousand commits
  # catches up from a donor's log, a new one needs a snapshot.
  ./build/tools/tuttid --name "n$i" --data-dir "$work/n$i" --client-addr "$(client "$i")" \
    --gcs-addr "$(gcs "$i")" --wscache-size 4 "$@" >>"$work/n$i.log" 2>&1 &
  pids[$i]=$!
  for _ in $(seq 100); do tutti "$i" status >/dev/null 2>&1 && return; sleep 0.1; done
  echo "n$i did not start; its log:"; cat "$work/n$i.log"; exit 1
}
wait_primary_of() {  # node, size
  for _ in $(seq 100); do
    members "$1" --json 2>/dev/null | grep -q "\"primary\":true,\"size\":$2" && return
    sleep 0.1
  done
  echo "no primary view of $2 at n$1"; members "$1"; exit 1
}
stop() { kill "${pids[$1]}"; wait "${pids[$1]}" || true; unset "pids[$1]"; }

say "tuttid --name n1 --bootstrap ...; tuttid --name n2|n3 --peers $(gcs 1) ...  (logs in $work)"
start 1 --bootstrap
start 2 --peers "$(gcs 1)"
start 3 --peers "$(gcs 1)"
wait_primary_of 1 3
say "gcs-tool --node $(client 1) members"; members 1

for i in 1 2 3; do
  say "tutti --node $(client "$i") put key$i 'written through n$i'"; tutti "$i" put "key$i" "written through n$i"
done
for i in 1 2 3; do
  say "tutti --node $(client "$i") scan key   (linearizable: sees every write above)"
  tutti "$i" scan key
done
say "tutti --node $(client 2) cas key1 1 'changed through n2'  (key1 is at version 1: commits)"
tutti 2 cas key1 1 'changed through n2'
say "tutti --node $(client 3) cas key1 1 'changed through n3'  (version 1 is gone: conflict)"
tutti 3 cas key1 1 'changed through n3' || echo "exit code $?: conflict, nothing written"
say "tutti --node $(client 3) --json get key2"; tutti 3 --json get key2

load() { ./build/tests/commit-load --node "$(client "$1")" --count "$2" --retry-refused; }
say "40,000 commits through n1 (a pipelined load: commit-load)"; load 1 40000

say "kill -9 n3; the others go on"
kill -9 "${pids[3]}"; wait "${pids[3]}" 2>/dev/null || true; unset "pids[3]"
wait_primary_of 1 2
say "tutti --node $(client 2) put after-kill yes"; tutti 2 put after-kill yes
say "gcs-tool --node $(client 2) members --json"; members 2 --json

say "n1 and n2 stop cleanly, then come back: a primary of the two re-forms by itself"
stop 2; stop 1
start 1; start 2
wait_primary_of 1 2
say "tutti --node $(client 1) get after-kill"; tutti 1 get after-kill
say "3,000 more commits through n2 while n3 is down"; load 2 3000

say "a 4th node joins the running cluster while writes go on: the log no longer holds seqno 1,"
say "so a donor streams it a snapshot (the donor goes on applying and serving throughout)"
load 2 5000 >"$work/load.out" 2>&1 &
loader=$!
start 4 --peers "$(gcs 1)"
seen=""
for _ in $(seq 600); do  # its status while it catches up: the last one that shows the transfer
  s=$(tutti 4 --json status 2>/dev/null || true)
  case "$s" in *'"transfer":{'*) seen=$s ;; esac
  case "$s" in *'"state":"SYNCED"'*) break ;; esac
  sleep 0.02
done
echo "tutti --node $(client 4) --json status, during the transfer:"; echo "${seen:-(over too fast to see)}"
wait "$loader"; cat "$work/load.out"
grep -h "state transfer" "$work/n4.log" | sed 's/^/  n4: /'
wait_primary_of 1 3
say "gcs-tool --node $(client 1) members   (n4 SYNCED)"; members 1

say "n3 comes back: it missed the commits above, which the donors' logs still hold, so it"
say "catches up by incremental transfer"
start 3
wait_primary_of 1 4
# Quick on an idle machine (a quarter of a second); the joiner's transfer thread runs at idle
# priority, so a machine busy with other work stretches it: the demo waits, then checks.
for _ in $(seq 600); do tutti 3 --json status | grep -q '"state":"SYNCED"' && break; sleep 0.1; done
grep -h "state transfer" "$work/n3.log" | sed 's/^/  n3: /'
say "gcs-tool --node $(client 1) members"; members 1
say "every node: the same last committed seqno and content hash"
states=()
for i in 1 2 3 4; do
  states+=("$(tutti "$i" --json status | grep -o '"content_hash":"[0-9a-f]*"\|"last_committed":[0-9]*' | tr '\n' ' ')")
  echo "n$i: ${states[-1]}"
done
if [[ $(printf '%s\n' "${states[@]}" | sort -u | wc -l) -ne 1 ]]; then
  echo "demo: the nodes differ (n3 did not catch up within 60 s?): see the logs below" >&2
  tail -n 20 "$work"/n*.log >&2
  exit 1
fi
say "node logs"; tail -n 8 "$work"/n*.log
