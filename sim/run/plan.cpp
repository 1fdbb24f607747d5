#include "gradflow/run/plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "gradflow/run/output.hpp"

namespace gradflow {

namespace {

// Average text widths, measured on gradflow's output (a number in shortest round-trip form is up to ~20
// characters, but many fields are short: integers, names, empty; scenarios/default.toml and a 1 GB series).
constexpr double kCellsFieldBytes = 11.0;   // per cells.csv field, comma included
constexpr double kSeriesFieldBytes = 13.0;  // per series.csv field, comma included
constexpr double kRunJsonFixed = 8000.0;    // run.json without its per-cell parts: the resolved scenario
constexpr double kRunJsonPerCell = 75.0;    // a cell's status entry, as dump(2) writes it
constexpr double kRunJsonPerAxisValue = 1000.0;  // verdicts: each predictor's agreement at each axis value
// Work that is not flops: a step's fixed cost per trajectory (forward and backward) and a series row's
// formatting and writing, measured on a loaded 2-core machine (tiny cells, where they dominate).
constexpr double kSecondsPerStep = 2e-6;
constexpr double kSecondsPerSeriesRow = 15e-6;
// A cell's fixed cost (building W, U and b, the solves of a tiny W, the metrics, its rows): 1e6 cells of
// N = 2 ran at ~1,400 cells/s on one loaded thread.
constexpr double kSecondsPerCell = 1e-3;
// Products of an eigen-solve (Arnoldi for rho, Lanczos for ||W||_2, restarts included), once per W family.
constexpr double kSolveProducts = 2000.0;
// Cells sampled for the flop count of a very large sweep (evenly spaced; the sum is scaled up).
constexpr std::int64_t kMaxSampledCells = 1000000;

double stacked_blocks(CellKind k) { return k == CellKind::minimalrnn ? 2.0 : double(gate_blocks(k)); }

/// Flops of one cell x replicate: the recurrent products of the forward pass (burn-in + T steps), BPTT
/// (T steps) and the tangent vectors (k per trajectory), 2 per multiply-add.
double cell_flops(const Config& c) {
  const double product = 2.0 * expected_nonzeros(c) * stacked_blocks(c.network.cell);
  const double b = double(c.network.batch), t = double(c.network.steps);
  const double k = double(c.analysis.lyapunov);
  return product * b * (double(c.analysis.burn_in) + t + t + k * t);
}

}  // namespace

RunEstimate estimate_run(const Scenario& sc, const Shard& shard, int threads, const MemoryLimit& limit) {
  RunEstimate e;
  e.cells = sc.cell_count();
  e.replicates = sc.replicates;
  e.shard = shard;
  e.pairs = shard.size(e.cells, e.replicates);
  e.limit = limit;
  e.threads = fit_threads(sc, threads, limit, &e.threads_note);
  e.memory = memory_plan(sc, e.threads);
  const double share = double(e.pairs) / (double(e.cells) * double(e.replicates));

  // Flops and series rows, summed over the cells (a sample of them for a very large sweep).
  const std::int64_t stride = std::max<std::int64_t>(1, e.cells / kMaxSampledCells);
  std::vector<char> family_seen(static_cast<std::size_t>(e.cells), 0);
  double flops = 0, solves = 0, series_rows = 0, steps = 0, sampled = 0;
  for (std::int64_t cell = 0; cell < e.cells; cell += stride) {
    const Config c = sc.cell_config(cell);
    sampled += 1;
    flops += cell_flops(c) * double(e.replicates);
    series_rows += double(c.network.steps + 1) * double(e.replicates);
    steps += double(c.analysis.burn_in + 2 * c.network.steps) * double(c.network.batch) * double(e.replicates);
    auto& seen = family_seen[static_cast<std::size_t>(sc.recurrent_family(cell))];
    if (!seen) {
      seen = 1;
      solves += kSolveProducts * 2.0 * expected_nonzeros(c) * double(e.replicates);
    }
  }
  const double scale = double(e.cells) / sampled * share;
  e.flops = (flops + solves) * scale;

  const double cells_fields = double(cell_columns(sc).size());
  e.cells_csv = cells_fields * kCellsFieldBytes * (1.0 + double(e.pairs));
  if (sc.base.analysis.series) {
    const double fields = double(series_columns(sc).size());
    e.series_csv = fields * kSeriesFieldBytes * (1.0 + series_rows * scale);
  }
  double axis_values = 0;
  for (const auto& a : sc.axes) axis_values += double(a.values.size());
  e.run_json = kRunJsonFixed + kRunJsonPerCell * double(e.pairs) + kRunJsonPerAxisValue * axis_values;
  if (const auto grid = heatmap_axes(sc); grid && shard.whole()) {
    const double nx = double(sc.axes[grid->x].values.size()), ny = double(sc.axes[grid->y].values.size());
    e.heatmap_files = static_cast<std::int64_t>(6 * grid->facets);  // 5 metrics and growth_rate's sd
    e.heatmaps = double(e.heatmap_files) * (200.0 + 10.0 * (nx + ny) + kSeriesFieldBytes * nx * ny);
  }
  // Threads at work: one cell each; a lone large cell gives them to its GEMMs (README "Sweeps").
  const Config& base = sc.base;
  const double gemm = double(base.network.units) * double(base.network.units) * double(base.network.batch);
  const double at_work = e.pairs > 1 ? std::min<double>(e.threads, double(e.pairs))
                                     : (gemm >= double(1 << 22) ? e.threads : 1);
  const double per_row = sc.base.analysis.series ? kSecondsPerSeriesRow : 0.0;
  const double overhead = double(e.pairs) * kSecondsPerCell + (steps * kSecondsPerStep + series_rows * per_row) * scale;
  e.seconds = (e.flops / kEstimateFlopsPerSecond + overhead) / std::max(1.0, at_work);
  return e;
}

namespace {

std::string with_bytes(double bytes) {
  char buf[48];
  std::snprintf(buf, sizeof buf, " (%.0f bytes)", bytes);
  return format_bytes(bytes) + buf;
}

std::string duration(double s) {
  char buf[48];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1f s", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  else if (s < 86400 * 2) std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  else std::snprintf(buf, sizeof buf, "%.1f days", s / 86400);
  return buf;
}

}  // namespace

std::string format_estimate(const RunEstimate& e) {
  const MemoryPlan& m = e.memory;
  std::string out;
  out += "cells:     " + std::to_string(e.cells) + " cells x " + std::to_string(e.replicates) + " replicates = " +
         std::to_string(e.cells * e.replicates) + " runs";
  if (!e.shard.whole()) out += ", of which shard " + e.shard.str() + " holds " + std::to_string(e.pairs);
  out += "\nthreads:   " + std::to_string(e.threads) + " (" + std::to_string(m.threads) + " cells at once)";
  if (!e.threads_note.empty()) out += "; " + e.threads_note;
  out += "\nmemory:    per cell " + with_bytes(m.per_cell) + "; peak " + with_bytes(m.peak()) + " = " +
         "bookkeeping " + format_bytes(m.bookkeeping) + " + the larger of " + std::to_string(m.threads) +
         " x cell + W cache " + format_bytes(m.cache) + " and completing " + format_bytes(m.completion) + "; limit " + format_bytes(e.limit.bytes) + " (" + e.limit.source + ")";
  out += "\noutput:    cells.csv " + with_bytes(e.cells_csv);
  if (e.series_csv > 0) out += ", series.csv " + with_bytes(e.series_csv);
  out += ", run.json " + with_bytes(e.run_json);
  if (e.heatmap_files > 0)
    out += ", heatmaps/ " + std::to_string(e.heatmap_files) + " files " + with_bytes(e.heatmaps);
  out += "; total " + with_bytes(e.total_bytes()) + " (estimated, +/- 50 %; summary.csv and report.html add a few hundred kB)";
  char flops[32];
  std::snprintf(flops, sizeof flops, "%.3g", e.flops);
  out += "\ntime:      about " + duration(e.seconds) + " (" + flops + " flops of forward passes, BPTT and "
         "eigen-solves at a conservative 5 GFLOP/s per thread at work, plus 1 ms per cell, 2 us per step and "
         "trajectory and 15 us per series row; expect less)\n";
  return out;
}

}  // namespace gradflow
