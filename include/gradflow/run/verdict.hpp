#pragma once

#include <cstdint>
#include <filesystem>
#include <istream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gradflow/analysis/metrics.hpp"
#include "gradflow/run/scenario.hpp"

namespace gradflow {

/// One predictor of the per-step gradient factor, judged against the measured regime.
struct PredictorSpec {
  std::string name;    // as reported: "predictor", "lyapunov_max", ...
  std::string column;  // cells.csv column holding it
  bool log = false;    // the column is a log per step (lyapunov_max): its factor is exp(value)
  std::string formula; // what it is, for the summary
};

/// The predictors judged when their column exists: predictor, predictor_cell, predictor_rms,
/// predictor_rms_cell, mf_growth, bound, bound_cell, lyapunov_max (as exp), in that order (the *_cell columns:
/// the same heuristics for the cell's own Jacobian, written for residual, leaky and gated cells).
const std::vector<PredictorSpec>& verdict_predictors();

/// The regime a predicted per-step factor implies, by the same rule as the measured one
/// (classify_regime with the cell's analysis.regime_tolerance and time constant tau, cells.csv column tau).
inline Regime predicted_regime(double factor, double tolerance, double tau = 1.0) {
  return classify_regime(factor, tolerance, tau);
}

/// Verdicts over a finished cells.csv: for each predictor whose column exists, over every row (cell x
/// replicate) with a value, how often the regime of its factor equals the measured `regime` column:
///
///   {"rows", "rule", "predictors": [{"name", "column", "formula", "compared", "agree", "agreement",
///     "unavailable", "confusion": {predicted: {measured: count}}, "by_axis": {axis: [{"value", "compared",
///     "agree", "agreement"}]}, "disagreements": [{"cell", "replicate", "values", "predicted", "measured",
///     "factor", "growth_rate"}], "disagreements_total", "disagreements_truncated"}]}
///
/// An empty lyapunov_max with lyapunov_status "annihilated" is a factor of 0 (vanishing). At most
/// `max_listed` disagreements are listed per predictor. Throws std::runtime_error when the file cannot be
/// read or lacks the cell, replicate or regime column.
nlohmann::json compute_verdicts(const Scenario& scenario, const std::filesystem::path& cells_csv,
                                std::size_t max_listed = 1000);

/// The same over cells.csv text read from `in` (`source` names it in messages), e.g. a run held in memory.
nlohmann::json compute_verdicts(const Scenario& scenario, std::istream& in, const std::string& source,
                                std::size_t max_listed = 1000);

/// A few lines for the terminal: agree/compared and % per predictor, and the commonest disagreement.
std::string format_verdicts(const nlohmann::json& verdicts);

}  // namespace gradflow
