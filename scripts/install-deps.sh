#!/usr/bin/env bash
# Installs the Debian 12 packages tutti builds and tests with. Idempotent: a machine that already
# has them all is left alone (no apt-get update), so the test command stays fast on a warm machine.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config clang-format clang libclang-rt-14-dev
  libasio-dev capnproto libcapnp-dev liblmdb-dev libspdlog-dev catch2
  libcli11-dev nlohmann-json3-dev libxxhash-dev
  iproute2 e2fsprogs mount util-linux  # tutti-chaos: namespaces, links, loop-mounted disks
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
