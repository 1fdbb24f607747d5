#pragma once
// The answer of a sweep: where each measured or predicted per-step factor crosses 1 along one axis, with a
// 95 % interval from the replicates (summary.csv, `gradflow summary`, the console summary of every run).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gradflow {

struct SummaryOptions {
  std::string along;                 // axis to cross along; "" = spectrum.radius when swept, else the first numeric axis
  std::int64_t resamples = 2000;     // bootstrap resamples of the replicates
  std::uint64_t seed = 0x5eed5eedULL;  // the bootstrap's own stream: the same cells.csv gives the same summary
  double level = 0.95;               // coverage of [critical_lo, critical_hi]
};

/// Where one quantity crosses 1 along the axis, for one row (one combination of the other axes' values).
struct Crossing {
  std::vector<std::string> row;  // the other axes' values, as in cells.csv
  std::string quantity;          // growth_rate, predictor, predictor_rms, mf_growth, bound, exp(lyapunov_max), ...
  std::optional<double> critical;          // first crossing of the replicate-mean curve (linear interpolation)
  std::optional<double> lo, hi;            // percentile interval of the crossing over bootstrap resamples
  std::int64_t replicates = 0;             // replicates per grid point (the fewest)
  std::int64_t crossings = 0;              // sign changes of (mean - 1) along the axis
  std::string interval;                    // "bootstrap" (replicates >= 2), "fit" (one replicate, quantity_se), ""
  std::string reason;                      // why critical or its interval is empty; "" when both are there
};

/// One quantity of a one-cell run: mean over replicates and its standard error.
struct CellValue {
  std::string quantity;
  double mean = 0.0;
  std::optional<double> se;  // sd / sqrt(n) over replicates, or the quantity's _se column for one replicate
  std::int64_t count = 0;
};

struct Summary {
  std::string along;                   // "" when no numeric axis exists
  std::vector<std::string> row_axes;   // the other axes, in cells.csv order
  std::vector<Crossing> crossings;     // rows x quantities, in sweep order
  // One-cell runs (no sweep axis): each quantity's value with its uncertainty and the measured regime(s).
  std::vector<CellValue> values;
  std::string regime;                  // "critical", or "critical (2 of 3), exploding (1 of 3)"
  nlohmann::json verdicts;             // run.json "verdicts" when known (printed as the verdict table)
};

/// The quantities judged, in order: growth_rate (measured), then the predictors of verdict_predictors() whose
/// column exists (a cell's own predictor_cell, predictor_rms_cell, bound_cell among them), then any other column
/// named predictor_*. lyapunov_max is
/// judged as exp(lyapunov_max). A quantity is a per-step factor of ||g_t|| (per time constant or per step:
/// crossing 1 is the same point either way, factor^tau = 1 iff factor = 1).
///
/// Reads cells.csv (axes are the columns between `replicate` and `rho`). Along the axis, for each row, the
/// replicate-mean curve's first crossing of 1 is interpolated linearly between neighbouring grid values;
/// [lo, hi] is the central `level` percentile interval of the crossings of `resamples` curves, each the mean
/// of replicates drawn with replacement (one replicate: each point drawn from N(value, value_se^2) when a
/// <quantity>_se column exists). A resample that does not cross lies past the grid's end on its side; an
/// interval reaching past the grid is left empty with the reason. Throws InputError for an unknown or
/// non-numeric `along`, std::runtime_error when cells.csv cannot be read.
Summary compute_summary(const std::filesystem::path& cells_csv, const SummaryOptions& options = {});
/// The same from cells.csv's text (a run kept in memory: MemorySink::cells_csv()).
Summary compute_summary_text(const std::string& cells_csv_text, const SummaryOptions& options = {});
/// The same from cells.csv's whole lines, header first; `cells_csv` names the source in messages.
Summary summary_of_lines(const std::vector<std::string>& lines, const std::filesystem::path& cells_csv,
                         const SummaryOptions& options = {});

/// summary.csv: the other axes' columns, along, quantity, critical, critical_lo, critical_hi, replicates,
/// crossings, interval, reason.
std::string summary_csv(const Summary& summary);
nlohmann::json summary_json(const Summary& summary);
/// For the terminal: the crossings table (growth_rate and every predictor per row), or for a one-cell run
/// growth_rate +- its standard error, the regime and every predictor; then the verdict table when known.
std::string format_summary(const Summary& summary);

/// Computes the summary of a finished OUTDIR's cells.csv and writes OUTDIR/summary.csv atomically; returns it.
/// `verdicts` is the verdict table to carry; null: read from OUTDIR/run.json when it has one.
Summary write_summary(const std::filesystem::path& outdir, const SummaryOptions& options = {},
                      const nlohmann::json& verdicts = nullptr);

}  // namespace gradflow
