#!/usr/bin/env bash
# Installs what gradflow needs from Debian packages (as root), or says exactly what to install.
# Usage: bash tools/setup.sh [--with-bench] [--with-mpi] [--with-sanitizers]
set -euo pipefail

# libopenmpi-dev + openmpi-bin: distributed sweeps (GRADFLOW_WITH_MPI) and their tests under mpirun.
# pybind11-dev + python3-dev: the Python module gradflow; python3-pytest: its tests; chromium: the test that
# renders report.html headless. git: the commit `gradflow --version` reports.
packages=(build-essential cmake libeigen3-dev libspectra-dev libopenblas-openmp-dev catch2 libtomlplusplus-dev
          libcli11-dev nlohmann-json3-dev python3 python3-numpy python3-matplotlib libopenmpi-dev openmpi-bin
          pybind11-dev python3-dev python3-pytest chromium git)
for arg in "$@"; do
  case "$arg" in
    --with-bench) packages+=(python3-torch python3-scipy time libbenchmark-dev) ;;
    --with-mpi) ;;  # MPI is in the default list now; kept so that old command lines still work
    --with-sanitizers) packages+=(clang libclang-rt-14-dev libomp-14-dev) ;;  # fuzzing and TSan (clang)
    *) echo "setup.sh: unknown option $arg (expected --with-bench, --with-mpi or --with-sanitizers)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all dependencies present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing Debian packages: ${missing[*]}" >&2
  echo "setup: install them as root with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
