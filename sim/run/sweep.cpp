#include "gradflow/run/sweep.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>
#include <Eigen/Core>

#include "gradflow/numerics/blas.hpp"
#include "gradflow/numerics/interrupt.hpp"
#include "gradflow/analysis/simulate.hpp"
#include "gradflow/engine/engine.hpp"

namespace gradflow {

namespace {

std::string format_duration(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

/// Progress on stderr from a thread of its own, so that it also moves while every worker is inside a long
/// cell: cells done/total, rate, ETA, and the heartbeat of the computation (interrupt.hpp: phase, step t/T
/// or solver products). On a terminal one line redrawn in place every 0.5 s; otherwise whole lines, at most
/// one per `plain_interval` seconds, plus one at the end.
class Progress {
 public:
  Progress(const SweepOptions& options, std::string label, std::int64_t total, const CellSink& writer)
      : style_(options.progress ? options.style : ProgressStyle::none),
        interval_(style_ == ProgressStyle::terminal ? 0.5 : std::max(0.1, options.plain_interval)),
        label_(std::move(label)), total_(total), already_(writer.done_count()), writer_(writer),
        start_(clock::now()) {
    if (style_ != ProgressStyle::none) thread_ = std::thread([this] { loop(); });
  }
  ~Progress() { end(); }
  /// Stops the display thread; the last line shows the final count.
  void end() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ended_ = true;
    }
    wake_.notify_all();
    thread_.join();
    print(false);
    if (style_ == ProgressStyle::terminal) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  using clock = std::chrono::steady_clock;
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!wake_.wait_for(lock, std::chrono::duration<double>(interval_), [this] { return ended_; })) {
      lock.unlock();
      print(true);
      lock.lock();
    }
  }
  void print(bool running) {
    const std::int64_t done = writer_.done_count();
    const double elapsed = std::chrono::duration<double>(clock::now() - start_).count();
    const double rate = elapsed > 0 ? double(done - already_) / elapsed : 0.0;
    std::string line = "cells " + std::to_string(done) + "/" + std::to_string(total_);
    char buf[96];
    std::snprintf(buf, sizeof buf, "  %.2f cells/s", rate);
    line += buf;
    if (rate > 0 && done < total_) line += "  ETA " + format_duration(double(total_ - done) / rate);
    if (running) {
      const Heartbeat h = last_heartbeat();
      if (h.phase) {
        line += std::string("  [") + h.phase + " " + std::to_string(h.step);
        if (h.total > 0) line += "/" + std::to_string(h.total);
        line += h.total > 0 ? "]" : " products]";
      }
    }
    if (style_ == ProgressStyle::terminal) {
      std::fprintf(stderr, "\r%s   ", line.c_str());
    } else {
      std::fprintf(stderr, "gradflow: %s: %s, %s elapsed\n", label_.c_str(), line.c_str(),
                   format_duration(elapsed).c_str());
    }
    std::fflush(stderr);
  }

  ProgressStyle style_;
  double interval_;
  std::string label_;
  std::int64_t total_, already_;
  const CellSink& writer_;
  clock::time_point start_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool ended_ = false;
  std::thread thread_;
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

  const auto* files = dynamic_cast<const RunWriter*>(&writer);
  Progress progress(options, files ? files->dir().string() : std::string("in memory"), writer.total(), writer);
  // Parallel across cells, or inside the one cell (Eigen's GEMM threads): never both at once.
  // Inside one cell, threads only pay off for large GEMMs: for N^2 B below ~4M multiply-adds per step
  // the fork/join of every step costs more than it saves (measured: N = 256, B = 8 ran 100x slower on a
  // loaded 2-core machine with 2 Eigen threads than with 1).
  // GRADFLOW_PARALLEL=within runs them one after another, each on all the threads (benchmarks: the second
  // replicate of a one-cell scenario timed warm, on the thread count and tape mapping of a one-cell run).
  const char* parallel = std::getenv("GRADFLOW_PARALLEL");
  const bool within = parallel != nullptr && std::string(parallel) == "within";
  const bool across_cells = work.size() > 1 && threads > 1 && !within;
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
  auto run_one = [&](std::int64_t i, std::int64_t& ran_here, std::int64_t& failed_here) {
    if (options.stop && options.stop->load(std::memory_order_relaxed)) return;
    if (write_failed.load(std::memory_order_relaxed)) return;
    const auto [cell, rep] = work[static_cast<std::size_t>(i)];
    try {
      const CellResult result = simulate_cell(scenario.cell_config(cell), cell, rep,
                                              family[static_cast<std::size_t>(cell)], &cache);
      writer.record(cell, rep, result);
      ++ran_here;
    } catch (const WriteError&) {
      write_failed.store(true);
    } catch (const Interrupted&) {
      // Stopped inside the cell: not finished, no row; it stays pending (--resume recomputes it).
    } catch (const std::exception& e) {
      writer.record_failure(cell, rep, e.what());
      ++failed_here;
    }
  };
  if (outer > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(outer) reduction(+ : ran, failed)
    for (std::int64_t i = 0; i < n; ++i) run_one(i, ran, failed);
  } else {
    // Not inside a parallel region of one thread: the GEMM threads' regions of the cell would then be nested
    // ones, and libgomp starts and ends the threads of a nested team at every region (a thread created per
    // product: measured 4000 clone() calls for 2 x 500 steps on two threads), where a top-level team is
    // kept between regions.
    for (std::int64_t i = 0; i < n; ++i) run_one(i, ran, failed);
  }
  set_gemm_threads(saved_threads);
  release_kept_tapes();  // no more cells: the next tape is another run's
  progress.end();
  summary.ran = ran;
  summary.failed = failed;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace gradflow
