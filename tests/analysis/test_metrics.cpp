#include <cmath>

#include <catch2/catch.hpp>

#include "gradflow/analysis/metrics.hpp"

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
