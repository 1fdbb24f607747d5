#include <cmath>
#include <limits>

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

// ---- Mean field from the data actually used (issue 16) ----

#include <filesystem>
#include <random>
#include <unistd.h>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/model/matrix_io.hpp"
#include "gradflow/run/scenario.hpp"

namespace {

/// E[g(a)], a ~ N(mu, q), by the trapezoid rule on mu +- 12 sqrt(q) (independent of the library's
/// Gauss-Kronrod quadrature).
template <class G>
double gauss_mean(G g, double mu, double q) {
  if (q <= 0) return g(mu);
  const double s = std::sqrt(q), h = 1e-3;
  double sum = 0.0;
  for (double z = -12.0; z <= 12.0 + h / 2; z += h) {
    const double w = std::exp(-0.5 * z * z) / std::sqrt(2.0 * std::acos(-1.0));
    sum += w * g(mu + s * z) * ((std::abs(z) > 12.0 - h / 2) ? 0.5 : 1.0);
  }
  return sum * h;
}

}  // namespace

TEST_CASE("mean-field columns use the measured variances of file data (h0, input sequence, U, bias)",
          "[meanfield][files]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("gradflow_mf_files_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const int n = 64, batch = 3, dim = 5, burn = 10, steps = 60;
  std::mt19937_64 rng(2024);
  std::normal_distribution<double> z(0.0, 1.0);
  auto draw = [&](int r, int c, double scale, double shift) {
    Eigen::MatrixXd m(r, c);
    for (int j = 0; j < c; ++j)
      for (int i = 0; i < r; ++i) m(i, j) = shift + scale * z(rng);
    return m;
  };
  const Eigen::MatrixXd h0 = draw(n, batch, 0.7, 0.0), x = draw(burn + steps, dim, 1.3, 0.2),
                        u = draw(n, dim, 0.25, 0.0), b = draw(n, 1, 0.3, 0.1);
  write_matrix(dir / "h0.npy", h0);
  write_matrix(dir / "x.npy", x);
  write_matrix(dir / "U.npy", u);
  write_matrix(dir / "b.npy", b);
  const std::string text = "seed = 3\n[network]\nunits = 64\nsteps = 60\nbatch = 3\nactivation = \"tanh\"\n"
                           "[spectrum]\nradius = 2.0\n[input]\nkind = \"file\"\nfile = \"x.npy\"\nweights = \"U.npy\"\n"
                           "dim = 5\n[bias]\nfile = \"b.npy\"\n[init]\nstate = \"file\"\nfile = \"h0.npy\"\n"
                           "[analysis]\nburn_in = 10\nseries = false\n";
  const Scenario sc = parse_scenario(text, "mf_files.toml", {}, dir);
  const CellResult r = simulate_cell(sc.base, 0, 0);
  fs::remove_all(dir);

  // Independently: the variances of the arrays as written, then q_{n+1} = F(q_n) from q_0 to its fixed point.
  const double g = r.gain_rms;
  const double in_var = (x * u.transpose()).squaredNorm() / double(n * (burn + steps));
  const double b_mean = b.mean(), b_var = (b.array() - b_mean).square().mean();
  const double h0_sq = h0.squaredNorm() / double(n * batch);
  double q = g * g * h0_sq + in_var + b_var;
  for (int it = 0; it < 400; ++it) {
    const double ef2 = gauss_mean([](double a) { return std::tanh(a) * std::tanh(a); }, b_mean, q);
    q = g * g * ef2 + in_var + b_var;
  }
  const double ed2 = gauss_mean([](double a) { const double t = 1 - std::tanh(a) * std::tanh(a); return t * t; },
                                b_mean, q);
  const double growth = std::sqrt(g * g * ed2);
  REQUIRE(r.mean_field.status == MeanFieldStatus::ok);
  CHECK(r.mean_field.q == Approx(q).epsilon(1e-7));
  CHECK(r.mean_field.growth == Approx(growth).epsilon(1e-7));
  // The keys alone (input as if absent, bias 0, h0 = 0) give another answer: the data is what counts.
  CHECK(std::abs(cell_mean_field(sc.base, g).q - q) > 0.01);
}

TEST_CASE("file data whose variances overflow double give mf_status overflow; the cell still reports its numbers",
          "[meanfield][files]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("gradflow_mf_overflow_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  // |b_i| = 1e200: finite values whose spread squared (1e400) is not; likewise h0 = 1e200 and U = 1e200.
  Eigen::MatrixXd b(8, 1), h0 = Eigen::MatrixXd::Constant(8, 1, 1e200), u = Eigen::MatrixXd::Constant(8, 2, 1e200);
  for (int i = 0; i < 8; ++i) b(i) = i % 2 ? 1e200 : -1e200;
  write_matrix(dir / "b.npy", b);
  write_matrix(dir / "h0.npy", h0);
  write_matrix(dir / "U.npy", u);
  const std::string head = "seed = 5\n[network]\nunits = 8\nsteps = 30\nbatch = 2\n[analysis]\nburn_in = 5\n";
  for (const std::string& extra : {std::string("[bias]\nfile = \"b.npy\"\n"),
                                   std::string("[init]\nstate = \"file\"\nfile = \"h0.npy\"\n"),
                                   std::string("[input]\ndim = 2\nweights = \"U.npy\"\n")}) {
    INFO(extra);
    const Scenario sc = parse_scenario(head + extra, "overflow.toml", {}, dir);
    const CellResult r = simulate_cell(sc.base, 0, 0);
    CHECK(r.mean_field.status == MeanFieldStatus::overflow);
    CHECK(r.mean_field.message.find("overflow") != std::string::npos);
    CHECK(std::isfinite(r.metrics.rho));  // the measured numbers stand
    CHECK(std::isfinite(r.metrics.predictor));
    CHECK((r.metrics.fit.growth_rate.has_value() || r.metrics.forward_diverged_at.has_value() ||
           r.metrics.grad_zero_at.has_value()));
  }
  fs::remove_all(dir);
  // The same parameters are refused by mean_field() itself; finite ones give mean_field()'s answer.
  MeanFieldParams p = params(ActivationKind::tanh, 1e200);
  CHECK(data_mean_field(p).status == MeanFieldStatus::overflow);
  CHECK_THROWS_AS(mean_field(params(ActivationKind::tanh, 2.0, std::numeric_limits<double>::infinity())),
                  std::invalid_argument);
  p = params(ActivationKind::tanh, 2.0);
  CHECK(data_mean_field(p).q == mean_field(p).q);
  CHECK(data_mean_field(p).growth == mean_field(p).growth);
  CHECK(parse_mean_field_status(to_string(MeanFieldStatus::overflow)) == MeanFieldStatus::overflow);
}
