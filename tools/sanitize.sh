#!/usr/bin/env bash
# Sanitizer builds, as CI runs them:
#   asan  GCC, AddressSanitizer + UndefinedBehaviorSanitizer (no recovery): the whole test suite.
#   tsan  clang, ThreadSanitizer: the parallel sweep tests (thread-count determinism, interrupt/resume)
#         and the engine tests. clang's OpenMP runtime (libomp) reports its synchronisation to TSan through
#         its OMPT tool libarcher; ignore_noninstrumented_modules=1 silences the runtime's own internals.
#         GCC's libgomp has no such annotations, hence clang here.
# Usage: bash tools/sanitize.sh [asan|tsan|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
if [ "$what" = asan ] || [ "$what" = all ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRADFLOW_SANITIZE=ON -DGRADFLOW_NATIVE=OFF \
    -DGRADFLOW_BUILD_BENCH=OFF > /dev/null
  cmake --build build-asan -j2
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j2
fi
if [ "$what" = tsan ] || [ "$what" = all ]; then
  CXX=clang++ cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRADFLOW_SANITIZE_THREAD=ON \
    -DGRADFLOW_NATIVE=OFF -DGRADFLOW_BUILD_BENCH=OFF > /dev/null
  cmake --build build-tsan -j2 --target gradflow_cli test_sweep test_engine
  export TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1"
  build-tsan/tests/test_engine
  # The 20-kill trial is left to the ASan run: under TSan it takes minutes and adds no thread coverage.
  build-tsan/tests/test_sweep "~[kill]"
fi
