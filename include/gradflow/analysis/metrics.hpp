#pragma once

#include <optional>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "gradflow/numerics/activation.hpp"
#include "gradflow/model/config.hpp"
#include "gradflow/engine/engine.hpp"
#include "gradflow/model/spectrum.hpp"

namespace gradflow {

enum class Regime { vanishing, critical, exploding };
std::string to_string(Regime r);
Regime parse_regime(const std::string& name);

/// vanishing: rate < 1 - tol;  critical: 1 - tol <= rate <= 1 + tol;  exploding: rate > 1 + tol.
Regime classify_regime(double growth_rate, double tolerance);
/// The regime per time constant tau of the cell (steps over which its state relaxes): the factor over tau
/// steps, rate^tau, classified with the same tolerance. tau = 1 is classify_regime (vanilla, residual); a
/// leaky cell has tau = 1 / leak. A per-step tolerance alone would call every leaky cell near 1 critical:
/// its per-step factor is 1 - leak (1 - rate') at best.
Regime classify_regime(double growth_rate, double tolerance, double tau);

/// Least-squares fit of log ||g_t|| against the lag k = horizon - t.
struct GrowthFit {
  std::optional<double> growth_rate;  // exp(slope): per-step factor of ||g_t||; unset when not fittable
  double log_slope = 0.0;             // slope in natural log per step
  Eigen::Index first_lag = 0;         // fit window [first_lag, last_lag] in lags
  Eigen::Index last_lag = 0;
  /// Standard error of log_slope: sqrt(se_fit^2 + se_trajectories^2) (see fit_growth_rate); 0 for an exact line
  /// shared by every trajectory.
  double log_slope_se = 0.0;
  /// growth_rate * log_slope_se (delta method); unset with growth_rate.
  std::optional<double> growth_rate_se;
};

/// E[max - min] of B independent standard normals (d_2 of quality control; 0 for B < 2), by quadrature of
/// int 1 - Phi(x)^B - (1 - Phi(x))^B dx.
double expected_normal_range(Eigen::Index b);

/// The window skips the first floor(skip_fraction * K) lags (the transient while g aligns with the
/// dominant direction) and ends at K = horizon, or at the last lag before any trajectory's gradient
/// became exactly zero. Needs two points; when a gradient became exactly zero before that, the rate is 0.
///
/// Its standard error adds two parts in quadrature (conservative: they overlap a little):
///  - the fit: the OLS slope error sqrt(SSR / (n - 2) / Sxx) of the mean log norm, inflated by
///    sqrt((1 + r1) / (1 - r1)) for the lag-1 autocorrelation r1 > 0 of the residuals (a log norm is a
///    random walk around its line, so neighbouring residuals are not independent);
///  - the trajectories: the rate is the mean of B per-trajectory slopes; their spread is estimated from the
///    range of the log norms over trajectories (min, max: sd = range / d_2(B)) at both ends of the window,
///    sd_slope = sqrt(max(0, sd_last^2 - sd_first^2)) / (last - first), and contributes sd_slope / sqrt(B).
GrowthFit fit_growth_rate(const GradientTrace& trace, double skip_fraction);

/// The cell's time constant tau in steps: trace.time_constant when the cell set one, else 1 / s for a cell
/// h_t = (1 - s) h_{t-1} + s f(a_t) with 0 < s < 1 (leaky: tau = 1 / leak), else 1 (vanilla, residual).
double cell_time_constant(const GradientTrace& trace);

/// Every per-cell number of the output contract (cells.csv), computed from one run.
struct CellMetrics {
  double rho = 0.0;                 // spectral radius of W
  double spectral_norm = 0.0;       // ||W||_2
  double mean_abs_dact = 0.0;       // E|f'(a)| over units, steps, trajectories
  double mean_sq_dact = 0.0;        // E[f'(a)^2]
  double sup_dact = 0.0;            // sup_x |f'(x)| of the activation
  // The output contract's heuristics, the same formulas for every cell (W and f: a gated cell's candidate block
  // and nonlinearity), so that a reader can rely on them:
  double predictor = 0.0;           // rho E|f'|  (the textbook heuristic)
  double predictor_rms = 0.0;       // rho sqrt(E[f'^2])  (mean-field factor for random W)
  double bound = 0.0;               // ||W||_2 sup|f'|  (Pascanu et al. 2013 upper bound on ||J_t||)
  // The same three for the cell's own Jacobian. For J_t = c I + s diag(f'(a_t)) W (vanilla c = 0, s = 1, where
  // they equal the three above; residual, leaky: see CellKind) c + s rho E|f'|, sqrt(c^2 + s^2 rho^2 E[f'^2])
  // and c + s ||W||_2 sup|f'|; for a gated cell its CellPredictors (the mean Jacobian's).
  double predictor_cell = 0.0;
  double predictor_rms_cell = 0.0;
  double bound_cell = 0.0;
  GrowthFit fit;                    // growth_rate and its window
  std::optional<double> log10_grad_ratio;  // log10 ||g_0|| - log10 ||g_T|| (means over trajectories)
  Regime regime = Regime::critical;  // judged per time constant (classify_regime with tau)
  double tau = 1.0;                  // the cell's time constant in steps (GradientTrace::time_constant())
  std::optional<Eigen::Index> forward_diverged_at;
  std::optional<Eigen::Index> grad_zero_at;  // largest t at which some trajectory's g_t is exactly zero
  double dead_fraction = 0.0;
  double saturated_fraction = 0.0;
  // Transient growth (non-normal W): the peak of the mean log10 ||g_t|| over lags, relative to the seed.
  std::optional<double> transient_peak;           // max_t log10 ||g_t|| - log10 ||g_T|| (>= 0)
  std::optional<Eigen::Index> transient_peak_lag; // T - t at that maximum (0: no growth above the seed)
};

/// The peak of the mean log10 ||g_t|| over the lags 0..horizon (steps with some non-zero trajectory),
/// relative to the seed at lag 0, and the lag where it is reached (the smallest, on ties). Unset when the
/// trace is empty.
void transient_growth(const GradientTrace& trace, std::optional<double>* peak, std::optional<Eigen::Index>* lag);

/// Regime: from growth_rate when it could be fitted; otherwise vanishing when a gradient became exactly
/// zero and exploding when the forward state diverged first.
CellMetrics compute_metrics(const SpectralInfo& spectrum, const Activation& activation,
                            const GradientTrace& trace, const AnalysisConfig& analysis);

/// Cumulative log10 prediction of the gradient norm along one trajectory from per-step factors:
///     c_t = sum_{s = t+1}^{horizon} log10 factor[s],   t = 0..horizon   (c_horizon = 0),
/// the prediction of log10 ||g_t|| - log10 ||g_horizon|| when each BPTT step g_{s-1} = W^T (f'(a_s) .* g_s)
/// scales the norm by factor[s] (e.g. rho * mean|f'(a_s)|). factor[0] is unused. From the last step with a
/// factor of 0 down to t = 0, c_t = -inf (the prediction is a zero gradient).
std::vector<double> cumulative_log10_prediction(const std::vector<double>& factor);

}  // namespace gradflow
