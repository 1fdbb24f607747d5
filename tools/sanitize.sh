#!/usr/bin/env bash
# Sanitizer builds, as CI runs them (a fatal stage of .ci/run):
#   asan  GCC, AddressSanitizer + UndefinedBehaviorSanitizer (no recovery) with LeakSanitizer: the whole
#         test suite but README's regeneration check and the Python plot scripts (see below). One narrow suppression: the leaks Open MPI leaves at MPI_Finalize by
#         design, in the processes the MPI tests start under mpirun (tools/lsan_mpi.supp, wired up in
#         tests/CMakeLists.txt). OpenBLAS and libgomp are not instrumented and report nothing.
#   tsan  clang, ThreadSanitizer: the engine tests, the parallel sweep tests (thread-count determinism,
#         interrupt/resume), the recurrent-matrix cache shared by the sweep's threads, and the MPI tests
#         (rank 0's worker threads making serialised MPI calls). clang's OpenMP runtime (libomp) reports its
#         synchronisation to TSan through its OMPT tool libarcher; ignore_noninstrumented_modules=1 silences
#         the runtime's own internals (and Open MPI's, and OpenBLAS's libgomp). GCC's libgomp has no such
#         annotations, hence clang here.
# Usage: bash tools/sanitize.sh [asan|tsan|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
# -g1: line tables and function names (inlined frames included), all a sanitizer's stack trace needs; full
# -g costs a third more compile time and memory on the Eigen-heavy files.
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" -DGRADFLOW_NATIVE=OFF
       -DGRADFLOW_BUILD_BENCH=OFF)
if [ "$what" = asan ] || [ "$what" = all ]; then
  cmake -S . -B build-asan "${flags[@]}" -DGRADFLOW_SANITIZE=ON > /dev/null
  cmake --build build-asan -j2
  # Four tests are left to the release run: readme_is_current reruns two full sweeps (846 + 600 cells) only to
  # compare README's numbers, 9 minutes under ASan for engine code the unit tests already cover; plots_smoke
  # runs the Python plot scripts (the run it draws, plots_run_sweep, stays in); two sparse tests check the
  # single-run trust rule against dense eigendecompositions at N = 2000 (known spectra built by dense QR, and
  # Eigen's EigenSolver): 20 s and 25 s in release, 4 and 20+ minutes under ASan, for numerics that the other
  # sparse tests run through the same code at smaller N.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j2 \
      -E '^(readme_is_current|plots_smoke|test_sparse:one Arnoldi run is trusted.*|test_sparse:random sparse W \(N = 1000, 2000\).*)$'
fi
if [ "$what" = tsan ] || [ "$what" = all ]; then
  CXX=clang++ cmake -S . -B build-tsan "${flags[@]}" -DGRADFLOW_SANITIZE_THREAD=ON > /dev/null
  # Exported before the build too: CTest's test discovery runs the test programs at build time.
  export TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1"
  targets=(gradflow_cli test_engine test_sweep test_recurrent_cache)
  mpi=false
  if grep -q "^GRADFLOW_WITH_MPI:BOOL=ON" build-tsan/CMakeCache.txt; then mpi=true; targets+=(test_mpi_sweep); fi
  cmake --build build-tsan -j2 --target "${targets[@]}"
  build-tsan/tests/test_engine
  # The 20-kill trial is left to the ASan run: under TSan it takes minutes and adds no thread coverage.
  build-tsan/tests/test_sweep "~[kill]"
  build-tsan/tests/test_recurrent_cache
  if $mpi; then build-tsan/tests/test_mpi_sweep; fi
fi
