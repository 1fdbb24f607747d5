#pragma once
// OUTDIR/report.html: one self-contained page of a finished run (figures inline as SVG, no network
// references): the scenario, heatmaps of the measured and predicted per-step factors, gradient-norm series of
// chosen cells, the eigenvalues of a W, the predictor verdicts, the summary with its intervals (summary.csv,
// when the run has one) and the run's metadata.

#include <filesystem>

namespace gradflow {

/// Writes OUTDIR/report.html (atomically) from OUTDIR/run.json, cells.csv, series.csv and summary.csv, and
/// returns its path. The eigenvalue picture rebuilds W of one cell from run.json's scenario_file when that
/// file still describes the run (same scenario hash) and N <= 2000; the page says so otherwise. Throws
/// InputError when OUTDIR holds no run.json or cells.csv, WriteError when report.html cannot be written.
std::filesystem::path write_report(const std::filesystem::path& outdir);

}  // namespace gradflow
