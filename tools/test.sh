#!/usr/bin/env bash
# One command from a fresh clone: dependencies, build with tests, and the whole test suite through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGRADFLOW_BUILD_TESTS=ON
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2 --timeout 600  # per test: a hang fails, no test asserts a time
