#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "gradflow/run/output.hpp"
#include "gradflow/run/scenario.hpp"

namespace gradflow {

/// How progress is shown on stderr.
enum class ProgressStyle {
  none,      // nothing (--quiet)
  terminal,  // one line redrawn in place (\r) a few times a second
  plain,     // whole lines at most every `plain_interval` seconds (a log file, Slurm's output)
};

struct SweepOptions {
  int threads = 0;                          // 0: all cores (omp_get_num_procs)
  const std::atomic<bool>* stop = nullptr;  // set (by a signal handler) to stop dispatching new cells
  bool progress = false;                    // progress on stderr (done/total, rate, ETA, heartbeat)
  ProgressStyle style = ProgressStyle::terminal;  // how, when `progress`
  double plain_interval = 30.0;                   // seconds between two plain progress lines
};

struct SweepSummary {
  std::int64_t ran = 0;      // cells x replicates computed by this call
  std::int64_t skipped = 0;  // already done (resume)
  std::int64_t failed = 0;
  double seconds = 0.0;
};

/// The (cell, replicate) pairs of the writer's shard not yet done, in (cell, replicate) order; `skipped`
/// receives the number already done.
std::vector<std::pair<std::int64_t, std::int64_t>> pending_work(const Scenario& scenario, const CellSink& writer,
                                                                 std::int64_t* skipped = nullptr);

/// Runs every (cell, replicate) of the sink's shard not yet done in `writer`, in parallel across cells
/// (OpenMP, dynamic schedule, Eigen single-threaded inside each cell); a one-cell run gives its threads to
/// Eigen instead.
/// Results do not depend on the thread count: every cell draws only from its own (seed, cell, replicate)
/// streams. A write failure (WriteError) stops dispatching at once, like `stop`; the writer keeps it
/// (RunWriter::write_error() says which file, why). A cell whose computation throws Interrupted (a stop
/// requested through numerics/interrupt.hpp) is not finished: no row, it stays pending for --resume.
SweepSummary run_sweep(const Scenario& scenario, CellSink& writer, const SweepOptions& options);

}  // namespace gradflow
