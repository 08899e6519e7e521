#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs the whole suite twice, in a
# normal build and in an ASan+UBSan build (separate build dirs), then the libFuzzer targets of
# both decoders for a short while (clang, a third build dir). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

jobs=$(nproc)
run_suite() {
  local dir=$1
  shift
  echo "== build $dir ($*)"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "== test $dir"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 600)
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTUTTI_SANITIZE=ON
# Only the decoders and their libraries: the fuzz build leaves the binaries and other tests out.
run_suite build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTUTTI_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
echo "== all tests passed (normal and ASan+UBSan builds, fuzz targets)"
