#!/usr/bin/env bash
# Installs every build and test dependency of musafarm from Debian 12's archive.
# Idempotent: does nothing when everything is already installed.
set -euo pipefail

PACKAGES=(
  cmake ninja-build g++ pkg-config git ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libcli11-dev libyaml-cpp-dev libsqlite3-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libpugixml-dev
  libbenchmark-dev     # bench/micro_bench (Google Benchmark)
  libcpp-httplib-dev   # the coordinator's HTTP port (probes, metrics, dashboard)
  prometheus           # promtool checks /metrics (observe_e2e_test)
  chromium chromium-driver python3-selenium openssl   # the dashboard's browser test (observe_e2e_test)
  clang-14 python3   # scripts/tsa-build.sh (thread-safety analysis), tests/tsa
  zsh                # cli_test loads the zsh completion script
  dpkg-dev debootstrap docker-compose   # the .deb packages (cpack: dpkg-shlibdeps), scripts/long-checks.sh
  slurm-wlm munge    # bench/peers/slurm.py: the peer bench/run.sh measures against (own daemons in a temp dir)
  postgresql libpq-dev   # the PostgreSQL store (libpq) and its tests' private cluster (initdb, pg_ctl)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
# No package may start its service (munge, slurmctld, slurmd, postgresql): the benchmark runs
# private ones, and a system slurmctld without a configuration only fails.
no_start=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  no_start=1
fi
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
[ "$no_start" = 0 ] || $SUDO rm -f /usr/sbin/policy-rc.d
