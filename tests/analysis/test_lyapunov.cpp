#include <cmath>

#include <catch2/catch.hpp>
#include <Eigen/Dense>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/engine/engine.hpp"
#include "gradflow/analysis/lyapunov.hpp"
#include "gradflow/analysis/metrics.hpp"
#include "gradflow/numerics/random.hpp"
#include "gradflow/model/spectrum.hpp"
#include "reference.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using gradflow::test::kLyapunovBpttTol;
using gradflow::test::kLyapunovExactTol;
using gradflow::test::kLyapunovFixedPointTol;
using gradflow::test::kLyapunovIdentityTol;
using gradflow::test::kPrecisionAgreeTol;
using gradflow::test::sorted_moduli;

namespace {

Model network(Eigen::MatrixXd w, ActivationKind f, double input_std, std::uint64_t seed) {
  Model m;
  m.w = std::move(w);
  const Eigen::Index n = m.w.rows();
  if (input_std > 0) {
    Rng rng(seed);
    m.u = gaussian_matrix(n, 4, input_std / 2.0, rng);
  } else {
    m.u.resize(n, 0);
  }
  m.activation = Activation(f);
  return m;
}

Drive drive(Eigen::Index n, Eigen::Index batch, Eigen::Index steps, Eigen::Index burn_in, std::uint64_t seed) {
  Drive d;
  d.steps = steps;
  d.burn_in = burn_in;
  Rng rng(seed);
  d.h0 = gaussian_matrix(n, batch, 1.0, rng);
  d.input_seed = seed + 1;
  d.loss_seed = seed + 2;
  return d;
}

LyapunovOptions options(Eigen::Index k, Eigen::Index burn_in, Eigen::Index interval = 1) {
  LyapunovOptions o;
  o.count = k;
  o.burn_in = burn_in;
  o.interval = interval;
  o.seed = 4242;
  return o;
}

}  // namespace

TEST_CASE("top Lyapunov exponent equals ln(growth_rate) of BPTT on a long chaotic tanh run (N=200, T=3000)",
          "[lyapunov][bptt]") {
  // Forward tangent propagation and BPTT measure the same top exponent of the Jacobian product.
  for (double radius : {1.5, 2.0}) {
    Rng rng(11);
    const Model m = network(random_recurrent(SpectrumKind::ginibre, 200, radius, rng), ActivationKind::tanh, 0.0, 1);
    const Drive d = drive(200, 4, 3000, 100, 5);
    const Tape<double> tape = forward_pass<double>(m, d);
    const GradientTrace tr = backward_pass<double>(m, d, tape);
    const GrowthFit fit = fit_growth_rate(tr, 0.1);
    const LyapunovResult ly = lyapunov_spectrum<double>(m, tape, options(1, 300));
    INFO("radius " << radius << ": lambda_max " << ly.max() << ", ln growth " << std::log(*fit.growth_rate));
    REQUIRE(ly.ok());
    REQUIRE(fit.growth_rate);
    CHECK(ly.max() > 0.0);  // chaotic
    CHECK(std::abs(ly.max() - std::log(*fit.growth_rate)) <= kLyapunovBpttTol);
  }
}

TEST_CASE("with k = N the exponents sum to the time average of ln|det J_t| (N=8, vanilla and leaky cells)",
          "[lyapunov][determinant]") {
  // Interval 3 keeps the product between QRs well conditioned (spread of the exponents x interval << ln
  // 1/eps); a longer interval loses the smallest exponents to rounding, which is why the default is 1.
  for (CellKind cell : {CellKind::vanilla, CellKind::leaky, CellKind::residual}) {
    for (Eigen::Index interval : {1, 3}) {
      Rng rng(3);
      Model m = network(random_recurrent(SpectrumKind::ginibre, 8, 1.4, rng), ActivationKind::tanh, 0.5, 2);
      m.cell = cell;
      m.leak = 0.3;
      const Drive d = drive(8, 3, 300, 20, 9);
      const Tape<double> tape = forward_pass<double>(m, d);
      const Eigen::Index burn = 25;
      const LyapunovResult ly = lyapunov_spectrum<double>(m, tape, options(8, burn, interval));
      REQUIRE(ly.ok());
      // Dense reference: ln|det J_t|, J_t = c I + s diag(f'(a_t)) W, averaged over t = burn+1..T per trajectory.
      for (Eigen::Index b = 0; b < 3; ++b) {
        double sum = 0.0;
        for (Eigen::Index t = burn + 1; t <= tape.horizon; ++t) {
          const Eigen::MatrixXd j = m.carry() * Eigen::MatrixXd::Identity(8, 8) +
                                    m.drive_scale() * tape.step(t).col(b).asDiagonal() * m.w;
          sum += std::log(std::abs(j.determinant()));
        }
        const double reference = sum / double(tape.horizon - burn);
        INFO(to_string(cell) << ", interval " << interval << ", trajectory " << b);
        CHECK(ly.per_trajectory.col(b).sum() == Approx(reference).margin(kLyapunovIdentityTol));
      }
    }
  }
}

TEST_CASE("at the zero fixed point (tanh, radius g < 1, no input) lambda_max = ln g", "[lyapunov][fixed_point]") {
  // h_t -> 0, so f'(a_t) -> 1 and J_t -> W: the exponents are those of W^t.
  for (double g : {0.5, 0.8}) {
    INFO("radius " << g);
    {
      // Scaled orthogonal W: ||W v|| = g ||v|| for every v, so every exponent is ln g exactly.
      Rng rng(17);
      const Model m = network(random_recurrent(SpectrumKind::orthogonal, 32, g, rng), ActivationKind::tanh, 0.0, 1);
      const Tape<double> tape = forward_pass<double>(m, drive(32, 2, 400, 300, 3));
      const LyapunovResult ly = lyapunov_spectrum<double>(m, tape, options(3, 0));
      REQUIRE(ly.ok());
      for (double e : ly.exponents) CHECK(std::abs(e - std::log(g)) <= kLyapunovExactTol);
    }
    {
      // Ginibre W of exact radius g: the top exponent of W^t is ln rho(W), reached once the frame has aligned.
      Rng rng(23);
      const Model m = network(random_recurrent(SpectrumKind::ginibre, 64, g, rng), ActivationKind::tanh, 0.0, 1);
      const Tape<double> tape = forward_pass<double>(m, drive(64, 2, 3000, 300, 3));
      const LyapunovResult ly = lyapunov_spectrum<double>(m, tape, options(1, 1000));
      REQUIRE(ly.ok());
      CHECK(std::abs(ly.max() - std::log(g)) <= kLyapunovFixedPointTol);
    }
  }
}

TEST_CASE("a leaky linear cell has the top exponent ln rho((1 - a) I + a W) (symmetric W, N=32)",
          "[lyapunov][cell]") {
  Rng rng(5);
  Model m = network(random_recurrent(SpectrumKind::symmetric, 32, 1.3, rng), ActivationKind::identity, 0.0, 1);
  m.cell = CellKind::leaky;
  m.leak = 0.4;
  const Tape<double> tape = forward_pass<double>(m, drive(32, 2, 2000, 0, 3));
  const LyapunovResult ly = lyapunov_spectrum<double>(m, tape, options(2, 1000, 3));
  const Eigen::MatrixXd j = 0.6 * Eigen::MatrixXd::Identity(32, 32) + 0.4 * m.w;
  const Eigen::VectorXd sorted = sorted_moduli(j);
  REQUIRE(ly.ok());
  CHECK(std::abs(ly.exponents[0] - std::log(sorted[0])) <= kLyapunovFixedPointTol);
  CHECK(std::abs(ly.exponents[1] - std::log(sorted[1])) <= kLyapunovFixedPointTol);
}

TEST_CASE("the re-orthonormalisation interval does not change the exponents (QR of a product)",
          "[lyapunov][interval]") {
  Rng rng(8);
  const Model m = network(random_recurrent(SpectrumKind::ginibre, 48, 1.8, rng), ActivationKind::tanh, 0.3, 4);
  const Tape<double> tape = forward_pass<double>(m, drive(48, 3, 400, 50, 6));
  const LyapunovResult every = lyapunov_spectrum<double>(m, tape, options(5, 40, 1));
  for (Eigen::Index interval : {4, 13}) {
    const LyapunovResult sparse = lyapunov_spectrum<double>(m, tape, options(5, 40, interval));
    INFO("interval " << interval);
    for (Eigen::Index i = 0; i < 5; ++i)
      for (Eigen::Index b = 0; b < 3; ++b)
        CHECK(sparse.per_trajectory(i, b) == Approx(every.per_trajectory(i, b)).margin(kLyapunovIdentityTol));
  }
  // Descending, with a spread over trajectories.
  for (std::size_t i = 1; i < every.exponents.size(); ++i) CHECK(every.exponents[i] < every.exponents[i - 1]);
  CHECK(every.exponents_std[0] > 0.0);
}

TEST_CASE("float and double tapes give the same top exponent within 1e-3 (non-chaotic)", "[lyapunov][precision]") {
  // Contracting dynamics (lambda_max < 0): float and double follow the same trajectory. (In a chaotic
  // network they part after ~30 steps and only agree statistically.)
  Rng rng(12);
  const Model m = network(random_recurrent(SpectrumKind::ginibre, 96, 1.2, rng), ActivationKind::tanh, 0.8, 2);
  const Drive d = drive(96, 2, 600, 50, 1);
  const LyapunovResult ld = lyapunov_spectrum<double>(m, forward_pass<double>(m, d), options(2, 100));
  const LyapunovResult lf = lyapunov_spectrum<float>(m, forward_pass<float>(m, d), options(2, 100));
  REQUIRE(ld.ok());
  REQUIRE(lf.ok());
  CHECK(ld.max() < 0.0);
  CHECK(std::abs(lf.max() - ld.max()) <= kPrecisionAgreeTol * std::max(1.0, std::abs(ld.max())));
}

TEST_CASE("Lyapunov estimates report too short tapes and annihilated frames as statuses", "[lyapunov][status]") {
  Rng rng(1);
  Model m = network(random_recurrent(SpectrumKind::ginibre, 16, 1.0, rng), ActivationKind::relu, 0.0, 1);
  {
    const Tape<double> tape = forward_pass<double>(m, drive(16, 2, 30, 0, 1));
    const LyapunovResult ly = lyapunov_spectrum<double>(m, tape, options(2, 30));
    CHECK(ly.status == LyapunovStatus::too_short);
    CHECK(ly.exponents.empty());
    CHECK(!ly.message.empty());
  }
  {
    // Every unit dead (bias -5, no input): J_t = 0, the frame is annihilated at the first step.
    m.b = Eigen::VectorXd::Constant(16, -5.0);
    const Tape<double> tape = forward_pass<double>(m, drive(16, 2, 30, 0, 1));
    const LyapunovResult ly = lyapunov_spectrum<double>(m, tape, options(2, 5));
    CHECK(ly.status == LyapunovStatus::annihilated);
    REQUIRE(ly.exponents.size() == 2);
    CHECK(std::isinf(ly.exponents[0]));
    CHECK(ly.exponents[0] < 0);
  }
  CHECK_THROWS_AS(lyapunov_spectrum<double>(m, forward_pass<double>(m, drive(16, 1, 10, 0, 1)), options(17, 0)),
                  std::invalid_argument);
  CHECK_THROWS_AS(lyapunov_spectrum<double>(m, forward_pass<double>(m, drive(16, 1, 10, 0, 1)), options(1, 0, 0)),
                  std::invalid_argument);
  CHECK(parse_lyapunov_status(to_string(LyapunovStatus::annihilated)) == LyapunovStatus::annihilated);
}

TEST_CASE("simulate_cell computes analysis.lyapunov exponents with the configured burn-in", "[lyapunov][cell]") {
  Config c;
  c.network.units = 40;
  c.network.steps = 200;
  c.network.batch = 2;
  c.spectrum.radius = 1.5;
  c.analysis.lyapunov = 3;
  c.analysis.lyapunov_burn_in = 50;
  c.analysis.lyapunov_interval = 2;
  const CellResult r = simulate_cell(c, 0, 0);
  REQUIRE(r.lyapunov.ok());
  CHECK(r.lyapunov.exponents.size() == 3);
  CHECK(r.lyapunov.steps == 150);
  const CellResult same = simulate_cell(c, 0, 0);
  CHECK(same.lyapunov.exponents == r.lyapunov.exponents);  // seeded from (seed, cell, replicate)
  c.analysis.lyapunov = 0;
  CHECK(simulate_cell(c, 0, 0).lyapunov.exponents.empty());
  c.analysis.lyapunov_burn_in.reset();
  CHECK(c.analysis.lyapunov_burn_in_for(c.network.steps) == 20);
}
