#include <cmath>

#include <catch2/catch.hpp>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/analysis/meanfield.hpp"
#include "gradflow/numerics/random.hpp"
#include "gradflow/model/spectrum.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using gradflow::test::kCriticalGainTol;
using gradflow::test::kMeanFieldFiniteNTol;
using gradflow::test::kMeanFieldQuadTol;
using gradflow::test::kPublishedTol;

namespace {

MeanFieldParams params(ActivationKind f, double gain, double input_std = 0.0) {
  MeanFieldParams p;
  p.activation = Activation(f);
  p.gain = gain;
  p.input_std = input_std;
  return p;
}

}  // namespace

TEST_CASE("tanh at gain 2 without input: q* = 2.1215 and mf_lyapunov = 0.1547 (Molgedey et al. 1992)",
          "[meanfield][known]") {
  const MeanField mf = mean_field(params(ActivationKind::tanh, 2.0));
  REQUIRE(mf.status == MeanFieldStatus::ok);
  CHECK(std::abs(mf.q - 2.1215) <= kPublishedTol);
  CHECK(std::abs(mf.lyapunov - 0.1547) <= kPublishedTol);
  CHECK(mf.growth == Approx(std::sqrt(mf.chi)).epsilon(1e-15));
  // q* is a fixed point of the variance map.
  CHECK(std::abs(mean_field_map(params(ActivationKind::tanh, 2.0), mf.q) - mf.q) <= kMeanFieldQuadTol * mf.q);
}

TEST_CASE("below gain 1 without input, tanh settles at q* = 0 and chi = g^2", "[meanfield][known]") {
  for (double g : {0.2, 0.6, 0.9, 0.99}) {
    INFO("gain " << g);
    const MeanField mf = mean_field(params(ActivationKind::tanh, g));
    CHECK(mf.status == MeanFieldStatus::ok);
    CHECK(mf.q == 0.0);
    CHECK(mf.chi == Approx(g * g).epsilon(1e-14));
    CHECK(mf.lyapunov == Approx(std::log(g)).epsilon(1e-14));
  }
  // A network at rest with no drive stays there at any gain: chi = g^2 f'(0)^2.
  MeanFieldParams rest = params(ActivationKind::tanh, 2.0);
  rest.h0_sq = 0.0;
  const MeanField mf = mean_field(rest);
  CHECK(mf.q == 0.0);
  CHECK(mf.growth == Approx(2.0).epsilon(1e-14));
}

TEST_CASE("ReLU, identity and leaky ReLU match their closed forms", "[meanfield][closed_form]") {
  const double s = 0.7;
  for (double g : {0.5, 1.0, 1.3}) {
    INFO("gain " << g);
    // ReLU: F(q) = g^2 q / 2 + s^2, so q* = s^2 / (1 - g^2 / 2); chi = g^2 / 2 (P(a > 0) = 1/2).
    const MeanField relu = mean_field(params(ActivationKind::relu, g, s));
    REQUIRE(relu.status == MeanFieldStatus::ok);
    CHECK(relu.q == Approx(s * s / (1.0 - g * g / 2.0)).epsilon(kMeanFieldQuadTol));
    CHECK(relu.chi == Approx(g * g / 2.0).epsilon(kMeanFieldQuadTol));
    // Leaky ReLU: chi = g^2 (1 + alpha^2) / 2.
    MeanFieldParams lp = params(ActivationKind::leaky_relu, g, s);
    lp.activation = Activation(ActivationKind::leaky_relu, 0.2, 1.0);
    CHECK(mean_field(lp).chi == Approx(g * g * 1.04 / 2.0).epsilon(kMeanFieldQuadTol));
  }
  for (double g : {0.5, 0.9}) {
    const MeanField id = mean_field(params(ActivationKind::identity, g, s));
    CHECK(id.q == Approx(s * s / (1.0 - g * g)).epsilon(kMeanFieldQuadTol));
    CHECK(id.chi == Approx(g * g).epsilon(1e-14));
  }
  // Past the edge the ReLU variance diverges (forward divergence); chi is its q -> infinity limit.
  const MeanField relu_big = mean_field(params(ActivationKind::relu, 2.0, s));
  CHECK(relu_big.status == MeanFieldStatus::q_diverges);
  CHECK(relu_big.chi == Approx(2.0).epsilon(1e-14));
  CHECK(mean_field(params(ActivationKind::identity, 1.5)).status == MeanFieldStatus::q_diverges);
  // ReLU approaching q = 0 sees both sides of its kink: chi = g^2 / 2, not g^2 f'(0)^2.
  CHECK(mean_field(params(ActivationKind::relu, 1.2)).chi == Approx(0.72).epsilon(1e-14));
}

TEST_CASE("critical gains: tanh 1, ReLU sqrt 2, identity 1, SELU and leaky ReLU by formula, to 1e-8",
          "[meanfield][critical]") {
  auto crit = [](ActivationKind f, double input_std = 0.0) {
    const CriticalGain c = critical_gain(params(f, 1.0, input_std));
    REQUIRE(c.gain);
    return *c.gain;
  };
  CHECK(std::abs(crit(ActivationKind::tanh) - 1.0) <= kCriticalGainTol);
  CHECK(std::abs(crit(ActivationKind::relu) - std::sqrt(2.0)) <= kCriticalGainTol);
  CHECK(std::abs(crit(ActivationKind::relu, 0.5) - std::sqrt(2.0)) <= kCriticalGainTol);
  CHECK(std::abs(crit(ActivationKind::identity) - 1.0) <= kCriticalGainTol);
  CHECK(std::abs(crit(ActivationKind::leaky_relu) - std::sqrt(2.0 / (1.0 + 1e-4))) <= kCriticalGainTol);
  // SELU: f'(0+) = lambda, f'(0-) = lambda alpha0: g0 = 1 / sqrt((lambda^2 + (lambda alpha0)^2) / 2).
  const double lambda = 1.0507009873554804934193349852946, alpha0 = 1.6732632423543772848170429916717;
  CHECK(std::abs(crit(ActivationKind::selu) - 1.0 / std::sqrt(0.5 * lambda * lambda * (1 + alpha0 * alpha0))) <=
        kCriticalGainTol);
  // With input (tanh) or a non-zero f(0) (sigmoid), the root is a transversal crossing: chi = 1 there.
  for (auto [f, s] : {std::pair{ActivationKind::tanh, 0.5}, std::pair{ActivationKind::sigmoid, 0.0}}) {
    const double g = crit(f, s);
    INFO(to_string(f) << " input " << s << ": critical gain " << g);
    CHECK(g > 1.0);
    CHECK(std::abs(mean_field(params(f, g, s)).chi - 1.0) <= 1e-9);
    CHECK(mean_field(params(f, g * (1 - 1e-6), s)).chi < 1.0);
    CHECK(mean_field(params(f, g * (1 + 1e-6), s)).chi > 1.0);
  }
  CHECK_FALSE(critical_gain(params(ActivationKind::tanh, 1.0), 0.01, 0.5).gain);
}

TEST_CASE("gain_rms is ||W||_F / sqrt(N): exactly the radius for scaled orthogonal W", "[meanfield][gain]") {
  Rng rng(3);
  const Eigen::MatrixXd q = random_recurrent(SpectrumKind::orthogonal, 50, 1.7, rng);
  CHECK(gain_rms(q) == Approx(1.7).epsilon(1e-12));
  const Eigen::MatrixXd g = random_recurrent(SpectrumKind::ginibre, 50, 1.7, rng);
  CHECK(gain_rms(g) == Approx(g.norm() / std::sqrt(50.0)).epsilon(1e-15));
}

TEST_CASE("a large random tanh network grows at the mean-field factor of its gain_rms (N=400, g=2)",
          "[meanfield][finite_n]") {
  Config c;
  c.network.units = 400;
  c.network.steps = 600;
  c.network.batch = 4;
  c.spectrum.radius = 2.0;
  c.input.kind = InputKind::none;
  c.init.state = InitState::gaussian;
  const CellResult r = simulate_cell(c, 0, 0);
  REQUIRE(r.metrics.fit.growth_rate);
  REQUIRE(r.mean_field.status == MeanFieldStatus::ok);
  INFO("gain_rms " << r.gain_rms << ", measured " << *r.metrics.fit.growth_rate << ", mf_growth "
                   << r.mean_field.growth);
  CHECK(r.gain_rms == Approx(gain_rms(build_model(c, 0, 0, nullptr).w)).epsilon(1e-15));
  CHECK(std::abs(std::log(*r.metrics.fit.growth_rate) - r.mean_field.lyapunov) <= kMeanFieldFiniteNTol);
  // The textbook predictor calls this chaotic network vanishing.
  CHECK(r.metrics.predictor < 1.0);
  CHECK(*r.metrics.fit.growth_rate > 1.1);
}

TEST_CASE("mean field is not applicable to residual and leaky cells; bad parameters throw",
          "[meanfield][cells]") {
  Config c;
  c.network.cell = CellKind::leaky;
  c.network.leak = 0.5;
  CHECK(cell_mean_field(c, 1.0).status == MeanFieldStatus::not_applicable);
  c.network.cell = CellKind::residual;
  CHECK(cell_mean_field(c, 1.0).status == MeanFieldStatus::not_applicable);
  CHECK_THROWS_AS(mean_field(params(ActivationKind::tanh, -1.0)), std::invalid_argument);
  CHECK_THROWS_AS(mean_field(params(ActivationKind::tanh, 1.0, -0.1)), std::invalid_argument);
  CHECK_THROWS_AS(critical_gain(params(ActivationKind::tanh, 1.0), 2.0, 1.0), std::invalid_argument);
  CHECK(parse_mean_field_status("q_diverges") == MeanFieldStatus::q_diverges);
}
