#!/usr/bin/env bash
# State transfer figures on this machine, on a local 3-node cluster (fsync durability) in a temp
# dir; everything it starts it stops (by PID), also when interrupted. Bounded in time throughout.
#   scripts/transfer-bench.sh [GIB=1]
# 1. loads GIB GiB of 64 KiB values through n1;
# 2. starts an empty n4 on the idle cluster: it joins by snapshot (the write-set log, 256 MiB by
#    default, holds far less than the data); snapshot MB/s (from n4's log: bytes and seconds of
#    the stream and install) and the time from its start to SYNCED; then n4 leaves (SIGTERM);
# 3. measures the cluster's write rate (pipelined blind puts of 100 bytes through n2) for 10 s;
# 4. starts an empty n5 while that load goes on: the snapshot's MB/s under load, and the write
#    rate from n5's start to its SYNCED, as a share of the rate before; then n5 leaves and the
#    rate is taken for 10 s more (the cluster's drift, apart from the transfer);
# 5. kills n3 (kill -9), commits 200,000 small puts, restarts n3: it catches up from a donor's
#    log; incremental write-sets/s (from its log: the range asked for, and the time to done).
# Prints one markdown table (for docs/performance.md) with the date and machine.
# Env: BUILD (default build), BENCH_PORT (default 7601), KEEP (set: keep the nodes' dirs and logs:
# about 7 GiB per GiB loaded, left in /tmp for you to remove), JOINER_FLAGS (more tuttid flags
# for the joiners n4 and n5, e.g. "--snapshot-busy-share 10").
set -euo pipefail
cd "$(dirname "$0")/.."
gib=${1:-1}
build=${BUILD:-build}
tuttid=$build/tools/tuttid
tutti=$build/tools/tutti
load=$build/tests/commit-load
base=${BENCH_PORT:-7601}
for bin in "$tuttid" "$tutti" "$load"; do
  [[ -x $bin ]] || { echo "transfer-bench: $bin is missing: build it first" >&2; exit 2; }
done
# Four nodes hold the data each, with their logs and the space LMDB keeps: about 7 GiB per GiB.
need_kib=$((gib * 7 * 1024 * 1024))
free_kib=$(df -Pk /tmp | awk 'NR == 2 { print $4 }')
if ((free_kib < need_kib)); then
  echo "transfer-bench: /tmp has $((free_kib / 1048576)) GiB free, this run needs about $((need_kib / 1048576)) GiB" >&2
  exit 2
fi
work=$(mktemp -d /tmp/tutti-transfer-bench.XXXXXX)
declare -A pids=()
bg=()
cleanup() {
  for p in "${bg[@]}" "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  if [[ -n ${KEEP:-} ]]; then echo "transfer-bench: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
client() { echo "127.0.0.1:$((base + $1 - 1))"; }
gcs() { echo "127.0.0.1:$((base + 100 + $1 - 1))"; }
status() { "$tutti" --node "$(client "$1")" --json status 2>/dev/null || true; }
field() { sed -n "s/.*\"$2\":\\([0-9]*\\).*/\\1/p" <<<"$1"; }
# Default flags: a batch long on its way to disk says the node lives (docs/gcs.md, Alive).
start() {
  local i=$1; shift
  "$tuttid" --name "n$i" --data-dir "$work/n$i" --client-addr "$(client "$i")" \
    --gcs-addr "$(gcs "$i")" "$@" >>"$work/n$i.log" 2>&1 &
  pids[$i]=$!
  for _ in $(seq 100); do "$tutti" --node "$(client "$i")" status >/dev/null 2>&1 && return; sleep 0.1; done
  echo "transfer-bench: n$i did not start:" >&2; cat "$work/n$i.log" >&2; exit 1
}
# Polls every ${3:-0.1} s. Under load it polls once a second: ten `tutti status` a second (with
# the shell's forks) took about 30% of a core, which the group lost during the join only.
wait_synced() {  # node, seconds[, interval]
  local interval=${3:-0.1}
  local polls
  polls=$(awk -v s="$2" -v i="$interval" 'BEGIN { printf "%d", s / i }')
  for _ in $(seq "$polls"); do
    status "$1" | grep -q '"state":"SYNCED"' && return
    sleep "$interval"
  done
  echo "transfer-bench: n$1 not SYNCED within $2 s; its log:" >&2; tail -20 "$work/n$1.log" >&2
  exit 1
}
seqno() { field "$(status "$1")" last_committed; }
now() { date +%s.%N; }
# Seconds between two log timestamps (HH:MM:SS.mmm, same day).
secs() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, ":"); split(b, y, ":");
  printf "%.3f", (y[1] * 3600 + y[2] * 60 + y[3]) - (x[1] * 3600 + x[2] * 60 + x[3]) }'; }
# The first log line of node $1 matching $2, from line ${3:-1} on; its time.
since() { tail -n +"${3:-1}" "$work/n$1.log" | grep -m1 "$2" || true; }
stamp() { since "$@" | sed 's/^[0-9-]*T\([0-9:.]*\) .*/\1/'; }

# Another run (or anything) on these ports would mix into this one's cluster: refuse to start.
for port in $(seq "$base" $((base + 4))) $(seq $((base + 100)) $((base + 104))); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "transfer-bench: port $port is in use (another run?): set BENCH_PORT elsewhere" >&2
    exit 2
  fi
done
start 1 --bootstrap
start 2 --peers "$(gcs 1)"
start 3 --peers "$(gcs 1)"
wait_synced 3 20

count=$((gib * 16384))
echo "loading $gib GiB: $count values of 64 KiB through n1 ..." >&2
"$load" --node "$(client 1)" --count "$count" --value-size 65536 --connections 2 --depth 8 >&2

# The snapshot of an idle cluster: the machine's cores and disk are the transfer's.
snapshot_line() {  # node: its "installed" line
  local line
  line=$(grep -m1 "snapshot at seqno .* installed" "$work/n$1.log" || true)
  [[ -n $line ]] || { echo "transfer-bench: n$1 did not catch up by snapshot:" >&2; tail -20 "$work/n$1.log" >&2; exit 1; }
  echo "$line"
}
mb_of() { sed -n 's/.*installed (\([0-9.]*\) MB streamed in \([0-9.]*\) s[);].*/\1/p' <<<"$1"; }
s_of() { sed -n 's/.*installed (\([0-9.]*\) MB streamed in \([0-9.]*\) s[);].*/\2/p' <<<"$1"; }
echo "n4 joins (empty) the idle cluster ..." >&2
t0=$(now)
start 4 --peers "$(gcs 1)" ${JOINER_FLAGS:-}
wait_synced 4 600
t1=$(now)
idle_line=$(snapshot_line 4)
idle_mb=$(mb_of "$idle_line")
idle_s=$(s_of "$idle_line")
idle_rate=$(awk -v m="$idle_mb" -v s="$idle_s" 'BEGIN { printf "%.0f", m / s }')
idle_synced=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
kill "${pids[4]}"; wait "${pids[4]}" 2>/dev/null || true; unset "pids[4]"
rm -rf "$work/n4"  # its 1 GiB: the disk's room is for n5

# A steady background load through n2, bounded: at most 10 minutes, then it stops by itself.
"$load" --node "$(client 2)" --count 100000000 --connections 4 --depth 16 --retry-refused \
  >"$work/load.out" 2>&1 &
bg+=($!)
sleep 2
rate() { awk -v a="$1" -v b="$2" -v x="$3" -v y="$4" 'BEGIN { printf "%.0f", (b - a) / (y - x) }'; }
# n2's commits/s over 10 s, taken as the one during the join: with a status poll a second
# (wait_synced's).
rate_10s() {
  local s0 t0
  s0=$(seqno 2); t0=$(now)
  for _ in $(seq 10); do status 2 | grep -q '"state":"SYNCED"' || true; sleep 1; done
  rate "$s0" "$(seqno 2)" "$t0" "$(now)"
}
before=$(rate_10s)
echo "writes before the transfer: $before commits/s" >&2

echo "n5 joins (empty) while the load goes on ..." >&2
s0=$(seqno 2); t0=$(now)
start 5 --peers "$(gcs 1)" ${JOINER_FLAGS:-}
wait_synced 5 600 1
during=$(rate "$s0" "$(seqno 2)" "$t0" "$(now)")
line=$(snapshot_line 5)
mb=$(mb_of "$line")
sst_s=$(s_of "$line")
sst_rate=$(awk -v m="$mb" -v s="$sst_s" 'BEGIN { printf "%.0f", m / s }')
share=$(awk -v a="$during" -v b="$before" 'BEGIN { printf "%.0f", 100 * a / b }')
# The same load for 10 s after the join, n5 gone again (SIGTERM: it leaves the group), so the
# same three members as before: whether the rate before still holds without a transfer, so that a
# share below it can be told from the cluster's own drift.
kill "${pids[5]}"; wait "${pids[5]}" 2>/dev/null || true; unset "pids[5]"
sleep 1
after=$(rate_10s)
echo "writes after the transfer: $after commits/s" >&2
kill "${bg[0]}" 2>/dev/null; wait "${bg[0]}" 2>/dev/null || true; bg=()

echo "kill -9 n3, 200,000 commits, n3 back ..." >&2
kill -9 "${pids[3]}"; wait "${pids[3]}" 2>/dev/null || true; unset "pids[3]"
sleep 2
"$load" --node "$(client 1)" --count 200000 --retry-refused >&2
mark=$(($(wc -l <"$work/n3.log") + 1))  # n3 may have caught up before: this run's lines only
start 3
wait_synced 3 120
ask=$(since 3 "state transfer: asking .* from its log" "$mark")
[[ -n $ask ]] || { echo "transfer-bench: n3 did not catch up from a log:" >&2; tail -20 "$work/n3.log" >&2; exit 1; }
range=$(sed -n 's/.*write-sets \([0-9]*\)\.\.\([0-9]*\) from its log.*/\1 \2/p' <<<"$ask")
ist_s=$(secs "$(stamp 3 "from its log" "$mark")" "$(stamp 3 "state transfer done" "$mark")")
ist_n=$(awk -v r="$range" 'BEGIN { split(r, x, " "); print x[2] - x[1] + 1 }')
ist_rate=$(awk -v n="$ist_n" -v s="$ist_s" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')

cat <<EOF
Transfer figures, $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), 3 nodes on loopback, fsync; \`scripts/transfer-bench.sh $gib\`

| figure | tutti | target |
|---|---|---|
| snapshot transfer of $idle_mb MB (state of ${gib} GiB loaded), idle cluster | $idle_rate MB/s ($idle_s s; start to SYNCED $idle_synced s) | >= 180 MB/s |
| the same while the write load goes on (the transfer yields to the group) | $sst_rate MB/s ($sst_s s) | |
| incremental transfer of $ist_n write-sets | $ist_rate write-sets/s ($ist_s s) | >= 12,000/s |
| writes during the snapshot join, share of before | ${share}% ($during vs $before commits/s) | >= 80% |
| writes in the 10 s after the join (n5 gone again), for comparison | $after commits/s | |
EOF
