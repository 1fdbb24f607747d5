#pragma once

#include <cstdint>
#include <string>

#include "gradflow/run/memory.hpp"
#include "gradflow/run/scenario.hpp"
#include "gradflow/run/shard.hpp"

namespace gradflow {

/// The rate the time estimate assumes: multiply-adds count 2 flops; 5e9 flops per second and thread is
/// below every row of BENCHMARKS.md (10.7 GFLOP/s for the slowest, an LSTM at B = 1; 16-67 for the vanilla
/// cells; the default sweep runs at ~30 per thread), so the estimate errs long, by ~4x on the default sweep.
inline constexpr double kEstimateFlopsPerSecond = 5e9;

/// What `gradflow run --dry-run` prints: the size of the run, its peak memory, its output and its time,
/// computed from the scenario alone (nothing is simulated, nothing is written).
struct RunEstimate {
  std::int64_t cells = 0, replicates = 1;
  std::int64_t pairs = 0;  // cells x replicates of the shard
  Shard shard;
  int threads = 1;  // after the memory check (fit_threads)
  std::string threads_note;  // why fewer than asked, or ""
  MemoryPlan memory;
  MemoryLimit limit;
  double cells_csv = 0, series_csv = 0, run_json = 0, heatmaps = 0;  // bytes
  std::int64_t heatmap_files = 0;
  double flops = 0;    // forward, BPTT, tangents and eigen-solves of the shard's cells
  double seconds = 0;  // (flops / kEstimateFlopsPerSecond + per-step and per-row costs) / threads at work
  double total_bytes() const { return cells_csv + series_csv + run_json + heatmaps; }
};

/// Estimates a run of `shard` on `threads` threads under `limit`. Throws InputError (fit_threads) when not
/// even one cell fits.
RunEstimate estimate_run(const Scenario& scenario, const Shard& shard, int threads, const MemoryLimit& limit);

/// The estimate as the lines --dry-run prints (sizes also in bytes, for scripts).
std::string format_estimate(const RunEstimate& estimate);

}  // namespace gradflow
