#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts a tutti node on loopback, writes and
# reads through `tutti`, shows `tutti status`, then stops the node cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target tuttid tutti

work=$(mktemp -d /tmp/tutti-demo.XXXXXX)
client_port=${TUTTI_DEMO_PORT:-7101}
node="127.0.0.1:$client_port"
pid=""
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
tutti() { ./build/tools/tutti --node "$node" "$@"; }

say "tuttid --name n1 --bootstrap ... (logs in $work/n1.log)"
./build/tools/tuttid --name n1 --data-dir "$work/n1" --client-addr "$node" \
  --gcs-addr "127.0.0.1:$((client_port + 100))" --bootstrap >"$work/n1.log" 2>&1 &
pid=$!
for _ in $(seq 100); do tutti status >/dev/null 2>&1 && break; sleep 0.1; done

say "tutti put greeting 'hello, tutti'"; tutti put greeting 'hello, tutti'
say "tutti get greeting"; tutti get greeting
say "tutti --json get greeting"; tutti --json get greeting
say "tutti cas greeting 1 'hello again'  (version 1 is current: commits)"; tutti cas greeting 1 'hello again'
say "tutti cas greeting 1 'too late'  (version 1 is gone: conflict, exit 2)"
tutti cas greeting 1 'too late' || echo "exit code $?"
say "tutti put user/1 ann; tutti put user/2 bob; tutti scan user/"
tutti put user/1 ann >/dev/null; tutti put user/2 bob >/dev/null; tutti scan user/
say "tutti status"; tutti status

say "kill -TERM tuttid; restart it on the same data dir (no --bootstrap)"
kill "$pid"; wait "$pid" || true
./build/tools/tuttid --name n1 --data-dir "$work/n1" --client-addr "$node" \
  --gcs-addr "127.0.0.1:$((client_port + 100))" >>"$work/n1.log" 2>&1 &
pid=$!
for _ in $(seq 100); do tutti status >/dev/null 2>&1 && break; sleep 0.1; done
say "tutti get greeting  (after restart)"; tutti get greeting
say "tutti --json status"; tutti --json status
say "node log"; cat "$work/n1.log"
