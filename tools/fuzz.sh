#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a bounded time on a seed corpus
# from scenarios/ and tests/bad_inputs/. Crashes are saved as build-fuzz/crash-*; turn each into a
# regression test (a file in tests/bad_inputs/ or a case in tests/test_matrix_io.cpp).
# Usage: bash tools/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=build-fuzz
# -g1 as in tools/sanitize.sh: line tables and function names are all a crash's stack trace needs.
CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
  -DGRADFLOW_FUZZ=ON -DGRADFLOW_BUILD_TESTS=OFF -DGRADFLOW_NATIVE=OFF > /dev/null
cmake --build "$build" -j2 --target fuzz_scenario fuzz_npy fuzz_mtx
corpus=$build/corpus
rm -rf "$corpus"
mkdir -p "$corpus"/{scenario,npy,mtx}
cp scenarios/*.toml tests/bad_inputs/*.toml tests/data/*.toml "$corpus/scenario/"
cp tests/bad_inputs/data/*.npy "$corpus/npy/"
cp tests/bad_inputs/data/*.mtx "$corpus/mtx/"
status=0
for t in scenario npy mtx; do
  echo "fuzz: fuzz_$t for ${seconds}s"
  # -rss_limit_mb: a scenario may legitimately ask for big matrices; the loader's own checks keep it bounded.
  # -max_len: 1 MB, so that inputs as large as the ones that broke toml++ (a 100 KB key of 40,000 dotted
  # segments overflowed its stack) are within reach; the 80 KB catalogue case seeds the corpus.
  # -seed: a fixed mutation sequence (GRADFLOW_FUZZ_SEED to explore another), so that CI runs differ only in
  # how far the time bound lets them get, not in what they try first.
  if ! (cd "$build" && tests/fuzz/fuzz_$t -seed="${GRADFLOW_FUZZ_SEED:-1}" -max_total_time="$seconds" \
        -max_len=1048576 -timeout=20 -rss_limit_mb=4096 \
        -print_final_stats=1 "corpus/$t" > "fuzz_$t.log" 2>&1); then
    echo "fuzz: fuzz_$t found a problem:"; tail -40 "$build/fuzz_$t.log"; status=1
  else
    grep -E "stat::number_of_executed_runs|cov:" "$build/fuzz_$t.log" | tail -2
  fi
done
exit $status
