// Gated cells (gru, lstm, minimalrnn): per-step gradient norms against PyTorch autograd on exported weights
// (committed reference data, tests/data/torch_reference.py), central finite differences of the loss and of the
// step map, an independent QR computation of the Lyapunov exponents, and the limits where a gate closes.
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <Eigen/QR>
#include <catch2/catch.hpp>

#include "gradflow/analysis/lyapunov.hpp"
#include "gradflow/analysis/simulate.hpp"
#include "gradflow/engine/cell.hpp"
#include "gradflow/engine/engine.hpp"
#include "gradflow/model/network.hpp"
#include "gradflow/model/spectrum.hpp"
#include "gradflow/numerics/random.hpp"
#include "gradflow/run/scenario.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using namespace gradflow::test;

namespace {

constexpr double kTorchLog10Tol = 1e-8;  // issue contract: per-step log10 norms equal torch's in float64

/// The columns of a reference.csv (header, then rows of numbers), by name.
std::vector<std::vector<double>> read_reference(const std::string& path, std::vector<std::string>* header) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::stringstream hs(line);
  for (std::string f; std::getline(hs, f, ',');) header->push_back(f);
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    std::stringstream ls(line);
    std::vector<double> row;
    for (std::string f; std::getline(ls, f, ',');) row.push_back(std::stod(f));
    rows.push_back(row);
  }
  return rows;
}

/// A seeded random gated model: N units, input dim, gates.bias-like memory bias, gate blocks at `radius`.
Model random_model(CellKind kind, Eigen::Index n, Eigen::Index dim, double radius, std::uint64_t seed) {
  Rng rng(seed);
  const Eigen::Index g = gate_blocks(kind);
  Model m;
  m.cell = kind;
  m.activation = Activation(ActivationKind::tanh);
  m.w = gaussian_matrix(g * n, n, radius / std::sqrt(double(n)), rng);
  const Eigen::Index rows = kind == CellKind::minimalrnn ? n : g * n;
  m.u = gaussian_matrix(rows, dim, 0.8 / std::sqrt(double(dim)), rng);
  m.b = gaussian_matrix(rows, 1, 0.3, rng).col(0);
  m.b_recurrent = gaussian_matrix(g * n, 1, 0.3, rng).col(0);
  if (kind == CellKind::minimalrnn) m.w_gate_input = gaussian_matrix(n, n, 1.0 / std::sqrt(double(n)), rng);
  return m;
}

/// One trajectory driven by a fixed input sequence, from (h0, c0).
Drive fixed_drive(const Model& m, Eigen::Index steps, std::uint64_t seed) {
  Rng rng(seed);
  const Eigen::Index n = m.units();
  Drive d;
  d.steps = steps;
  d.h0 = gaussian_matrix(n, 1, 0.5, rng);
  if (m.cell == CellKind::lstm) d.c0 = gaussian_matrix(n, 1, 0.5, rng);
  d.inputs = std::make_shared<const Eigen::MatrixXd>(gaussian_matrix(steps, m.u.cols(), 1.0, rng));
  d.loss = LossKind::final_state;
  return d;
}

/// L = 0.5 ||h_T||^2 of a forward run.
double loss(const Model& m, const Drive& d) {
  const Tape<double> tape = forward_pass<double>(m, d);
  return 0.5 * tape.final_state.topRows(m.units()).squaredNorm();
}

/// One step of the cell from state s with input x (no tape kept): S_t = F(S_{t-1}).
Eigen::VectorXd step(const Model& m, const Eigen::VectorXd& s, const Eigen::VectorXd& x) {
  auto cell = make_cell<double>(m, Pass::forward, 1);
  Eigen::MatrixXd tape(cell->tape_rows(), 1), next(s.size(), 1);
  StepInput<double> in;
  in.shared = &x;
  cell->forward(s, in, next, tape.data(), nullptr);
  return next.col(0);
}

}  // namespace

TEST_CASE("gated cells: per-step log10 ||dL/dS_t|| equal PyTorch autograd on exported weights to 1e-8",
          "[gated][torch]") {
  for (const std::string name : {"rnn", "gru", "lstm"}) {
    INFO("case " << name);
    const std::string dir = std::string(GRADFLOW_TEST_DATA) + "/data/torch_ref/";
    const Scenario sc = load_scenario(dir + name + ".toml");
    const CellResult r = simulate_cell(sc.cell_config(0), 0, 0);
    std::vector<std::string> header;
    const auto ref = read_reference(dir + name + "/reference.csv", &header);
    REQUIRE(ref.size() == static_cast<std::size_t>(r.trace.horizon + 1));
    for (const auto& row : ref) {
      const auto t = static_cast<std::size_t>(row[0]);
      INFO("t = " << t);
      CHECK(std::abs(r.trace.log10_norm_mean[t] - row[1]) <= kTorchLog10Tol);
      CHECK(std::abs(r.trace.log10_norm_min[t] - row[2]) <= kTorchLog10Tol);
      CHECK(std::abs(r.trace.log10_norm_max[t] - row[3]) <= kTorchLog10Tol);
      if (name == "lstm") CHECK(std::abs(r.trace.log10_norm_h_mean[t] - row[4]) <= kTorchLog10Tol);
    }
  }
}

TEST_CASE("gated cells: ||dL/dS_0|| from BPTT equals central finite differences of L = 0.5 ||h_T||^2",
          "[gated][fd]") {
  for (const CellKind kind : {CellKind::gru, CellKind::lstm, CellKind::minimalrnn}) {
    INFO("cell " << to_string(kind));
    const Model m = random_model(kind, 7, 3, 1.6, 5);
    const Drive d = fixed_drive(m, 25, 9);
    const GradientTrace tr = backward_pass<double>(m, d, forward_pass<double>(m, d));
    // dL/dS_0 by central differences on every coordinate of the initial state (h_0, and c_0 for lstm).
    const Eigen::Index n = m.units(), s = state_vectors(kind) * n;
    Eigen::VectorXd grad(s), grad_h(n);
    const double eps = 1e-4;  // truncation O(eps^2) ~ 1e-8 relative; rounding 1e-16 / eps stays far below
    for (Eigen::Index i = 0; i < s; ++i) {
      Drive plus = d, minus = d;
      Eigen::MatrixXd& p = i < n ? plus.h0 : plus.c0;
      Eigen::MatrixXd& q = i < n ? minus.h0 : minus.c0;
      p(i % n, 0) += eps;
      q(i % n, 0) -= eps;
      grad[i] = (loss(m, plus) - loss(m, minus)) / (2 * eps);
    }
    grad_h = grad.head(n);
    CHECK(std::pow(10.0, tr.log10_norm_mean[0]) == Approx(grad.norm()).epsilon(kFiniteDiffTol));
    if (kind == CellKind::lstm)
      CHECK(std::pow(10.0, tr.log10_norm_h_mean[0]) == Approx(grad_h.norm()).epsilon(kFiniteDiffTol));
  }
}

TEST_CASE("gated cells: the tangent step J q and the BPTT step J^T g agree with finite differences of the step map",
          "[gated][jvp]") {
  for (const CellKind kind : {CellKind::gru, CellKind::lstm, CellKind::minimalrnn}) {
    INFO("cell " << to_string(kind));
    const Model m = random_model(kind, 6, 2, 1.3, 17);
    const Eigen::Index n = m.units(), size = state_vectors(kind) * n;
    Rng rng(23);
    const Eigen::VectorXd s = gaussian_matrix(size, 1, 0.7, rng).col(0);
    const Eigen::VectorXd x = gaussian_matrix(2, 1, 1.0, rng).col(0);
    const Eigen::VectorXd q = gaussian_matrix(size, 1, 1.0, rng).col(0);
    const Eigen::VectorXd g = gaussian_matrix(size, 1, 1.0, rng).col(0);
    // The full step Jacobian by central differences.
    const double eps = 1e-6;
    Eigen::MatrixXd jac(size, size);
    for (Eigen::Index i = 0; i < size; ++i) {
      Eigen::VectorXd sp = s, sm = s;
      sp[i] += eps;
      sm[i] -= eps;
      jac.col(i) = (step(m, sp, x) - step(m, sm, x)) / (2 * eps);
    }
    // The cell's own tape at s, then its tangent and backward steps.
    auto fwd = make_cell<double>(m, Pass::forward, 1);
    Eigen::MatrixXd tape(fwd->tape_rows(), 1), next(size, 1);
    StepInput<double> in;
    in.shared = &x;
    REQUIRE(fwd->forward(s, in, next, tape.data(), nullptr));
    auto tan = make_cell<double>(m, Pass::tangent, 1);
    Eigen::MatrixXd jq = q;
    tan->tangent(tape.data(), jq, 1);
    CHECK((jq.col(0) - jac * q).norm() <= kFiniteDiffTol * (jac * q).norm());
    auto bwd = make_cell<double>(m, Pass::backward, 1);
    Eigen::MatrixXd gm = g, jtg(size, 1);
    const double one = 1.0;
    bwd->backward(tape.data(), gm, &one, jtg);
    CHECK((jtg.col(0) - jac.transpose() * g).norm() <= kFiniteDiffTol * (jac.transpose() * g).norm());
  }
}

TEST_CASE("gru: Lyapunov exponents equal an independent QR iteration over finite-difference Jacobians",
          "[gated][lyapunov]") {
  const Model m = random_model(CellKind::gru, 6, 2, 2.5, 31);
  const Eigen::Index n = m.units(), steps = 60;
  Drive d = fixed_drive(m, steps, 37);
  const Tape<double> tape = forward_pass<double>(m, d);
  LyapunovOptions opt;
  opt.count = n;
  opt.burn_in = 0;
  opt.interval = 1;
  opt.seed = 43;
  const LyapunovResult ly = lyapunov_spectrum<double>(m, tape, opt);
  REQUIRE(ly.status == LyapunovStatus::ok);

  // Independent: the states of the same run, J_t by central differences of the step map, Q_t R_t = J_t Q_{t-1}.
  Rng rng(opt.seed);
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(gaussian_matrix(n, n, 1.0, rng));
  Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(n, n);
  Eigen::VectorXd h = d.h0.col(0), sum = Eigen::VectorXd::Zero(n);
  for (Eigen::Index t = 1; t <= steps; ++t) {
    const Eigen::VectorXd x = d.inputs->row(t - 1).transpose();
    Eigen::MatrixXd jac(n, n);
    for (Eigen::Index i = 0; i < n; ++i) {
      Eigen::VectorXd hp = h, hm = h;
      hp[i] += 1e-6;
      hm[i] -= 1e-6;
      jac.col(i) = (step(m, hp, x) - step(m, hm, x)) / 2e-6;
    }
    qr.compute(jac * q);
    for (Eigen::Index i = 0; i < n; ++i) sum[i] += std::log(std::abs(qr.matrixQR()(i, i)));
    q = qr.householderQ() * Eigen::MatrixXd::Identity(n, n);
    h = step(m, h, x);
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    INFO("exponent " << i + 1);
    CHECK(ly.exponents[static_cast<std::size_t>(i)] == Approx(sum[i] / double(steps)).margin(kFiniteDiffTol));
  }
}

TEST_CASE("gru with its update gate shut (gates.bias -> +inf, z = 1) keeps ||g_t|| constant", "[gated][limits]") {
  Model m = random_model(CellKind::gru, 20, 3, 2.0, 3);
  m.b.segment(20, 20).setConstant(100.0);  // z = sigmoid(100 + ...) = 1 in double
  Drive d = fixed_drive(m, 200, 4);
  d.loss = LossKind::random;
  const GradientTrace tr = run_bptt<double>(m, d);
  for (Eigen::Index t = 0; t <= tr.horizon; ++t) CHECK(std::abs(tr.log10_norm_mean[t]) <= kIdentityNormTol);
}

TEST_CASE("lstm with f = 1 and i = 0 carries the c gradient unchanged", "[gated][limits]") {
  Model m = random_model(CellKind::lstm, 8, 2, 1.5, 12);
  m.b.segment(0, 8).setConstant(-100.0);  // i = 0
  m.b.segment(8, 8).setConstant(100.0);   // f = 1
  const Eigen::Index n = 8;
  Rng rng(14);
  Eigen::MatrixXd s = gaussian_matrix(2 * n, 1, 0.6, rng);
  const Eigen::VectorXd x = gaussian_matrix(2, 1, 1.0, rng).col(0);
  auto fwd = make_cell<double>(m, Pass::forward, 1);
  auto bwd = make_cell<double>(m, Pass::backward, 1);
  Eigen::MatrixXd tape(fwd->tape_rows(), 1), next(2 * n, 1);
  StepInput<double> in;
  in.shared = &x;
  Eigen::MatrixXd g = Eigen::MatrixXd::Zero(2 * n, 1);
  g.bottomRows(n) = gaussian_matrix(n, 1, 1.0, rng);
  const Eigen::MatrixXd g_c = g.bottomRows(n);
  const double one = 1.0;
  for (int t = 0; t < 50; ++t) {
    REQUIRE(fwd->forward(s, in, next, tape.data(), nullptr));
    s = next;
    Eigen::MatrixXd g_prev(2 * n, 1);
    bwd->backward(tape.data(), g, &one, g_prev);
    g = g_prev;
  }
  // sigmoid(+-100) is 1 or 3.7e-44 in double: the h gradient is ~1e-44, the c gradient unchanged to rounding.
  CHECK(g.topRows(n).norm() <= 1e-30);
  CHECK((g.bottomRows(n) - g_c).norm() <= kIdentityNormTol * g_c.norm());
}

TEST_CASE("gated cells: a step whose next state is not finite says so, wherever the bad value sits", "[gated][divergence]") {
  // n = 19: the bad value lands in the vectorised check's remainder as well as in its full vectors.
  const Eigen::Index n = 19, batch = 3;
  for (CellKind kind : {CellKind::gru, CellKind::lstm, CellKind::minimalrnn}) {
    const Model m = random_model(kind, n, 2, 1.2, 21);
    auto cell = make_cell<double>(m, Pass::forward, batch);
    Rng rng(22);
    const Eigen::Index size = cell->state_size();
    const Eigen::MatrixXd x = gaussian_matrix(2, batch, 1.0, rng);
    StepInput<double> in;
    in.per_trajectory = &x;
    Eigen::MatrixXd tape(cell->tape_rows(), batch), next(size, batch);
    const Eigen::MatrixXd s = gaussian_matrix(size, batch, 0.5, rng);
    INFO("cell " << static_cast<int>(kind));
    CHECK(cell->forward(s, in, next, tape.data(), nullptr));
    for (const double bad : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
      for (const Eigen::Index row : {Eigen::Index(0), Eigen::Index(8), n - 1}) {
        Eigen::MatrixXd s_bad = s;
        s_bad(size - n + row, batch - 1) = bad;  // the last trajectory's h, or c for the LSTM (its h is squashed)
        INFO("bad value " << bad << " in row " << row);
        CHECK_FALSE(cell->forward(s_bad, in, next, tape.data(), nullptr));
      }
    }
  }
}

TEST_CASE("gated predictors: drawn blocks carry their exact rho and ||.||_2 from construction, equal to solving "
          "each block (N = 120, every gated cell)",
          "[gated][predictors]") {
  for (const CellKind kind : {CellKind::gru, CellKind::lstm, CellKind::minimalrnn}) {
    INFO("cell " << to_string(kind));
    Config cfg;
    cfg.seed = 21;
    cfg.network.cell = kind;
    cfg.network.units = 120;
    cfg.spectrum.radius = 1.3;
    cfg.gates.radius = 0.7;
    const Model drawn = build_model(cfg, 0, 0, nullptr, 0, nullptr);
    const Eigen::Index n = drawn.units();
    const auto blocks = static_cast<std::size_t>(drawn.w.rows() / n);
    REQUIRE(drawn.block_rho.size() == blocks);
    REQUIRE(drawn.block_norm.size() == blocks);
    for (std::size_t k = 0; k < blocks; ++k) {
      INFO("block " << k);
      const Eigen::MatrixXd block = drawn.w.middleRows(static_cast<Eigen::Index>(k) * n, n);
      const bool candidate = static_cast<int>(k) == candidate_block(kind) && kind != CellKind::minimalrnn;
      CHECK(drawn.block_rho[k] == (candidate ? 1.3 : 0.7));  // the radius the block was scaled to, exactly
      CHECK(spectral_radius(block) == Approx(drawn.block_rho[k]).epsilon(kSpectralAgreeTol));
      CHECK(spectral_norm(block) == Approx(drawn.block_norm[k]).epsilon(kSpectralAgreeTol));
    }
    // The predictors from the construction's values equal those of the same weights solved block by block
    // (an imported model: no construction data).
    Model solved = drawn;
    solved.block_rho.clear();
    solved.block_norm.clear();
    const std::size_t coefs = kind == CellKind::gru ? 5 : kind == CellKind::lstm ? 8 : 2;
    std::vector<double> mean(coefs), rms(coefs), max_abs(coefs);
    for (std::size_t i = 0; i < coefs; ++i) {
      mean[i] = 0.1 + 0.07 * double(i);
      rms[i] = 0.15 + 0.05 * double(i);
      max_abs[i] = 0.3 + 0.1 * double(i);
    }
    const CellPredictors a = gated_predictors(drawn, mean, rms, max_abs);
    const CellPredictors b = gated_predictors(solved, mean, rms, max_abs);
    CHECK(a.predictor == b.predictor);  // the mean Jacobian is solved in both
    CHECK(a.predictor_rms == Approx(b.predictor_rms).epsilon(kSpectralAgreeTol));
    CHECK(a.bound == Approx(b.bound).epsilon(kSpectralAgreeTol));
  }
}
