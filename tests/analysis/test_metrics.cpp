#include <cmath>

#include <catch2/catch.hpp>

#include "gradflow/analysis/metrics.hpp"
#include "gradflow/engine/engine.hpp"
#include "gradflow/model/network.hpp"

using namespace gradflow;

namespace {

/// A trace whose mean log10 norm is exactly a + b * lag.
GradientTrace straight_trace(Eigen::Index horizon, double a, double b_per_lag) {
  GradientTrace tr;
  tr.batch = 2;
  tr.horizon = horizon;
  for (Eigen::Index t = 0; t <= horizon; ++t) {
    const double v = a + b_per_lag * double(horizon - t);
    tr.log10_norm_mean.push_back(v);
    tr.log10_norm_min.push_back(v);
    tr.log10_norm_max.push_back(v);
    tr.zero_count.push_back(0);
  }
  tr.mean_abs_dact_t.assign(horizon + 1, 0.5);
  return tr;
}

}  // namespace

TEST_CASE("growth fit recovers an exact exponential rate", "[metrics]") {
  for (double rate : {0.5, 0.99, 1.0, 1.7}) {
    const GradientTrace tr = straight_trace(100, 0.3, std::log10(rate));
    const GrowthFit fit = fit_growth_rate(tr, 0.1);
    REQUIRE(fit.growth_rate);
    CHECK(*fit.growth_rate == Approx(rate).epsilon(1e-12));
    CHECK(fit.first_lag == 10);
    CHECK(fit.last_lag == 100);
  }
}

TEST_CASE("growth fit skips the transient", "[metrics]") {
  GradientTrace tr = straight_trace(100, 0.0, std::log10(1.2));
  for (Eigen::Index k = 0; k < 10; ++k) tr.log10_norm_mean[100 - k] += 5.0;  // garbage in the first lags
  const GrowthFit fit = fit_growth_rate(tr, 0.1);
  REQUIRE(fit.growth_rate);
  CHECK(*fit.growth_rate == Approx(1.2).epsilon(1e-12));
}

TEST_CASE("growth fit stops before an exactly zero gradient and reports 0 when nothing is left",
          "[metrics]") {
  GradientTrace tr = straight_trace(50, 0.0, std::log10(0.8));
  for (Eigen::Index t = 0; t <= 20; ++t) tr.zero_count[t] = 1;
  GrowthFit fit = fit_growth_rate(tr, 0.1);
  REQUIRE(fit.growth_rate);
  CHECK(fit.last_lag == 50 - 21);
  CHECK(*fit.growth_rate == Approx(0.8).epsilon(1e-12));

  GradientTrace dead = straight_trace(5, 0.0, 0.0);
  for (Eigen::Index t = 0; t <= 4; ++t) dead.zero_count[t] = 2;
  fit = fit_growth_rate(dead, 0.1);
  REQUIRE(fit.growth_rate);
  CHECK(*fit.growth_rate == 0.0);
}

TEST_CASE("regimes split at 1 - tol and 1 + tol", "[metrics]") {
  CHECK(classify_regime(0.98, 0.01) == Regime::vanishing);
  CHECK(classify_regime(0.99, 0.01) == Regime::critical);
  CHECK(classify_regime(1.0, 0.01) == Regime::critical);
  CHECK(classify_regime(1.01, 0.01) == Regime::critical);
  CHECK(classify_regime(1.02, 0.01) == Regime::exploding);
  for (Regime r : {Regime::vanishing, Regime::critical, Regime::exploding}) CHECK(parse_regime(to_string(r)) == r);
}

TEST_CASE("predictors are rho E|f'|, rho sqrt(E f'^2) and ||W||_2 sup|f'|", "[metrics]") {
  GradientTrace tr = straight_trace(20, 0.0, std::log10(0.9));
  tr.mean_abs_dact = 0.6;
  tr.mean_sq_dact = 0.49;
  SpectralInfo si;
  si.rho = 1.5;
  si.spectral_norm = 2.5;
  const CellMetrics m = compute_metrics(si, Activation(ActivationKind::sigmoid), tr, AnalysisConfig{});
  CHECK(m.predictor == Approx(0.9));
  CHECK(m.predictor_rms == Approx(1.05));
  CHECK(m.bound == Approx(2.5 * 0.25));
  CHECK(m.sup_dact == 0.25);
  REQUIRE(m.log10_grad_ratio);
  CHECK(*m.log10_grad_ratio == Approx(20 * std::log10(0.9)));
  CHECK(m.regime == Regime::vanishing);
}

TEST_CASE("cumulative log10 prediction sums log10 factor[s] for s > t and is -inf below a zero factor",
          "[metrics][series]") {
  const std::vector<double> factor{0.0 /* unused */, 2.0, 0.5, 10.0};
  const std::vector<double> c = cumulative_log10_prediction(factor);
  REQUIRE(c.size() == 4);
  CHECK(c[3] == 0.0);
  CHECK(c[2] == Approx(1.0).epsilon(1e-15));
  CHECK(c[1] == Approx(1.0 + std::log10(0.5)).epsilon(1e-15));
  CHECK(c[0] == Approx(1.0 + std::log10(0.5) + std::log10(2.0)).margin(1e-15));
  const std::vector<double> dead = cumulative_log10_prediction({0.0, 1.5, 0.0, 3.0});
  CHECK(dead[3] == 0.0);
  CHECK(dead[2] == Approx(std::log10(3.0)).epsilon(1e-15));
  CHECK(std::isinf(dead[1]));
  CHECK(std::isinf(dead[0]));
  CHECK(dead[0] < 0);
  CHECK(cumulative_log10_prediction({}).empty());
}

// ---- Standard error of growth_rate (issue 16) ----


TEST_CASE("expected range of B standard normals: closed forms d2(2) = 2/sqrt(pi), d2(3) = 3/sqrt(pi)",
          "[metrics][se]") {
  const double pi = std::acos(-1.0);
  CHECK(expected_normal_range(1) == 0.0);
  CHECK(expected_normal_range(2) == Approx(2.0 / std::sqrt(pi)).epsilon(1e-9));
  CHECK(expected_normal_range(3) == Approx(3.0 / std::sqrt(pi)).epsilon(1e-9));
  CHECK(expected_normal_range(8) == Approx(2.847).epsilon(1e-3));  // d2 tables of quality control
}

TEST_CASE("growth_rate_se is 0 for an exact line shared by every trajectory", "[metrics][se]") {
  const GrowthFit fit = fit_growth_rate(straight_trace(200, 0.1, std::log10(1.3)), 0.1);
  REQUIRE(fit.growth_rate_se);
  CHECK(*fit.growth_rate_se == Approx(0.0).margin(1e-12));
}

TEST_CASE("growth_rate_se: the fit part is the OLS slope error for independent residuals", "[metrics][se]") {
  // Alternating residuals +-e (lag-1 autocorrelation < 0: no inflation) on a line: SSR = n e^2.
  GradientTrace tr = straight_trace(100, 0.0, std::log10(0.9));
  const double e = 0.01;
  for (Eigen::Index k = 0; k <= 100; ++k) tr.log10_norm_mean[100 - k] += (k % 2 ? e : -e) / std::log(10.0);
  const GrowthFit fit = fit_growth_rate(tr, 0.0);
  // The alternation is orthogonal to the centred lags only approximately; recompute the OLS error directly.
  double km = 50.0, sxx = 0.0, ssr = 0.0, sxy = 0.0, ym = 0.0;
  for (int k = 0; k <= 100; ++k) ym += tr.log10_norm_mean[100 - k] * std::log(10.0) / 101.0;
  for (int k = 0; k <= 100; ++k) {
    sxx += (k - km) * (k - km);
    sxy += (k - km) * (tr.log10_norm_mean[100 - k] * std::log(10.0) - ym);
  }
  const double slope = sxy / sxx;
  for (int k = 0; k <= 100; ++k) {
    const double r = tr.log10_norm_mean[100 - k] * std::log(10.0) - ym - slope * (k - km);
    ssr += r * r;
  }
  CHECK(fit.log_slope_se == Approx(std::sqrt(ssr / 99.0 / sxx)).epsilon(1e-9));
}

TEST_CASE("growth_rate_se matches the spread of growth_rate over independent drives of one network",
          "[metrics][se][statistical]") {
  // One tanh network with Gaussian input noise, 24 independent drives (input, loss and initial streams):
  // the sample sd of their growth rates estimates the true error of one; the mean standard error must agree
  // within a factor 2.5 (the sd of 24 draws is itself uncertain by ~15 %; the se is an estimate).
  Config cfg;
  cfg.seed = 11;
  cfg.network.units = 96;
  cfg.network.steps = 300;
  cfg.network.batch = 6;
  cfg.spectrum.radius = 1.4;
  cfg.input.std = 0.5;
  cfg.analysis.burn_in = 50;
  const Model model = build_model(cfg, 0, 0, nullptr, 0, nullptr);
  std::vector<double> rates, ses;
  for (int r = 0; r < 24; ++r) {
    const Drive drive = build_drive(cfg, 0, static_cast<std::uint64_t>(r));
    const GradientTrace tr = run_bptt(model, drive, Precision::float64);
    const GrowthFit fit = fit_growth_rate(tr, cfg.analysis.fit_skip);
    REQUIRE(fit.growth_rate);
    REQUIRE(fit.growth_rate_se);
    rates.push_back(*fit.growth_rate);
    ses.push_back(*fit.growth_rate_se);
  }
  double m = 0, se = 0;
  for (std::size_t i = 0; i < rates.size(); ++i) m += rates[i] / rates.size(), se += ses[i] / ses.size();
  double ss = 0;
  for (double x : rates) ss += (x - m) * (x - m);
  const double sd = std::sqrt(ss / (rates.size() - 1));
  INFO("sd over drives " << sd << ", mean se " << se);
  CHECK(se > sd / 2.5);
  CHECK(se < sd * 2.5);
}

TEST_CASE("regimes per time constant: tau = 1 / leak for leaky cells, 1 for vanilla and residual", "[metrics][tau]") {
  GradientTrace tr;
  tr.carry = 0.0, tr.drive_scale = 1.0;
  CHECK(cell_time_constant(tr) == 1.0);  // vanilla
  tr.carry = 1.0, tr.drive_scale = 1.0;
  CHECK(cell_time_constant(tr) == 1.0);  // residual
  tr.carry = 0.9, tr.drive_scale = 0.1;
  CHECK(cell_time_constant(tr) == Approx(10.0).epsilon(1e-12));  // leaky, leak 0.1
  tr.time_constant = 7.0;
  CHECK(cell_time_constant(tr) == 7.0);  // a cell that states its own
  // A leaky cell at leak 0.1 losing 0.5 % per step loses 4.9 % per time constant: vanishing, not critical.
  CHECK(classify_regime(0.995, 0.01) == Regime::critical);
  CHECK(classify_regime(0.995, 0.01, 10.0) == Regime::vanishing);
  CHECK(classify_regime(1.0, 0.01, 10.0) == Regime::critical);
  CHECK(classify_regime(1.002, 0.01, 10.0) == Regime::exploding);  // 1.002^10 = 1.0202
  CHECK(classify_regime(1.002, 0.01, 1.0) == classify_regime(1.002, 0.01));
}
