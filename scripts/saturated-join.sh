#!/usr/bin/env bash
# A join on a saturated machine: a 3-node cluster (fsync durability) in a temp dir, loaded with
# 256 MiB of 64 KiB values, a pipelined load of small puts through n2, three busy loops beside it
# (every core wanted), and an empty n5 joining with a low backlog bound (--joiner-backlog 20000),
# so that it passes the bound during its snapshot. Prints the voters' commits each second and
# n5's state, for SECONDS (default 40): catching up must never stop the group's commits (a
# second of 0 is a stall). Bounded in time; everything it starts it stops (by PID).
#   scripts/saturated-join.sh [SECONDS=40]
# Env: BUILD (default build), BENCH_PORT (default 7901), JOINER_FLAGS (more flags for n5).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-40}
build=${BUILD:-build}
tuttid=$build/tools/tuttid
tutti=$build/tools/tutti
load=$build/tests/commit-load
base=${BENCH_PORT:-7901}
for bin in "$tuttid" "$tutti" "$load"; do
  [[ -x $bin ]] || { echo "saturated-join: $bin is missing: build it first" >&2; exit 2; }
done
work=$(mktemp -d /tmp/tutti-saturated-join.XXXXXX)
declare -A pids=()
bg=()
cleanup() {
  for p in "${bg[@]}" "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  if [[ -n ${KEEP:-} ]]; then echo "saturated-join: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
client() { echo "127.0.0.1:$((base + $1 - 1))"; }
gcs() { echo "127.0.0.1:$((base + 50 + $1 - 1))"; }
start() {
  local i=$1; shift
  "$tuttid" --name "n$i" --data-dir "$work/n$i" --client-addr "$(client "$i")" \
    --gcs-addr "$(gcs "$i")" "$@" >>"$work/n$i.log" 2>&1 &
  pids[$i]=$!
  for _ in $(seq 100); do "$tutti" --node "$(client "$i")" status >/dev/null 2>&1 && return; sleep 0.1; done
  echo "saturated-join: n$i did not start:" >&2; cat "$work/n$i.log" >&2; exit 1
}
seqno() { "$tutti" --node "$(client 2)" --json status 2>/dev/null | sed -n 's/.*"last_committed":\([0-9]*\).*/\1/p'; }
start 1 --bootstrap
start 2 --peers "$(gcs 1)"
start 3 --peers "$(gcs 1)"
sleep 2
"$load" --node "$(client 1)" --count 4096 --value-size 65536 --connections 2 --depth 8 >/dev/null
timeout $((secs + 30)) "$load" --node "$(client 2)" --count 100000000 --connections 4 --depth 16 \
  --retry-refused >"$work/load.out" 2>&1 &
bg+=($!)
sleep 2
for _ in 1 2 3; do
  timeout "$secs" sh -c 'while :; do :; done' &
  bg+=($!)
done
# shellcheck disable=SC2086
start 5 --peers "$(gcs 1)" --joiner-backlog 20000 ${JOINER_FLAGS:-}
prev=$(seqno)
stalls=0
for t in $(seq "$secs"); do
  sleep 1
  cur=$(seqno)
  state=$("$tutti" --node "$(client 5)" --json status 2>/dev/null | sed -n 's/.*"state":"\([A-Z]*\)".*/\1/p')
  echo "t=${t}s commits=$((cur - prev)) n5=${state:-?}"
  ((cur == prev)) && stalls=$((stalls + 1))
  prev=$cur
done
echo "saturated-join: $stalls second(s) without a commit in ${secs} s; n5: $(grep -c 'over the bound' "$work/n5.log") bound warning(s), evicted $(grep -c "member 'n5' left the view while it held the group paused" "$work/n2.log") time(s)"
