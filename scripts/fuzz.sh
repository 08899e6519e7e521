#!/usr/bin/env bash
# Long fuzzing runs of the two decoders (client frames, gcs frames), bounded in time:
#   ./scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 600)
# Builds the libFuzzer targets in build-fuzz (clang, ASan+UBSan), keeps each target's corpus in
# build-fuzz/tests/fuzz/corpus/, and stops at the first crash, leaving the input that caused it
# (crash-*) in the current directory: make it a test before fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
./scripts/install-deps.sh
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTUTTI_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build-fuzz -j "$(nproc)"
for target in client_frames gcs_frames; do
  echo "== fuzz_$target for $seconds s"
  ./build-fuzz/tests/fuzz/fuzz_$target -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "build-fuzz/tests/fuzz/corpus/$target" "tests/fuzz/seeds/$target"
done
