// Sparse W (sparse.hpp): spectral analysis against dense references, and the engine's sparse products
// against its dense ones.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <type_traits>
#include <unistd.h>

#include <Eigen/LU>
#include <catch2/catch.hpp>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/engine/engine.hpp"
#include "gradflow/model/ensembles.hpp"
#include "gradflow/model/matrix_io.hpp"
#include "gradflow/model/sparse.hpp"
#include "gradflow/numerics/blas.hpp"
#include "reference.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using namespace gradflow::test;

namespace {

double rel_err(double x, double ref) { return std::abs(x - ref) / std::abs(ref); }

SparseMatrix random_sparse(Eigen::Index n, Eigen::Index k, std::uint64_t seed) {
  Rng rng(seed);
  SparseOptions o;
  o.in_degree = k;
  return sparse_gaussian(n, o, rng);
}

}  // namespace

TEST_CASE("sparse Arnoldi rho and Lanczos ||W||_2 agree with dense solves to 1e-10 (N = 300, 700)",
          "[sparse][spectrum]") {
  for (const auto& [n, k] : {std::pair<Eigen::Index, Eigen::Index>{300, 12}, {700, 25}}) {
    const SparseMatrix w = random_sparse(n, k, 100 + n);
    const Eigen::MatrixXd d(w);
    SolveStatus rs{}, ns{};
    const double rho = spectral_radius(w, &rs);
    const double norm = spectral_norm(w, &ns);
    INFO("N = " << n);
    CHECK(rs == SolveStatus::converged);
    CHECK(ns == SolveStatus::converged);
    CHECK(rel_err(rho, dense_rho(d)) <= kSpectralAgreeTol);
    CHECK(rel_err(norm, dense_norm(d)) <= kSpectralAgreeTol);
    const SpectralInfo info = analyse_spectrum(w);
    CHECK(info.rho == rho);
    CHECK(info.spectral_norm == norm);
    CHECK(info.message.empty());
  }
}

TEST_CASE("sparse rescale_to_radius gives rho = radius to 1e-8 by a dense solve (N = 500)", "[sparse][spectrum]") {
  const SparseMatrix w = random_sparse(500, 16, 3);
  SolveStatus st{};
  const SparseMatrix r = rescale_to_radius(w, 0.75, &st);
  CHECK(st == SolveStatus::converged);
  CHECK(rel_err(dense_rho(Eigen::MatrixXd(r)), 0.75) <= kRadiusTol);
  CHECK(rescale_to_radius(w, 0.0).nonZeros() == 0);
  CHECK_THROWS_AS(rescale_to_radius(delay_chain(50), 1.0), std::invalid_argument);  // nilpotent
}

TEST_CASE("triangular sparse W: rho is the largest diagonal modulus, exactly, without Arnoldi", "[sparse][spectrum]") {
  SparseMatrix w = random_sparse(200, 10, 8);
  SparseMatrix lower = Eigen::MatrixXd(Eigen::MatrixXd(w).triangularView<Eigen::StrictlyLower>()).sparseView();
  SolveStatus st{};
  CHECK(spectral_radius(lower, &st) == 0.0);
  CHECK(st == SolveStatus::converged);
  Eigen::MatrixXd upper = Eigen::MatrixXd(w).triangularView<Eigen::Upper>();
  upper(17, 17) = -3.5;
  CHECK(spectral_radius(SparseMatrix(upper.sparseView()), &st) == 3.5);
  CHECK(st == SolveStatus::converged);
}

TEST_CASE("a sparse permutation (every |lambda| = 1) is recognised as scaled orthogonal", "[sparse][spectrum]") {
  const Eigen::Index n = 500;
  SparseMatrix p(n, n);
  for (Eigen::Index i = 0; i < n; ++i) p.insert(i, (7 * i + 3) % n) = 2.0;  // gcd(7, 500) = 1: a permutation
  SolveStatus st{};
  CHECK(spectral_radius(p, &st) == Approx(2.0).epsilon(1e-14));
  CHECK(st == SolveStatus::converged);
}

TEST_CASE("crowded top above the dense fallback (N = 4002): rho = 1 exactly known, the same bits on 1 and 2 threads",
          "[sparse][spectrum]") {
  // Block diagonal of 2 x 2 blocks r_j [[cos t_j, -sin t_j], [sin t_j, cos t_j]]: eigenvalues r_j e^{+-i t_j}.
  // The 20 leading blocks have r_j = 1 - 1e-4 j (the top ten moduli spread 4e-4 < 3e-3: crowded, so the
  // solve needs its confirming run, which goes beside the first on two threads), the rest r_j <= 0.5.
  // Neither triangular nor a multiple of an orthogonal matrix, so Arnoldi runs; rho = r_0 = 1.
  const Eigen::Index blocks = 2001, n = 2 * blocks;
  SparseMatrix w(n, n);
  w.reserve(Eigen::VectorXi::Constant(n, 2));
  for (Eigen::Index j = 0; j < blocks; ++j) {
    const double r = j < 20 ? 1.0 - 1e-4 * double(j) : 0.5 * double(blocks - j) / double(blocks);
    const double t = 0.1 + 2.9 * double(j) / double(blocks);
    w.insert(2 * j, 2 * j) = r * std::cos(t);
    w.insert(2 * j, 2 * j + 1) = -r * std::sin(t);
    w.insert(2 * j + 1, 2 * j) = r * std::sin(t);
    w.insert(2 * j + 1, 2 * j + 1) = r * std::cos(t);
  }
  w.makeCompressed();
  SolveStatus one{}, two{};
  std::string note_one, note_two;
  const int saved = set_gemm_threads(1);
  const double rho_one = spectral_radius(w, &one, &note_one);
  set_gemm_threads(2);
  const double rho_two = spectral_radius(w, &two, &note_two);
  set_gemm_threads(saved);
  INFO("1 thread: " << note_one << "; 2 threads: " << note_two);
  CHECK(one == SolveStatus::converged);
  CHECK(rel_err(rho_one, 1.0) <= kSpectralAgreeTol);
  CHECK(two == one);
  CHECK(rho_two == rho_one);  // the same two deterministic runs, whether one after the other or side by side
  CHECK(note_two == note_one);
}

namespace {

/// Block diagonal of 2 x 2 rotations r_j R(t_j) (eigenvalues r_j e^{+-i t_j}), similar to it by S = I + G / (2
/// sqrt(N)) when `non_normal` (dense, N <= 4000): blocks 0..top-1 have r_j = 1 - step j, the rest r_j <= 0.5;
/// rho = 1 exactly (up to the similarity's rounding).
SparseMatrix rotation_blocks(Eigen::Index blocks, Eigen::Index top, double step, bool non_normal = false) {
  const Eigen::Index n = 2 * blocks;
  Eigen::MatrixXd d = Eigen::MatrixXd::Zero(n, n);
  for (Eigen::Index j = 0; j < blocks; ++j) {
    const double r = j < top ? 1.0 - step * double(j) : 0.5 * double(blocks - j) / double(blocks);
    const double t = 0.1 + 2.9 * double(j) / double(blocks);
    d.block<2, 2>(2 * j, 2 * j) << r * std::cos(t), -r * std::sin(t), r * std::sin(t), r * std::cos(t);
  }
  if (!non_normal) return d.sparseView(0.0, 0.0);
  Rng rng(7);
  const Eigen::MatrixXd s =
      Eigen::MatrixXd::Identity(n, n) + gaussian_matrix(n, n, 0.5 / std::sqrt(double(n)), rng);
  return Eigen::MatrixXd(s * d * s.inverse()).sparseView(0.0, 0.0);
}

}  // namespace

TEST_CASE("one Arnoldi run is trusted when its twenty moduli spread: rho = 1 to the radius contract (N = 2000)",
          "[sparse][spectrum]") {
  // The top ten blocks are 1e-3 apart in modulus: twenty wanted eigenvalues spread 9e-3 >= 3e-3, so the single
  // run is trusted (status converged, no dense fallback) and must have found the exact top.
  for (const bool non_normal : {false, true}) {
    const SparseMatrix w = rotation_blocks(1000, 10, 1e-3, non_normal);
    SolveStatus st{};
    std::string note;
    const double rho = spectral_radius(w, &st, &note);
    INFO("non-normal " << non_normal << ": " << note);
    CHECK(st == SolveStatus::converged);
    CHECK(note.empty());
    CHECK(rel_err(rho, non_normal ? dense_rho(Eigen::MatrixXd(w)) : 1.0) <= kRadiusTol);
    CHECK(rel_err(rho, 1.0) <= kRadiusTol);
  }
}

TEST_CASE("a crowded top is refused by the single-run rule: the dense solve decides (N = 2000)",
          "[sparse][spectrum]") {
  // Forty eigenvalues within 2e-3 of rho = 1 (twenty blocks 1e-4 apart): one run is not evidence enough that
  // the largest modulus is among its twenty, so below the dense fallback size EigenSolver gives rho.
  const SparseMatrix w = rotation_blocks(1000, 20, 1e-4);
  SolveStatus st{};
  std::string note;
  const double rho = spectral_radius(w, &st, &note);
  INFO(note);
  CHECK(st == SolveStatus::fallback);
  CHECK(note.find("moduli spread only") != std::string::npos);
  CHECK(rel_err(rho, 1.0) <= kSpectralAgreeTol);
}

TEST_CASE("random sparse W (N = 1000, 2000): one trusted Arnoldi run matches a dense EigenSolver to 1e-8",
          "[sparse][spectrum]") {
  // Disk spectra (circular law) whose top twenty moduli spread beyond 3e-3: the single-run path, at the
  // stopping tolerance of the contract, against an independent dense solve (N = 3000 added a minute of dense
  // solve to the suite and nothing the two sizes do not check).
  for (const auto& [n, k] : {std::pair<Eigen::Index, Eigen::Index>{1000, 40}, {2000, 100}}) {
    const SparseMatrix w = random_sparse(n, k, 300 + n);
    SolveStatus st{};
    std::string note;
    const double rho = spectral_radius(w, &st, &note);
    INFO("N = " << n << ", K = " << k << ": " << note);
    CHECK(st == SolveStatus::converged);
    CHECK(rel_err(rho, dense_rho(Eigen::MatrixXd(w))) <= kRadiusTol);
  }
}

TEST_CASE("a random sparse W above the dense fallback (N = 6000, K = 30): the same rho on 1 and 2 threads",
          "[sparse][spectrum]") {
  const SparseMatrix w = random_sparse(6000, 30, 5);
  SolveStatus one{}, two{};
  const int saved = set_gemm_threads(1);
  const double rho_one = spectral_radius(w, &one);
  set_gemm_threads(2);
  const double rho_two = spectral_radius(w, &two);
  set_gemm_threads(saved);
  CHECK(one == SolveStatus::converged);
  CHECK(two == one);
  CHECK(rho_two == rho_one);
  // The circular law: rho(W) -> 1 for N(0, 1/K) entries (finite-N edge fluctuations are a few percent).
  CHECK(std::abs(rho_one - 1.0) < 0.05);
}

TEMPLATE_TEST_CASE("sparse and dense storage give the same BPTT trace for every cell (N = 300, B = 3)",
                   "[sparse][engine]", float, double) {
  const SparseMatrix ws = rescale_to_radius(random_sparse(300, 15, 12), 1.4);
  Rng rng(3);
  Model dense;
  dense.w = Eigen::MatrixXd(ws);
  dense.u = gaussian_matrix(300, 5, 0.2, rng);
  dense.b = gaussian_matrix(300, 1, 0.1, rng).col(0);
  dense.activation = Activation(ActivationKind::tanh);
  Model sparse = dense;
  sparse.w.resize(0, 0);
  sparse.w_sparse = std::make_shared<const SparseMatrix>(ws);
  REQUIRE(sparse.units() == 300);
  Drive d;
  d.steps = 120;
  d.burn_in = 10;
  d.h0 = gaussian_matrix(300, 3, 0.5, rng);
  d.input_seed = 5;
  d.loss_seed = 6;
  // float products sum in another order: a few ulps per step, compounding over 120 steps.
  const double tol = std::is_same_v<TestType, float> ? 1e-3 : 1e-10;
  for (const CellKind cell : {CellKind::vanilla, CellKind::residual, CellKind::leaky}) {
    dense.cell = sparse.cell = cell;
    dense.leak = sparse.leak = 0.3;
    const GradientTrace a = run_bptt<TestType>(dense, d), b = run_bptt<TestType>(sparse, d);
    INFO(to_string(cell));
    REQUIRE(a.horizon == b.horizon);
    for (Eigen::Index t = 0; t <= a.horizon; ++t) {
      INFO("t = " << t);
      CHECK(std::abs(a.log10_norm_mean[t] - b.log10_norm_mean[t]) <= tol);
    }
    CHECK(std::abs(a.mean_abs_dact - b.mean_abs_dact) <= tol);
  }
}

TEST_CASE("kind sparse at N = 3000, K = 20 runs in sparse storage and reports its nonzeros", "[sparse][cell]") {
  Config c;
  c.network.units = 3000;
  c.network.steps = 30;
  c.network.batch = 2;
  c.analysis.burn_in = 5;
  c.spectrum.kind = SpectrumKind::sparse;
  c.spectrum.sparse.in_degree = 20;
  c.spectrum.radius = 1.1;
  const CellResult r = simulate_cell(c, 0, 0);
  CHECK(r.storage == Storage::sparse);
  CHECK(r.nonzeros == 60000.0);
  CHECK(r.spectrum.rho == 1.1);
  CHECK(r.spectrum.rho_status == SolveStatus::converged);
  CHECK(r.trace.horizon == 30);
  CHECK(cell_memory_bytes(c) < 3000.0 * 3000.0);  // far below one dense W
}

TEST_CASE("a coordinate .mtx file is read sparse and equals the dense reading", "[sparse][matrix_io]") {
  const auto dir = std::filesystem::temp_directory_path() / ("gradflow_sparse_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "w.mtx";
  std::ofstream(file) << "%%MatrixMarket matrix coordinate real symmetric\n% comment\n4 4 4\n1 1 2.5\n3 1 -1\n"
                         "4 2 0.5\n4 2 0.25\n";
  const MatrixFile f = read_matrix_file(file);
  REQUIRE(f.is_sparse());
  const Eigen::MatrixXd dense = read_matrix(file);
  CHECK(Eigen::MatrixXd(*f.sparse) == dense);
  CHECK(dense(0, 2) == -1.0);      // mirrored
  CHECK(dense(1, 3) == 0.75);      // duplicates summed, then mirrored
  CHECK(f.sparse->nonZeros() == 5);
  std::ofstream(dir / "a.mtx") << "%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n4\n";
  CHECK_FALSE(read_matrix_file(dir / "a.mtx").is_sparse());
  std::filesystem::remove_all(dir);
}
