#include "gradflow/analysis/metrics.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <unordered_map>

namespace gradflow {

std::string to_string(Regime r) {
  switch (r) {
    case Regime::vanishing: return "vanishing";
    case Regime::critical: return "critical";
    case Regime::exploding: return "exploding";
  }
  return "unknown";
}

Regime parse_regime(const std::string& name) {
  if (name == "vanishing") return Regime::vanishing;
  if (name == "critical") return Regime::critical;
  if (name == "exploding") return Regime::exploding;
  throw std::invalid_argument("unknown regime \"" + name + "\": expected vanishing, critical or exploding");
}

Regime classify_regime(double growth_rate, double tolerance) {
  if (growth_rate < 1.0 - tolerance) return Regime::vanishing;
  if (growth_rate > 1.0 + tolerance) return Regime::exploding;
  return Regime::critical;
}

Regime classify_regime(double growth_rate, double tolerance, double tau) {
  if (tau == 1.0) return classify_regime(growth_rate, tolerance);
  return classify_regime(std::pow(growth_rate, tau), tolerance);
}

double cell_time_constant(const GradientTrace& trace) {
  if (trace.time_constant > 0) return trace.time_constant;
  const double c = trace.carry, s = trace.drive_scale;
  if (s > 0 && s < 1 && std::abs(c + s - 1.0) < 1e-12) return 1.0 / s;
  return 1.0;
}

namespace {

/// int_{-L}^{L} 1 - Phi^B - (1 - Phi)^B dx by the trapezoid rule: the integrand is 2 Phi(-|x|)-small beyond
/// |x| = 9 for B <= 1e6.
double normal_range_quadrature(Eigen::Index b) {
  const double lim = 9.0, h = 1e-3;
  const double bd = static_cast<double>(b);
  double sum = 0.0;
  for (double x = -lim; x <= lim + h / 2; x += h) {
    const double phi = 0.5 * std::erfc(-x / std::sqrt(2.0));
    const double w = (std::abs(x) > lim - h / 2) ? 0.5 : 1.0;
    sum += w * (1.0 - std::pow(phi, bd) - std::pow(1.0 - phi, bd));
  }
  return sum * h;
}

}  // namespace

double expected_normal_range(Eigen::Index b) {
  if (b < 2) return 0.0;
  // Once per B and thread: the quadrature's 18001 points (two pow and an erfc each) cost ~3 % of the default
  // sweep's time when every cell ran them again for the same B.
  thread_local std::unordered_map<Eigen::Index, double> known;
  const auto [it, inserted] = known.try_emplace(b, 0.0);
  if (inserted) it->second = normal_range_quadrature(b);
  return it->second;
}

GrowthFit fit_growth_rate(const GradientTrace& trace, double skip_fraction) {
  using Eigen::Index;
  constexpr double kLn10 = 2.302585092994045684;
  const Index horizon = trace.horizon;
  GrowthFit fit;
  if (horizon < 1 || trace.log10_norm_mean.size() != static_cast<std::size_t>(horizon + 1)) return fit;

  // Last usable lag: before the first t (going backwards from the horizon) with a zero gradient.
  Index last = horizon;
  bool hit_zero = false;
  for (Index k = 0; k <= horizon; ++k) {
    if (trace.zero_count[horizon - k] > 0) {
      last = k - 1;
      hit_zero = true;
      break;
    }
  }
  Index first = static_cast<Index>(std::floor(skip_fraction * static_cast<double>(last)));
  if (last - first < 1) first = std::max<Index>(0, last - 1);
  if (last - first < 1) {
    if (hit_zero) fit.growth_rate = 0.0;  // annihilated before two points: nothing survives
    return fit;
  }
  // Ordinary least squares of y_k = ln ||g_{horizon-k}|| on k, centred for accuracy.
  const double count = static_cast<double>(last - first + 1);
  double k_mean = 0.0, y_mean = 0.0;
  for (Index k = first; k <= last; ++k) {
    k_mean += static_cast<double>(k);
    y_mean += trace.log10_norm_mean[horizon - k] * kLn10;
  }
  k_mean /= count;
  y_mean /= count;
  double sxy = 0.0, sxx = 0.0;
  for (Index k = first; k <= last; ++k) {
    const double dk = static_cast<double>(k) - k_mean;
    sxy += dk * (trace.log10_norm_mean[horizon - k] * kLn10 - y_mean);
    sxx += dk * dk;
  }
  fit.log_slope = sxy / sxx;
  fit.first_lag = first;
  fit.last_lag = last;

  // Standard error, part 1: the fit, residuals corrected for their lag-1 autocorrelation.
  double ssr = 0.0, lag1 = 0.0, prev = 0.0;
  for (Index k = first; k <= last; ++k) {
    const double r = trace.log10_norm_mean[horizon - k] * kLn10 - y_mean - fit.log_slope * (double(k) - k_mean);
    ssr += r * r;
    if (k > first) lag1 += r * prev;
    prev = r;
  }
  double var_fit = 0.0;
  if (count > 2 && ssr > 0) {
    var_fit = ssr / (count - 2.0) / sxx;
    const double r1 = std::min(0.99, lag1 / ssr);
    if (r1 > 0) var_fit *= (1.0 + r1) / (1.0 - r1);
  }
  // Part 2: the spread of the per-trajectory slopes, from the range of the log norms over trajectories.
  double var_traj = 0.0;
  const Index live = trace.batch - (trace.zero_count.empty() ? 0 : trace.zero_count[horizon - last]);
  const double d2 = expected_normal_range(live);
  if (d2 > 0 && trace.log10_norm_min.size() == trace.log10_norm_mean.size() &&
      trace.log10_norm_max.size() == trace.log10_norm_mean.size()) {
    auto sd = [&](Index k) {
      const auto t = static_cast<std::size_t>(horizon - k);
      return (trace.log10_norm_max[t] - trace.log10_norm_min[t]) * kLn10 / d2;
    };
    const double s_last = sd(last), s_first = sd(first);
    const double var_slope = std::max(0.0, s_last * s_last - s_first * s_first) / double((last - first) * (last - first));
    var_traj = var_slope / static_cast<double>(live);
  }
  fit.log_slope_se = std::sqrt(var_fit + var_traj);

  const double rate = std::exp(fit.log_slope);
  if (std::isfinite(rate)) {
    fit.growth_rate = rate;
    if (std::isfinite(fit.log_slope_se)) fit.growth_rate_se = rate * fit.log_slope_se;
  }
  return fit;
}

void transient_growth(const GradientTrace& trace, std::optional<double>* peak, std::optional<Eigen::Index>* lag) {
  peak->reset();
  lag->reset();
  const Eigen::Index h = trace.horizon;
  if (trace.log10_norm_mean.size() != static_cast<std::size_t>(h + 1) || trace.zero_count.empty() ||
      trace.zero_count[static_cast<std::size_t>(h)] >= trace.batch)
    return;
  const double seed = trace.log10_norm_mean[static_cast<std::size_t>(h)];
  double best = 0.0;
  Eigen::Index best_lag = 0;
  for (Eigen::Index k = 1; k <= h; ++k) {
    const auto t = static_cast<std::size_t>(h - k);
    if (trace.zero_count[t] >= trace.batch) break;  // every trajectory annihilated: nothing left to grow
    const double rel = trace.log10_norm_mean[t] - seed;
    if (rel > best) best = rel, best_lag = k;
  }
  *peak = best;
  *lag = best_lag;
}

CellMetrics compute_metrics(const SpectralInfo& spectrum, const Activation& activation,
                            const GradientTrace& trace, const AnalysisConfig& analysis) {
  CellMetrics m;
  m.rho = spectrum.rho;
  m.spectral_norm = spectrum.spectral_norm;
  m.mean_abs_dact = trace.mean_abs_dact;
  m.mean_sq_dact = trace.mean_sq_dact;
  m.sup_dact = activation.sup_abs_derivative();
  // The contract's heuristics, with W and f' alone whatever the cell (rho sqrt(E[f'^2]) as the root of
  // rho^2 E[f'^2]: the bits 0.4.0 wrote for vanilla cells).
  m.predictor = m.rho * m.mean_abs_dact;
  m.predictor_rms = std::sqrt(m.rho * m.rho * m.mean_sq_dact);
  m.bound = m.spectral_norm * m.sup_dact;
  // The cell's Jacobian J_t = c I + s D_t W: the heuristics with D_t replaced by its mean (predictor_cell), its
  // mean-field second moment with the cross term 2 c s <g, D W g> averaging out for random W
  // (predictor_rms_cell), and the triangle inequality (bound_cell). Vanilla (c = 0, s = 1) gives the contract
  // formulas to the bit. A cell with its own predictors (gated cells) brings them in the trace.
  if (trace.cell_predictors) {
    m.predictor_cell = trace.cell_predictors->predictor;
    m.predictor_rms_cell = trace.cell_predictors->predictor_rms;
    m.bound_cell = trace.cell_predictors->bound;
  } else {
    const double c = trace.carry, s = trace.drive_scale;
    m.predictor_cell = c + s * m.rho * m.mean_abs_dact;
    m.predictor_rms_cell = std::sqrt(c * c + s * s * m.rho * m.rho * m.mean_sq_dact);
    m.bound_cell = c + s * m.spectral_norm * m.sup_dact;
  }
  m.fit = fit_growth_rate(trace, analysis.fit_skip);
  m.forward_diverged_at = trace.forward_diverged_at;
  m.dead_fraction = trace.dead_fraction;
  m.saturated_fraction = trace.saturated_fraction;

  const auto h = static_cast<std::size_t>(trace.horizon);
  if (!trace.zero_count.empty() && trace.zero_count[0] < trace.batch && trace.zero_count[h] < trace.batch)
    m.log10_grad_ratio = trace.log10_norm_mean[0] - trace.log10_norm_mean[h];
  for (std::size_t t = h + 1; t-- > 0;) {
    if (trace.zero_count[t] > 0) {
      m.grad_zero_at = static_cast<Eigen::Index>(t);
      break;
    }
  }

  transient_growth(trace, &m.transient_peak, &m.transient_peak_lag);

  m.tau = cell_time_constant(trace);
  if (m.fit.growth_rate) {
    m.regime = classify_regime(*m.fit.growth_rate, analysis.regime_tolerance, m.tau);
  } else if (m.grad_zero_at) {
    m.regime = Regime::vanishing;
  } else {
    m.regime = Regime::exploding;  // no window at all: only a forward divergence during burn-in does this
  }
  return m;
}

std::vector<double> cumulative_log10_prediction(const std::vector<double>& factor) {
  if (factor.empty()) return {};
  const std::size_t horizon = factor.size() - 1;
  std::vector<double> c(horizon + 1, 0.0);
  for (std::size_t t = horizon; t-- > 0;) {
    const double f = factor[t + 1];
    c[t] = f > 0 ? c[t + 1] + std::log10(f) : -std::numeric_limits<double>::infinity();
  }
  return c;
}

}  // namespace gradflow
