#!/usr/bin/env bash
# The benchmark of docs/performance.md: tutti-bench against local clusters (loopback), every
# workload, and gcs-bench (the group layer alone) at 64 B, 1 KiB and 16 KiB; with
# --with-anchors etcd, Galera and Corosync through ../shared/anchors on the same workloads,
# system after system in each round. Prints one table; unless --no-doc, appends it to
# docs/performance.md with the machine, the date and the commands.
#
#   scripts/bench.sh [--nodes 3] [--duration 10] [--warmup 3] [--rounds 1] [--with-anchors]
#                    [--aged] [--no-doc]
#
# --aged adds a run after 1,000,000 commits on the same cluster (about 5 minutes more).
# Env: BUILD (default build), BENCH_PORT (default 7801; clients BASE.., gcs BASE+100..,
# gcs-bench BASE+200..).
# Everything it starts it stops (by PID), also on error or Ctrl-C; bounded in time throughout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
nodes=3 duration=10 warmup=3 rounds=1 anchors=0 aged=0 doc=1
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --nodes) nodes=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --with-anchors) anchors=1; shift ;;
    --aged) aged=1; shift ;;
    --no-doc) doc=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1'" >&2; usage >&2; exit 4 ;;
  esac
done
[[ $nodes =~ ^[1-7]$ ]] || { echo "bench.sh: --nodes must be 1 to 7" >&2; exit 4; }
build=${BUILD:-build}
tuttid=$build/tools/tuttid tutti=$build/tools/tutti bench=$build/tools/tutti-bench
gcsbench=$build/tools/gcs-bench
for bin in "$tuttid" "$tutti" "$bench" "$gcsbench"; do
  [[ -x $bin ]] || { echo "bench.sh: $bin is missing: build first (cmake --build $build)" >&2; exit 2; }
done
base=${BENCH_PORT:-7801}
work=$(mktemp -d /tmp/tutti-bench-run.XXXXXX)
results=$work/results.tsv  # system workload config clients ops_per_s p50 p99 extra
: >"$results"
pids=()
stop_cluster() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() { stop_cluster; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
client_addr() { echo "127.0.0.1:$((base + $1 - 1))"; }
all_nodes() {
  local out="" i
  for i in $(seq "$1"); do out+="${out:+,}$(client_addr "$i")"; done
  echo "$out"
}

# start_cluster N [tuttid flags...]: a fresh cluster, every node SYNCED in one primary view.
start_cluster() {
  local n=$1 i j ready
  shift
  stop_cluster
  rm -rf "$work/data"
  for i in $(seq "$n"); do
    local extra=(--peers "127.0.0.1:$((base + 100))")
    [[ $i == 1 ]] && extra=(--bootstrap)
    "$tuttid" --name "n$i" --data-dir "$work/data/n$i" --client-addr "$(client_addr "$i")" \
      --gcs-addr "127.0.0.1:$((base + 100 + i - 1))" "${extra[@]}" "$@" >>"$work/n$i.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do "$tutti" --node "$(client_addr "$i")" status >/dev/null 2>&1 && break; sleep 0.1; done
  done
  for _ in $(seq 300); do
    ready=1
    for j in $(seq "$n"); do
      "$tutti" --json --node "$(client_addr "$j")" status 2>/dev/null | grep -q '"state":"SYNCED"' || ready=0
    done
    [[ $ready == 1 ]] && return 0
    sleep 0.1
  done
  echo "bench.sh: no primary view of $n SYNCED nodes" >&2
  tail -5 "$work"/n*.log >&2
  exit 1
}

field() { sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" <<<"$1"; }

# The highest resident anonymous memory (MB) of the cluster's nodes now; the run's highest is
# kept in $work/rss_max for the table's footer (the target: under 200 MB per node).
rss_now() {
  local m=0 p v
  for p in "${pids[@]}"; do
    v=$(awk '/^RssAnon:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    [[ -n $v ]] && ((v > m)) && m=$v
  done
  m=$((m / 1024))
  local top
  top=$(cat "$work/rss_max" 2>/dev/null || echo 0)
  ((m > top)) && echo "$m" >"$work/rss_max"
  echo "$m"
}

# run_tutti WORKLOAD CONFIG CLIENTS NODES [tutti-bench flags...]: one measurement, one row.
run_tutti() {
  local wl=$1 config=$2 clients=$3 n=$4 out
  shift 4
  log "tutti $wl $config c=$clients"
  out=$("$bench" --nodes "$(all_nodes "$n")" --clients "$clients" --duration "$duration" \
    --warmup "$warmup" --workload "$wl" --json "$@" 2>>"$work/bench.log")
  printf 'tutti\t%s\t%s\t%s\t%.0f\t%.2f\t%.2f\t%s\n' "$wl" "$config" "$clients" \
    "$(field "$out" ops_per_s)" "$(field "$out" p50_ms)" "$(field "$out" p99_ms)" \
    "conflicts $(field "$out" conflicts), errors $(field "$out" errors), unknown $(field "$out" unknown)$(
      [[ -n ${gap:-} ]] && printf ', longest gap %.0f ms' "$(field "$out" longest_gap_ms)"), node RssAnon $(rss_now) MB" >>"$results"
}

load() { "$bench" --nodes "$(all_nodes "$1")" --clients 1 --duration 0.1 --workload "$2" --load >/dev/null 2>>"$work/bench.log"; }

tutti_round() {
  log "tutti: $nodes nodes, fsync"
  start_cluster "$nodes"
  load "$nodes" update
  local c
  for c in 1 8 32 128; do run_tutti update "${nodes}node fsync" "$c" "$nodes"; done
  for c in 8 32; do run_tutti txn4 "${nodes}node fsync" "$c" "$nodes"; done
  load "$nodes" hotspot
  run_tutti hotspot "${nodes}node fsync" 16 "$nodes"
  run_tutti read "${nodes}node local" 32 "$nodes" --read local
  run_tutti read "${nodes}node linearizable" 32 "$nodes" --read linearizable
  if [[ $nodes -ge 3 ]]; then
    log "tutti: kill -9 of n$nodes during update c=32"
    (sleep "$(awk -v w="$warmup" -v d="$duration" 'BEGIN{print w + d / 3}')" &&
      kill -9 "${pids[$((nodes - 1))]}") &
    local killer=$!
    gap=1 run_tutti update "${nodes}node kill -9 of one" 32 "$nodes"
    wait "$killer" || true
  fi
  if [[ $aged == 1 ]]; then
    start_cluster "$nodes"
    load "$nodes" update
    run_tutti update "${nodes}node fresh" 32 "$nodes"
    log "tutti: ageing the cluster by 1,000,000 commits (bounded: 30 rounds of 30 s)"
    local seqno=0
    for _ in $(seq 30); do
      seqno=$("$tutti" --json --node "$(client_addr 1)" status | sed -n 's/.*"last_committed":\([0-9]*\).*/\1/p')
      [[ $seqno -ge 1000000 ]] && break
      "$bench" --nodes "$(all_nodes "$nodes")" --clients 32 --pipeline 4 --duration 30 \
        >/dev/null 2>>"$work/bench.log" || true
    done
    log "tutti: aged to seqno $seqno"
    run_tutti update "${nodes}node aged to seqno $seqno" 32 "$nodes"
  fi
  log "tutti: $nodes nodes, memory durability"
  start_cluster "$nodes" --durability memory
  load "$nodes" update
  for c in 1 32; do run_tutti update "${nodes}node memory" "$c" "$nodes"; done
  log "tutti: a single node, fsync"
  start_cluster 1
  load 1 update
  for c in 1 32; do run_tutti update "1node fsync" "$c" 1; done
  stop_cluster
}

# gcs-bench: the group layer alone, the members in one process on loopback, nothing on disk.
# Each size: every member sending as fast as its window allows, then one message in flight.
gcs_round() {
  local size mode out
  for size in 64 1024 16384; do
    log "gcs: $nodes members, $size B messages, throughput and one in flight"
    for mode in throughput latency; do
      local flags=(--members "$nodes" --size "$size" --duration "$duration" --warmup "$warmup"
        --port $((base + 200)) --json)
      [[ $mode == latency ]] && flags+=(--latency)
      if ! out=$("$gcsbench" "${flags[@]}" 2>"$work/gcs-bench.err"); then
        # The work dir goes at exit: what gcs-bench said is printed here, not only logged there.
        log "gcs-bench ($mode) failed at $size B: $(tail -n 3 "$work/gcs-bench.err" | tr '\n' ' ')"
        cat "$work/gcs-bench.err" >>"$work/bench.log"
        continue
      fi
      cat "$work/gcs-bench.err" >>"$work/bench.log"
      local workload="ordered $size B" clients=$nodes note
      note="$(awk -v m="$(field "$out" mb_per_s)" 'BEGIN { printf "%.1f", m }') MB/s per member; under load"
      [[ $mode == latency ]] && workload="one in flight $size B" clients=1 note=""
      printf "tutti gcs\t%s\t%s members, safe delivery\t%s\t%.0f\t%.3f\t%.3f\t%s\n" \
        "$workload" "$nodes" "$clients" "$(field "$out" ordered_msgs_per_s)" \
        "$(awk -v u="$(field "$out" p50_us)" 'BEGIN { print u / 1000 }')" \
        "$(awk -v u="$(field "$out" p99_us)" 'BEGIN { print u / 1000 }')" "$note" >>"$results"
    done
  done
}

# Corosync CPG (agreed order, no safe delivery, nothing on disk), 3 nodes in network namespaces,
# knet: its ordered stream and its one-in-flight latency, parsed from its summary.
corosync_anchor() {
  local scratch=$1 out=$1/corosync-out
  cp -r ../shared/anchors/corosync "$scratch/"
  command -v corosync >/dev/null || (cd "$scratch/corosync" && ./cluster.sh deps >"$work/corosync.log" 2>&1) || true
  log "corosync: ordered messages at 64 B, 1 KiB, 16 KiB; one in flight"
  if (cd "$scratch/corosync" && TRANSPORTS=knet PARTS="tput lat" SIZES="64 1024 16384" REPS=1 \
        DUR=$duration OUT="$out" RUNDIR="$scratch/csrun" timeout 1800 ./bench.sh >>"$work/corosync.log" 2>&1); then
    sed -n 's/^knet *\([0-9]*\) [0-9]* |.*ordered-stream=\([0-9.]*\) msg\/s \([0-9.]*\) MB\/s.*p50\/p99(us)=\([0-9.]*\)\/\([0-9.]*\).*/\1 \2 \3 \4 \5/p' \
      "$out/summary.txt" | while read -r size rate mb p50 p99; do
      printf "corosync\tordered %s B\t3 nodes, agreed order\t3\t%.0f\t%.2f\t%.2f\t%s MB/s per node; under load\n" \
        "$size" "$rate" "$(awk -v u="$p50" 'BEGIN { print u / 1000 }')" \
        "$(awk -v u="$p99" 'BEGIN { print u / 1000 }')" "$mb" >>"$results"
    done
    sed -n 's/^knet *\([0-9]*\) | self-delivery p50=\([0-9.]*\)us p90=[0-9.]*us p99=\([0-9.]*\)us.*/\1 \2 \3/p' \
      "$out/summary.txt" | while read -r size p50 p99; do
      printf "corosync\tone in flight %s B\t3 nodes, agreed order\t1\t-\t%.3f\t%.3f\t\n" \
        "$size" "$(awk -v u="$p50" 'BEGIN { print u / 1000 }')" \
        "$(awk -v u="$p99" 'BEGIN { print u / 1000 }')" >>"$results"
    done
  else
    log "corosync: its bench failed (see the log below); no Corosync figures"
    tail -5 "$work/corosync.log" >&2
  fi
}

# What the anchors run, installed when missing (they say what they lack, and stop).
anchor_deps() {
  local pkgs=()
  command -v etcd >/dev/null || pkgs+=(etcd-server etcd-client wrk jq curl gcc)
  command -v mariadb-install-db >/dev/null || pkgs+=(mariadb-server galera-4 sysbench rsync)
  [[ ${#pkgs[@]} -eq 0 ]] && return
  log "anchors: installing ${pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >>"$work/apt.log" 2>&1 ||
    log "anchors: apt-get install failed (see $work/apt.log); those anchors will say what they lack"
}

# The anchors write their results next to a copy of their folder.
anchors_round() {
  anchor_deps
  local scratch=$work/anchors
  rm -rf "$scratch"
  mkdir -p "$scratch"
  cp -r ../shared/anchors/etcd ../shared/anchors/galera "$scratch/"
  log "etcd: W1 puts, W3 reads, W5 single member"
  if (cd "$scratch/etcd" && DUR=$duration WARM=$warmup REPEATS=1 PHASES="w1 w3 w5" \
        BENCH_OUT="$scratch/etcd-out" timeout 1800 ./bench.sh >"$work/etcd.log" 2>&1); then
    awk -F'\t' 'NR > 1 && $1 != "" {
        wl = ($1 == "W3") ? "read" : "update";
        cfg = $2; if ($1 == "W1" && $3 == 1 && $4 != "follower") next;
        printf "etcd\t%s\t%s\t%s\t%.0f\t%.2f\t%.2f\t\n", wl, cfg, $3, $7, $8, $10 }' \
      "$scratch/etcd-out/results.tsv" >>"$results"
  else
    log "etcd: its bench failed (see the log below); no etcd figures"
    tail -5 "$work/etcd.log" >&2
  fi
  log "galera: W1 updates, W3 4-update transactions, W4 hot spot"
  if (cd "$scratch/galera" && DUR=$duration WARM=$warmup REPS=1 OUT="$scratch/galera-out" \
        timeout 3600 ./bench.sh cluster >"$work/galera.log" 2>&1); then
    # Its workloads are named W1_kv, W3_trx4, W4_hot100 (W5 and the rest are not ours).
    awk -F'\t' 'NR > 1 && $1 ~ /^W[134]_/ {
        w = substr($1, 1, 2);
        wl = (w == "W1") ? "update" : (w == "W3") ? "txn4" : "hotspot";
        printf "galera\t%s\t%s\t%s\t%.0f\t%.2f\t%.2f\t\n", wl, $2 " flush=" $3, $4, $6, $7, $9 }' \
      "$scratch/galera-out/results.tsv" >>"$results"
  else
    log "galera: its bench failed (see the log below); no Galera figures"
    tail -5 "$work/galera.log" >&2
  fi
  corosync_anchor "$scratch"
}

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for r in $(seq "$rounds"); do
  log "round $r of $rounds"
  tutti_round
  gcs_round
  [[ $anchors == 1 ]] && anchors_round
done

table=$work/table.md
{
  echo "| system | workload | config | clients | ops/s (median) | p50 ms | p99 ms | notes |"
  echo "|---|---|---|---|---|---|---|---|"
  sort -t$'\t' -k2,2 -k3,3 -k4,4n -k1,1 "$results" | awk -F'\t' '
    { key = $1 FS $2 FS $3 FS $4; n[key]++; ops[key, n[key]] = $5; p50[key] = $6; p99[key] = $7;
      note[key] = $8; if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
    END {
      for (i = 1; i <= k; i++) {
        key = order[i]; m = n[key];
        # the median of the rounds (the latencies are the last round'"'"'s)
        for (a = 1; a <= m; a++) v[a] = ops[key, a];
        for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (v[b] < v[a]) { t = v[a]; v[a] = v[b]; v[b] = t }
        med = (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2;
        split(key, f, FS);
        rate = (ops[key, 1] == "-") ? "-" : sprintf("%.0f", med)
        printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], f[3], f[4], rate, p50[key], p99[key], note[key]
      }
    }'
} >"$table"
cat "$table"
echo "Resident anonymous memory of a tuttid, the highest after any tutti run: $(cat "$work/rss_max" 2>/dev/null || echo "?") MB"
if [[ $doc == 1 ]]; then
  {
    echo
    echo "### scripts/bench.sh, $started"
    echo
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
    echo "$(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r); tutti at $(git rev-parse --short HEAD)."
    echo "Command: \`scripts/bench.sh --nodes $nodes --duration $duration --warmup $warmup --rounds $rounds$(
      [[ $anchors == 1 ]] && echo " --with-anchors")$([[ $aged == 1 ]] && echo " --aged")\`"
    echo
    cat "$table"
    echo
    echo "Resident anonymous memory of a tuttid (RssAnon), the highest seen after any tutti run:" \
      "$(cat "$work/rss_max" 2>/dev/null || echo "?") MB (target: under 200 MB)."
  } >>"$root/docs/performance.md"
  log "table appended to docs/performance.md"
fi
