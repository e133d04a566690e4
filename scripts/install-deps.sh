#!/usr/bin/env bash
# Installs the Debian 12 packages recstream builds, runs and tests with.
# python3 runs the test fixtures (a stand-in Schema Registry, the deployment
# file checks); docker-compose is only the Compose client, used by the tests
# to validate docker-compose.yml (no Docker engine is needed or started);
# iproute2's ss lets the tests check which address a port listens on.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      librdkafka-dev libavro-dev libopenblas-dev librocksdb-dev
      libmicrohttpd-dev libjansson-dev libxxhash-dev libcurl4-openssl-dev
      libjemalloc-dev libcmocka-dev kcat jq curl valgrind clang-format iproute2
      python3 python3-yaml docker-compose)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
