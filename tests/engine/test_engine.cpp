#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include <catch2/catch.hpp>

#ifdef __linux__
#include <unistd.h>
#endif

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/engine/engine.hpp"
#include "gradflow/analysis/metrics.hpp"
#include "gradflow/model/spectrum.hpp"
#include "gradflow/numerics/blas.hpp"
#include "gradflow/numerics/random.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using gradflow::test::kFiniteDiffTol;
using gradflow::test::kGrowthRateTol;
using gradflow::test::kIdentityNormTol;
using gradflow::test::kPrecisionAgreeTol;

namespace {

constexpr double kLn10 = 2.302585092994045684;

Model linear_model(const Eigen::MatrixXd& w) {
  Model m;
  m.w = w;
  m.u.resize(w.rows(), 0);
  m.activation = Activation(ActivationKind::identity);
  return m;
}

Drive random_seed_drive(Eigen::Index n, Eigen::Index batch, Eigen::Index steps) {
  Drive d;
  d.steps = steps;
  d.h0 = Eigen::MatrixXd::Zero(n, batch);
  d.loss = LossKind::random;
  d.loss_seed = 77;
  return d;
}

}  // namespace

TEST_CASE("identity activation with orthogonal W of radius 1 keeps ||g_t|| constant over 1000 steps",
          "[engine][identity]") {
  Rng rng(2024);
  const Eigen::MatrixXd w = random_recurrent(SpectrumKind::orthogonal, 64, 1.0, rng);
  const GradientTrace tr = run_bptt<double>(linear_model(w), random_seed_drive(64, 4, 1000));
  REQUIRE(tr.horizon == 1000);
  // A unit seed stays a unit vector: log10 ||g_t|| = 0 for every t and trajectory.
  const double tol = kIdentityNormTol / kLn10;  // |log10(1 + e)| <= e / ln 10
  for (Eigen::Index t = 0; t <= tr.horizon; ++t) {
    INFO("t = " << t);
    CHECK(std::abs(tr.log10_norm_min[t]) <= tol);
    CHECK(std::abs(tr.log10_norm_max[t]) <= tol);
  }
}

TEST_CASE("a scaled orthogonal linear RNN decays at exactly its radius per step", "[engine][identity]") {
  Rng rng(7);
  const double r = 0.8;
  const Eigen::MatrixXd w = random_recurrent(SpectrumKind::orthogonal, 32, r, rng);
  const GradientTrace tr = run_bptt<double>(linear_model(w), random_seed_drive(32, 2, 300));
  for (Eigen::Index t = 0; t <= tr.horizon; ++t)
    CHECK(tr.log10_norm_mean[t] == Approx(double(tr.horizon - t) * std::log10(r)).margin(1e-10));
  const GrowthFit fit = fit_growth_rate(tr, 0.1);
  REQUIRE(fit.growth_rate);
  CHECK(*fit.growth_rate == Approx(r).epsilon(1e-12));
}

TEST_CASE("identity activation with Ginibre W grows at rate rho(W) within 1% (N=200, T=2000)",
          "[engine][identity][ginibre]") {
  for (double r : {0.9, 1.1}) {
    Rng rng(31337);
    const Eigen::MatrixXd w = random_recurrent(SpectrumKind::ginibre, 200, r, rng);
    const GradientTrace tr = run_bptt<double>(linear_model(w), random_seed_drive(200, 4, 2000));
    const GrowthFit fit = fit_growth_rate(tr, 0.1);
    INFO("radius " << r);
    REQUIRE(fit.growth_rate);
    CHECK(std::abs(*fit.growth_rate - r) <= kGrowthRateTol * r);
  }
}

TEST_CASE("log-domain BPTT measures growth of 1e+5000 and decay to 1e-5000 without overflow",
          "[engine][overflow]") {
  Rng rng(5);
  for (double r : {10.0, 0.1}) {
    const Eigen::MatrixXd w = random_recurrent(SpectrumKind::orthogonal, 16, r, rng);
    const GradientTrace tr = run_bptt<double>(linear_model(w), random_seed_drive(16, 2, 5000));
    INFO("radius " << r);
    CHECK(tr.log10_norm_mean[0] == Approx(5000.0 * std::log10(r)).epsilon(1e-12));
    CHECK(tr.zero_count[0] == 0);
  }
}

TEST_CASE("BPTT gradients equal central finite differences of L = ||h_T||^2 / 2", "[engine][gradient]") {
  // Independent forward in the test; the engine's per-step norms must match ||dL/dh_t|| from differences.
  const Eigen::Index n = 5, steps = 6;
  for (ActivationKind kind : {ActivationKind::tanh, ActivationKind::sigmoid, ActivationKind::softplus,
                              ActivationKind::swish, ActivationKind::gelu, ActivationKind::elu}) {
    Rng rng(99);
    Model m;
    m.w = random_recurrent(SpectrumKind::ginibre, n, 1.3, rng);
    m.u.resize(n, 0);
    m.b = gaussian_matrix(n, 1, 0.3, rng).col(0);
    m.activation = Activation(kind);
    Drive d;
    d.steps = steps;
    d.h0 = gaussian_matrix(n, 1, 0.8, rng);
    d.loss = LossKind::final_state;
    const GradientTrace tr = run_bptt<double>(m, d);

    // Forward from h_t to h_T, then L.
    auto loss_from = [&](Eigen::VectorXd h, Eigen::Index t) {
      for (Eigen::Index s = t + 1; s <= steps; ++s) {
        Eigen::VectorXd a = m.w * h + m.b;
        for (Eigen::Index i = 0; i < n; ++i) h[i] = m.activation.value(a[i]);
      }
      return 0.5 * h.squaredNorm();
    };
    std::vector<Eigen::VectorXd> states{d.h0.col(0)};
    for (Eigen::Index s = 1; s <= steps; ++s) {
      Eigen::VectorXd a = m.w * states.back() + m.b;
      Eigen::VectorXd h(n);
      for (Eigen::Index i = 0; i < n; ++i) h[i] = m.activation.value(a[i]);
      states.push_back(h);
    }
    for (Eigen::Index t = 0; t <= steps; ++t) {
      Eigen::VectorXd grad(n);
      const double eps = 1e-6;
      for (Eigen::Index i = 0; i < n; ++i) {
        Eigen::VectorXd hp = states[t], hm = states[t];
        hp[i] += eps;
        hm[i] -= eps;
        grad[i] = (loss_from(hp, t) - loss_from(hm, t)) / (2 * eps);
      }
      const double engine_norm = std::pow(10.0, tr.log10_norm_mean[t]);
      INFO(to_string(kind) << " t = " << t);
      CHECK(engine_norm == Approx(grad.norm()).epsilon(kFiniteDiffTol));
    }
  }
}

TEST_CASE("float and double agree on the growth rate within 1e-3 where nothing overflows",
          "[engine][precision]") {
  Config c;
  c.network.units = 128;
  c.network.steps = 400;
  c.network.batch = 4;
  c.spectrum.radius = 1.3;
  c.input.std = 0.3;
  for (ActivationKind kind : {ActivationKind::tanh, ActivationKind::relu}) {
    c.network.activation = kind;
    c.spectrum.radius = kind == ActivationKind::relu ? 1.0 : 1.3;
    c.network.precision = Precision::float64;
    const CellResult d = simulate_cell(c, 0, 0);
    c.network.precision = Precision::float32;
    const CellResult f = simulate_cell(c, 0, 0);
    INFO(to_string(kind));
    REQUIRE(d.metrics.fit.growth_rate);
    REQUIRE(f.metrics.fit.growth_rate);
    CHECK(std::abs(*f.metrics.fit.growth_rate / *d.metrics.fit.growth_rate - 1.0) <= kPrecisionAgreeTol);
  }
}

TEST_CASE("ReLU at radius 3 in float: forward divergence is reported and every log norm is finite",
          "[engine][divergence]") {
  Config c;
  c.network.units = 64;
  c.network.steps = 2000;
  c.network.batch = 4;
  c.network.activation = ActivationKind::relu;
  c.network.precision = Precision::float32;
  c.spectrum.radius = 3.0;
  const CellResult r = simulate_cell(c, 0, 0);
  REQUIRE(r.trace.forward_diverged_at);
  CHECK(*r.trace.forward_diverged_at > 1);
  CHECK(r.trace.horizon == *r.trace.forward_diverged_at - 1);
  for (Eigen::Index t = 0; t <= r.trace.horizon; ++t) {
    INFO("t = " << t);
    CHECK(std::isfinite(r.trace.log10_norm_mean[t]));
  }
  REQUIRE(r.metrics.fit.growth_rate);
  CHECK(std::isfinite(*r.metrics.fit.growth_rate));
  CHECK(r.metrics.regime == Regime::exploding);
}

TEST_CASE("dead ReLU units annihilate the gradient exactly and the cell reports it as vanishing",
          "[engine][relu]") {
  // All pre-activations negative: f' = 0 everywhere, g_{T-1} = 0 exactly.
  Model m = linear_model(Eigen::MatrixXd::Identity(8, 8) * 0.5);
  m.activation = Activation(ActivationKind::relu);
  m.b = Eigen::VectorXd::Constant(8, -1.0);
  Drive d = random_seed_drive(8, 3, 50);
  const GradientTrace tr = run_bptt<double>(m, d);
  CHECK(tr.dead_fraction == 1.0);
  CHECK(tr.zero_count[tr.horizon] == 0);
  CHECK(tr.zero_count[tr.horizon - 1] == 3);
  SpectralInfo si;
  si.rho = si.spectral_norm = 0.5;
  AnalysisConfig a;
  const CellMetrics cm = compute_metrics(si, m.activation, tr, a);
  CHECK(cm.regime == Regime::vanishing);
  REQUIRE(cm.grad_zero_at);
  CHECK(*cm.grad_zero_at == tr.horizon - 1);
}

TEST_CASE("a cell's numbers depend only on (seed, cell, replicate)", "[engine][determinism]") {
  Config c;
  c.network.units = 32;
  c.network.steps = 50;
  c.network.batch = 2;
  c.bias.std = 0.1;
  c.init.state = InitState::gaussian;
  const CellResult a = simulate_cell(c, 3, 1), b = simulate_cell(c, 3, 1), other = simulate_cell(c, 3, 2);
  CHECK(a.trace.log10_norm_mean == b.trace.log10_norm_mean);
  CHECK(a.metrics.mean_abs_dact == b.metrics.mean_abs_dact);
  CHECK(a.trace.log10_norm_mean != other.trace.log10_norm_mean);
}

TEST_CASE("a cell gives the same numbers to the bit on one and on two GEMM threads", "[engine][threads]") {
  // B = 16 runs the packed product, whose rows are split between the GEMM threads (issue 18); before, two
  // threads ran OpenBLAS and changed the last bits.
  Rng rng(5);
  Model m;
  m.w = random_recurrent(SpectrumKind::ginibre, 300, 1.1, rng);
  m.u.resize(300, 0);
  m.b = Eigen::VectorXd::Constant(300, 0.1);
  m.activation = Activation(ActivationKind::tanh);
  Drive d = random_seed_drive(300, 16, 60);
  d.h0 = gaussian_matrix(300, 16, 1.0, rng);
  for (Precision p : {Precision::float64, Precision::float32}) {
    const int saved = set_gemm_threads(1);
    const GradientTrace one = run_bptt(m, d, p);
    set_gemm_threads(2);
    const GradientTrace two = run_bptt(m, d, p);
    set_gemm_threads(saved);
    REQUIRE(one.horizon == 60);
    CHECK(one.log10_norm_mean == two.log10_norm_mean);
    CHECK(one.log10_norm_min == two.log10_norm_min);
    CHECK(one.mean_abs_dact_t == two.mean_abs_dact_t);
  }
}

namespace {
/// Every number of a trace that the elementwise passes make, compared to the bit.
void check_same_bits(const GradientTrace& one, const GradientTrace& two) {
  CHECK(one.horizon == two.horizon);
  CHECK(one.forward_diverged_at == two.forward_diverged_at);
  CHECK(one.log10_norm_mean == two.log10_norm_mean);
  CHECK(one.log10_norm_min == two.log10_norm_min);
  CHECK(one.log10_norm_max == two.log10_norm_max);
  CHECK(one.zero_count == two.zero_count);
  CHECK(one.mean_abs_dact_t == two.mean_abs_dact_t);
  CHECK(one.mean_sq_dact_t == two.mean_sq_dact_t);
  CHECK(one.mean_abs_dact == two.mean_abs_dact);
  CHECK(one.mean_sq_dact == two.mean_sq_dact);
  CHECK(one.max_abs_dact == two.max_abs_dact);
  CHECK(one.dead_fraction == two.dead_fraction);
  CHECK(one.saturated_fraction == two.saturated_fraction);
}
}  // namespace

TEST_CASE("the elementwise passes split between two threads give the same bits as one: statistics of f', "
          "log norms; vanilla, leaky and residual cells, odd B, dead units, divergence",
          "[engine][threads]") {
  // The forward step's columns (f, f', the f' statistics, finiteness) are split between the GEMM threads
  // (issue 18); sums over columns are added in column order afterwards.
  Rng rng(11);
  // N = 256, B = 7: the packed product (B >= 4 at N >= 256); the two threads get 4 and 3 columns
  const Eigen::Index n = 256, batch = 7;
  Model m;
  m.w = random_recurrent(SpectrumKind::ginibre, n, 1.3, rng);
  m.u.resize(n, 0);
  m.b = Eigen::VectorXd::Constant(n, -0.05);
  Drive d = random_seed_drive(n, batch, 80);
  d.h0 = gaussian_matrix(n, batch, 1.0, rng);
  auto both = [&](Precision p) {
    const int saved = set_gemm_threads(1);
    const GradientTrace one = run_bptt(m, d, p);
    set_gemm_threads(2);
    const GradientTrace two = run_bptt(m, d, p);
    set_gemm_threads(saved);
    return std::make_pair(one, two);
  };
  for (CellKind cell : {CellKind::vanilla, CellKind::leaky, CellKind::residual}) {
    for (ActivationKind f : {ActivationKind::tanh, ActivationKind::relu}) {  // relu: dead units, dead_fraction > 0
      for (Precision p : {Precision::float64, Precision::float32}) {
        INFO("cell " << to_string(cell) << ", activation " << to_string(f) << ", " << to_string(p));
        m.cell = cell;
        m.leak = 0.3;
        m.activation = Activation(f);
        const auto [one, two] = both(p);
        REQUIRE(one.horizon > 0);
        if (f == ActivationKind::relu) CHECK(one.dead_fraction > 0.0);
        check_same_bits(one, two);
      }
    }
  }
  // A forward pass that overflows (residual relu at radius 1e3 in float): the step where it stops and
  // everything before it are the same.
  m.cell = CellKind::residual;
  m.activation = Activation(ActivationKind::relu);
  m.w *= 1e3 / 1.3;
  const auto [one, two] = both(Precision::float32);
  REQUIRE(one.forward_diverged_at);
  check_same_bits(one, two);
}

TEST_CASE("a released tape's memory is reused by the thread's next tape, and the results do not depend on it",
          "[engine][tape]") {
  Rng rng(9);
  Model m;
  m.w = random_recurrent(SpectrumKind::ginibre, 64, 1.0, rng);
  m.u.resize(64, 0);
  m.activation = Activation(ActivationKind::tanh);
  Drive small = random_seed_drive(64, 4, 200), large = random_seed_drive(64, 8, 3000);
  small.h0 = gaussian_matrix(64, 4, 1.0, rng);
  large.h0 = gaussian_matrix(64, 8, 1.0, rng);
  const GradientTrace first = backward_pass<double>(m, small, forward_pass<double>(m, small));
  const void* held = nullptr;
  {
    const Tape<double> tape = forward_pass<double>(m, large);  // fills a larger mapping with other values
    held = tape.storage.get();
    CHECK(backward_pass<double>(m, large, tape).horizon == 3000);
  }
  const Tape<double> again = forward_pass<double>(m, small);  // on the large tape's memory, unless heap mode
  const char* mode = std::getenv("GRADFLOW_TAPE");
  if (mode == nullptr || std::string(mode) != "heap") CHECK(again.storage.get() == held);
  const GradientTrace second = backward_pass<double>(m, small, again);
  CHECK(first.log10_norm_mean == second.log10_norm_mean);
  CHECK(first.mean_sq_dact_t == second.mean_sq_dact_t);
}

#ifdef __linux__
namespace {
/// Resident memory of this process in bytes (/proc/self/statm, second field, in pages).
double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  double size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE));
}
}  // namespace

TEST_CASE("release_kept_tapes gives a finished tape's memory back to the kernel", "[engine][tape]") {
  const char* mode = std::getenv("GRADFLOW_TAPE");
  if (mode != nullptr && std::string(mode) == "heap") return;  // the heap keeps no tape of its own
  Rng rng(13);
  Model m;
  m.w = random_recurrent(SpectrumKind::ginibre, 64, 1.0, rng);
  m.u.resize(64, 0);
  m.activation = Activation(ActivationKind::tanh);
  Drive d = random_seed_drive(64, 16, 4000);  // a tape of 64 * 16 * 4000 doubles = 32.8 MB
  d.h0 = gaussian_matrix(64, 16, 1.0, rng);
  const double tape_bytes = 64.0 * 16 * 4000 * sizeof(double);
  const GradientTrace first = run_bptt<double>(m, d);  // its tape is kept, resident, for the next one
  const double kept = resident_bytes();
  release_kept_tapes();
  const double released = resident_bytes();
  INFO("resident " << kept << " bytes with the kept tape, " << released << " after release_kept_tapes");
  CHECK(kept - released >= 0.9 * tape_bytes);
  const GradientTrace second = run_bptt<double>(m, d);  // on a fresh mapping: the same numbers
  CHECK(first.log10_norm_mean == second.log10_norm_mean);
}
#endif

TEST_CASE("relu at rest: f'(0) = 1 (right slope) makes it the linear network, f'(0) = 0 (left, PyTorch's) kills "
          "the gradient at once", "[engine][relu][kink]") {
  Rng rng(77);
  const Eigen::MatrixXd w = random_recurrent(SpectrumKind::orthogonal, 40, 1.5, rng);
  Model m;
  m.w = w;
  m.u.resize(40, 0);
  m.activation = Activation(ActivationKind::relu);
  Drive d = random_seed_drive(40, 2, 50);  // h = 0, no input, no bias: every pre-activation is exactly 0
  const GradientTrace right = run_bptt<double>(m, d);
  for (Eigen::Index t = 0; t < right.horizon; ++t)  // orthogonal W times 1.5: ||g|| grows by exactly 1.5 per step
    CHECK(right.log10_norm_mean[t] - right.log10_norm_mean[t + 1] == Approx(std::log10(1.5)).margin(1e-12));
  m.activation.left_slope_at_kink = true;
  const GradientTrace left = run_bptt<double>(m, d);
  CHECK(left.zero_count[right.horizon - 1] == 2);
  CHECK(left.dead_fraction == 1.0);
}
