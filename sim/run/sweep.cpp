#include "gradflow/run/sweep.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <vector>

#include <omp.h>
#include <Eigen/Core>

#include "gradflow/numerics/blas.hpp"
#include "gradflow/analysis/simulate.hpp"

namespace gradflow {

namespace {

std::string format_duration(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

class Progress {
 public:
  Progress(bool enabled, std::int64_t total, std::int64_t already)
      : enabled_(enabled), total_(total), already_(already), start_(clock::now()), last_(start_) {}
  void tick(std::int64_t done_now) {
    if (!enabled_) return;
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = clock::now();
    if (done_now < total_ && std::chrono::duration<double>(now - last_).count() < 0.2) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? double(done_now - already_) / elapsed : 0.0;
    const double eta = rate > 0 ? double(total_ - done_now) / rate : 0.0;
    std::fprintf(stderr, "\rcells %lld/%lld  %.2f cells/s  ETA %s   ", (long long)done_now, (long long)total_,
                 rate, format_duration(eta).c_str());
    if (done_now == total_) std::fputc('\n', stderr);
    std::fflush(stderr);
  }
  void end() {
    if (enabled_) std::fputc('\n', stderr);
  }

 private:
  using clock = std::chrono::steady_clock;
  bool enabled_;
  std::int64_t total_, already_;
  clock::time_point start_, last_;
  std::mutex mutex_;
};

}  // namespace

std::vector<std::pair<std::int64_t, std::int64_t>> pending_work(const Scenario& scenario, const CellSink& writer,
                                                                 std::int64_t* skipped) {
  std::vector<std::pair<std::int64_t, std::int64_t>> work;
  std::int64_t done = 0;
  for (std::int64_t c = 0; c < scenario.cell_count(); ++c)
    for (std::int64_t r = 0; r < scenario.replicates; ++r) {
      if (!writer.in_shard(c, r)) continue;
      if (writer.is_done(c, r)) ++done;
      else work.emplace_back(c, r);
    }
  if (skipped) *skipped = done;
  return work;
}

SweepSummary run_sweep(const Scenario& scenario, CellSink& writer, const SweepOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const int threads = options.threads > 0 ? options.threads : omp_get_num_procs();

  // Work list: every (cell, replicate) of the writer's shard not yet done, in cell order.
  SweepSummary summary;
  auto work = pending_work(scenario, writer, &summary.skipped);

  // Cells that differ only in spectrum.radius share W's base matrix (Scenario::recurrent_family): run them
  // next to each other, so that a small cache holds the bases in use and each is built and solved once.
  std::vector<std::int64_t> family(static_cast<std::size_t>(scenario.cell_count()));
  for (std::int64_t c = 0; c < scenario.cell_count(); ++c) family[static_cast<std::size_t>(c)] = scenario.recurrent_family(c);
  std::stable_sort(work.begin(), work.end(), [&](const auto& x, const auto& y) {
    const auto fx = family[static_cast<std::size_t>(x.first)], fy = family[static_cast<std::size_t>(y.first)];
    return fx != fy ? fx < fy : x.second < y.second;
  });

  Progress progress(options.progress, writer.total(), writer.done_count());
  // Parallel across cells, or inside the one cell (Eigen's GEMM threads): never both at once.
  // Inside one cell, threads only pay off for large GEMMs: for N^2 B below ~4M multiply-adds per step
  // the fork/join of every step costs more than it saves (measured: N = 256, B = 8 ran 100x slower on a
  // loaded 2-core machine with 2 Eigen threads than with 1).
  const bool across_cells = work.size() > 1 && threads > 1;
  const int outer = across_cells ? threads : 1;
  const Config probe = work.empty() ? scenario.base : scenario.cell_config(work.front().first);
  const double gemm_size = double(probe.network.units) * double(probe.network.units) * double(probe.network.batch);
  const int eigen_threads = across_cells || gemm_size < double(1 << 22) ? 1 : threads;
  const int saved_threads = set_gemm_threads(eigen_threads);
  RecurrentCache cache(static_cast<std::size_t>(2 * outer));

  std::int64_t ran = 0, failed = 0;
  // A row that cannot be written (disk full) stops the run like a signal: no new cells; the writer keeps
  // the error and refuses the rows of cells still in flight, which stay pending for --resume.
  std::atomic<bool> write_failed{false};
  const auto n = static_cast<std::int64_t>(work.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(outer) reduction(+ : ran, failed)
  for (std::int64_t i = 0; i < n; ++i) {
    if (options.stop && options.stop->load(std::memory_order_relaxed)) continue;
    if (write_failed.load(std::memory_order_relaxed)) continue;
    const auto [cell, rep] = work[static_cast<std::size_t>(i)];
    try {
      const CellResult result = simulate_cell(scenario.cell_config(cell), cell, rep,
                                              family[static_cast<std::size_t>(cell)], &cache);
      writer.record(cell, rep, result);
      ++ran;
    } catch (const WriteError&) {
      write_failed.store(true);
    } catch (const std::exception& e) {
      writer.record_failure(cell, rep, e.what());
      ++failed;
    }
    progress.tick(writer.done_count());
  }
  set_gemm_threads(saved_threads);
  summary.ran = ran;
  summary.failed = failed;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace gradflow
