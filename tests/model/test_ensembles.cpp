// Defining properties of the structured ensembles (ensembles.hpp) and of the cells built from them (cell.hpp).
#include <algorithm>
#include <cmath>
#include <complex>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/model/recurrent.hpp"
#include "gradflow/model/ensembles.hpp"
#include "gradflow/analysis/metrics.hpp"
#include "gradflow/run/scenario.hpp"
#include "gradflow/model/sparse.hpp"
#include "reference.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using namespace gradflow::test;

namespace {

Config base_config(SpectrumKind kind, Eigen::Index n) {
  Config c;
  c.network.units = n;
  c.spectrum.kind = kind;
  return c;
}

}  // namespace

TEST_CASE("sparse_gaussian with in_degree K has exactly K distinct columns per row and variance 1/K (N = 2000)",
          "[ensembles][sparse]") {
  Rng rng(4);
  SparseOptions o;
  o.in_degree = 25;
  const SparseMatrix w = sparse_gaussian(2000, o, rng);
  REQUIRE(w.rows() == 2000);
  REQUIRE(w.nonZeros() == 2000 * 25);
  double sum_sq = 0.0;
  for (Eigen::Index i = 0; i < w.outerSize(); ++i) {
    INFO("row " << i);
    Eigen::Index count = 0, last = -1;
    for (SparseMatrix::InnerIterator it(w, i); it; ++it) {
      CHECK(it.col() > last);  // strictly increasing: distinct columns
      last = it.col();
      sum_sq += it.value() * it.value();
      ++count;
    }
    CHECK(count == 25);
  }
  // Mean of 50000 chi-square(1)/K values: relative std sqrt(2/50000) = 0.6 %; 5 sigma.
  CHECK(sum_sq / double(w.nonZeros()) == Approx(1.0 / 25).epsilon(5 * std::sqrt(2.0 / 50000)));
}

TEST_CASE("sparse_gaussian with density p has ~p N^2 nonzeros and depends only on its stream (N = 1000)",
          "[ensembles][sparse]") {
  SparseOptions o;
  o.density = 0.01;
  Rng a(9), b(9), c(10);
  const SparseMatrix wa = sparse_gaussian(1000, o, a), wb = sparse_gaussian(1000, o, b), wc = sparse_gaussian(1000, o, c);
  // Binomial(1e6, 0.01): mean 1e4, std ~99.5; 5 sigma.
  CHECK(std::abs(double(wa.nonZeros()) - 1e4) <= 5 * std::sqrt(1e6 * 0.01 * 0.99));
  CHECK(Eigen::MatrixXd(wa) == Eigen::MatrixXd(wb));
  CHECK(Eigen::MatrixXd(wa) != Eigen::MatrixXd(wc));
  o.density = 1.0;  // full: every entry, through selection sampling
  Rng d(1);
  CHECK(sparse_gaussian(50, o, d).nonZeros() == 2500);
  SparseOptions both;
  both.density = 0.1;
  both.in_degree = 3;
  CHECK_THROWS_AS(sparse_gaussian(10, both, d), std::invalid_argument);
  CHECK_THROWS_AS(sparse_gaussian(10, SparseOptions{}, d), std::invalid_argument);
}

TEST_CASE("kind sparse: rho(W) = radius to 1e-8 against a dense solve, in either storage (N = 520, 600)",
          "[ensembles][sparse][radius]") {
  for (const auto& [n, density, in_degree] : {std::tuple<Eigen::Index, double, Eigen::Index>{600, 0.0, 20},
                                              std::tuple<Eigen::Index, double, Eigen::Index>{520, 0.03, 0}}) {
    for (const StoragePolicy storage : {StoragePolicy::automatic, StoragePolicy::dense}) {
      Config c = base_config(SpectrumKind::sparse, n);
      c.spectrum.sparse.density = density;
      c.spectrum.sparse.in_degree = in_degree;
      c.spectrum.radius = 1.3;
      c.spectrum.storage = storage;
      SpectralInfo info;
      const RecurrentMatrix w = build_recurrent_matrix(c, 2, 1, &info);
      INFO("N = " << n << " storage " << to_string(storage));
      // Fill 3.3 % and 3 % at N >= 512: the automatic rule stores them sparse.
      CHECK(w.is_sparse() == (storage == StoragePolicy::automatic));
      CHECK(info.rho == 1.3);
      CHECK(info.rho_status == SolveStatus::converged);
      const Eigen::MatrixXd dense = w.to_dense();
      CHECK(std::abs(dense_rho(dense) - 1.3) <= kRadiusTol * 1.3);
      CHECK(std::abs(info.spectral_norm - dense_norm(dense)) <= kSpectralAgreeTol * dense_norm(dense));
    }
  }
}

TEST_CASE("the automatic storage rule: sparse from N = 512 up to 10% fill, dense otherwise", "[ensembles][storage]") {
  CHECK(choose_storage(StoragePolicy::automatic, 512, 0.1 * 512 * 512) == Storage::sparse);
  CHECK(choose_storage(StoragePolicy::automatic, 512, 0.1 * 512 * 512 + 1) == Storage::dense);
  CHECK(choose_storage(StoragePolicy::automatic, 511, 511) == Storage::dense);
  CHECK(choose_storage(StoragePolicy::dense, 100000, 1e7) == Storage::dense);
  CHECK(choose_storage(StoragePolicy::sparse, 10, 100) == Storage::sparse);
  Config c = base_config(SpectrumKind::chain, 1000);
  CHECK(expected_storage(c) == Storage::sparse);  // 999 nonzeros
  c.spectrum.kind = SpectrumKind::ginibre;
  CHECK(expected_storage(c) == Storage::dense);
  for (const char* name : {"auto", "dense", "sparse"}) CHECK(to_string(parse_storage_policy(name)) == name);
  CHECK_THROWS_AS(parse_storage_policy("csr"), std::invalid_argument);
}

TEST_CASE("kind nonnormal: rho(W) = radius for every s while ||W||_2 / rho grows with s (N = 120)",
          "[ensembles][nonnormal]") {
  const double radius = 0.9;
  std::vector<double> ratio;
  for (const double s : {0.0, 0.5, 1.0, 2.0, 4.0}) {
    Rng rng(77);  // the same D, R and Q for every s
    const Eigen::MatrixXd w = nonnormal_matrix(120, radius, s, rng);
    INFO("s = " << s);
    const double norm = dense_norm(w);
    ratio.push_back(norm / radius);
    // Eigenvalues of a strongly non-normal matrix are ill-conditioned: checked where rounding allows it.
    if (s <= 1.0) CHECK(std::abs(dense_rho(w) - radius) <= kRadiusTol * radius);
  }
  CHECK(std::abs(ratio[0] - 1.0) <= kOrthogonalityTol * 10);  // s = 0: Q D Q^T is normal, ||W||_2 = rho
  for (std::size_t k = 1; k < ratio.size(); ++k) {
    INFO("k = " << k);
    CHECK(ratio[k] > ratio[k - 1]);
  }
  CHECK(ratio.back() > 2.0);
}

TEST_CASE("kind nonnormal through build_recurrent reports rho = radius and the measured ||W||_2", "[ensembles][nonnormal]") {
  Config c = base_config(SpectrumKind::nonnormal, 80);
  c.spectrum.radius = 0.7;
  c.spectrum.nonnormality = 1.5;
  SpectralInfo info;
  const Eigen::MatrixXd w = build_recurrent_matrix(c, 0, 0, &info).to_dense();
  CHECK(info.rho == 0.7);
  CHECK(std::abs(dense_rho(w) - 0.7) <= kRadiusTol * 0.7);
  CHECK(std::abs(info.spectral_norm - dense_norm(w)) <= kSpectralAgreeTol * dense_norm(w));
  CHECK(info.spectral_norm > 1.5 * 0.7);
}

TEST_CASE("kind chain: a shift with rho = 0 and ||W||_2 = 1; a linear gradient survives exactly N - 1 lags",
          "[ensembles][chain]") {
  const Eigen::Index n = 40, steps = 70, batch = 3;
  Config c = base_config(SpectrumKind::chain, n);
  SpectralInfo info;
  const RecurrentMatrix w = build_recurrent_matrix(c, 0, 0, &info);
  CHECK(info.rho == 0.0);
  CHECK(info.spectral_norm == 1.0);
  const Eigen::MatrixXd dense = w.to_dense();
  CHECK(dense.sum() == double(n - 1));
  CHECK(dense.diagonal(-1) == Eigen::VectorXd::Ones(n - 1));
  CHECK(dense_norm(dense) == Approx(1.0).epsilon(1e-14));
  SolveStatus st{};
  CHECK(spectral_radius(dense, &st) == 0.0);  // triangular: the diagonal, exactly
  CHECK(st == SolveStatus::converged);
  const SparseMatrix sp = dense.sparseView();
  CHECK(spectral_radius(sp, &st) == 0.0);
  CHECK(st == SolveStatus::converged);

  // Identity activation, no input: g_{t-1} = W^T g_t shifts the seed up by one unit per step, so g at lag k
  // keeps the seed's last N - k components: nonzero for k <= N - 1, exactly zero from k = N on.
  c.network.steps = steps;
  c.network.batch = batch;
  c.network.activation = ActivationKind::identity;
  c.input.kind = InputKind::none;
  c.analysis.burn_in = 0;
  const CellResult r = simulate_cell(c, 0, 0);
  REQUIRE(r.trace.horizon == steps);
  for (Eigen::Index k = 0; k <= steps; ++k) {
    INFO("lag " << k);
    CHECK(r.trace.zero_count[steps - k] == (k >= n ? batch : 0));
  }
  REQUIRE(r.metrics.grad_zero_at);
  CHECK(*r.metrics.grad_zero_at == steps - n);
  CHECK(r.storage == Storage::dense);  // N = 40 < 512
}

TEST_CASE("kind chain rejects a radius: it is nilpotent", "[ensembles][chain]") {
  Config c = base_config(SpectrumKind::chain, 10);
  c.spectrum.radius = 0.5;
  CHECK_THROWS_WITH(validate_config(c), Catch::Contains("chain\" is nilpotent"));
}

TEST_CASE("kind dale: column signs in the mean, zero row sums when balanced, Rajan-Abbott bulk and outlier (N = 400)",
          "[ensembles][dale]") {
  const Eigen::Index n = 400;
  DaleOptions o;  // f = 0.8, mean_e 1, std_e 0.3, mean_i -4, std_i 1.2
  Rng rng(21);
  const Eigen::MatrixXd w = dale_matrix(n, o, rng);
  const Eigen::Index ne = dale_excitatory_count(n, o.excitatory);
  REQUIRE(ne == 320);
  const Eigen::VectorXd col_mean = w.colwise().mean().transpose() * std::sqrt(double(n));
  // Column means of 400 N(mu, sigma^2) entries: std sigma / 20; 5 sigma.
  for (Eigen::Index j = 0; j < n; ++j) {
    INFO("column " << j);
    if (j < ne) CHECK(std::abs(col_mean[j] - o.mean_e) <= 5 * o.std_e / 20);
    else CHECK(std::abs(col_mean[j] - o.mean_i) <= 5 * o.std_i / 20);
  }

  DaleOptions balanced = o;
  balanced.balance = true;
  Rng rng2(21);
  const Eigen::MatrixXd wb = dale_matrix(n, balanced, rng2);
  const double scale = wb.cwiseAbs().maxCoeff();
  CHECK(wb.rowwise().sum().cwiseAbs().maxCoeff() <= 1e-13 * scale * double(n));
  // Balanced: no outlier, the eigenvalues fill the predicted bulk disk (edge within finite-size 10 %).
  const DaleSpectrum pb = dale_prediction(n, balanced);
  CHECK(pb.outlier == 0.0);
  CHECK(pb.bulk_radius == Approx(std::sqrt(0.8 * 0.09 + 0.2 * 1.44)));
  CHECK(std::abs(dense_rho(wb) / pb.bulk_radius - 1.0) <= 0.10);

  // Unbalanced means: the rank-one mean part puts a real outlier at (N_E mu_E + N_I mu_I) / sqrt(N).
  DaleOptions excit = o;
  excit.mean_i = -1.0;
  Rng rng3(5);
  const Eigen::MatrixXd we = dale_matrix(n, excit, rng3);
  const DaleSpectrum pe = dale_prediction(n, excit);
  CHECK(pe.outlier == Approx((320.0 - 80.0) / 20.0));
  const Eigen::VectorXcd ev = dense_eigenvalues(we);
  Eigen::Index top = 0;
  ev.cwiseAbs().maxCoeff(&top);
  const std::complex<double> lambda = ev[top];
  CHECK(lambda.imag() == 0.0);
  CHECK(std::abs(lambda.real() / pe.outlier - 1.0) <= 0.05);
  const Eigen::VectorXd m = sorted_moduli(we);
  CHECK(m(1) <= 1.15 * pe.bulk_radius);  // everything else stays in the bulk
}

TEST_CASE("kind dale through build_recurrent: rho = radius exactly, bulk and outlier at the built scale",
          "[ensembles][dale]") {
  Config c = base_config(SpectrumKind::dale, 300);
  c.spectrum.radius = 1.0;
  c.spectrum.dale.mean_i = -1.0;  // excitation dominates: outlier ~ (240 - 60) / sqrt(300) ~ 10 before the rescale
  SpectralInfo info;
  const Eigen::MatrixXd w = build_recurrent_matrix(c, 0, 0, &info).to_dense();
  CHECK(std::abs(dense_rho(w) - 1.0) <= kRadiusTol);
  REQUIRE(info.bulk_radius);
  REQUIRE(info.outlier);
  // The outlier is rho (to finite-size accuracy) and the bulk shrinks by the same factor.
  CHECK(*info.outlier == Approx(1.0).epsilon(0.05));
  const DaleSpectrum p = dale_prediction(300, c.spectrum.dale);
  CHECK(*info.bulk_radius / *info.outlier == Approx(p.bulk_radius / p.outlier).epsilon(1e-12));
  CHECK(sorted_moduli(w)(1) <= 1.15 * *info.bulk_radius);
}

TEST_CASE("non-normal W below radius 1 shows transient growth of ||g_t|| before it vanishes (N = 100)",
          "[ensembles][nonnormal][transient]") {
  Config c = base_config(SpectrumKind::nonnormal, 100);
  c.network.steps = 300;
  c.network.batch = 4;
  c.network.activation = ActivationKind::identity;
  c.input.kind = InputKind::none;
  c.analysis.burn_in = 0;
  c.spectrum.radius = 0.9;
  c.spectrum.nonnormality = 0.0;
  const CellResult normal = simulate_cell(c, 0, 0);
  c.spectrum.nonnormality = 3.0;
  const CellResult skewed = simulate_cell(c, 0, 0);
  // Normal W: ||g_t|| <= rho^k ||g_T||, no growth at all. Non-normal: a peak far above the seed first.
  REQUIRE(normal.metrics.transient_peak);
  CHECK(*normal.metrics.transient_peak == 0.0);
  CHECK(*normal.metrics.transient_peak_lag == 0);
  REQUIRE(skewed.metrics.transient_peak);
  CHECK(*skewed.metrics.transient_peak > 1.0);  // more than a factor 10
  CHECK(*skewed.metrics.transient_peak_lag > 0);
  // Both vanish asymptotically at rate rho = 0.9 (a linear RNN decays at exactly rho(W)).
  for (const CellResult* r : {&normal, &skewed}) {
    REQUIRE(r->metrics.fit.growth_rate);
    CHECK(*r->metrics.fit.growth_rate < 1.0);
  }
  CHECK(std::abs(*normal.metrics.fit.growth_rate - 0.9) <= kGrowthRateTol * 0.9);
  CHECK(skewed.metrics.bound > 1.0);  // the classical bound cannot tell
}
