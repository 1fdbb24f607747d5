#include <array>
#include <atomic>
#include <cmath>
#include <memory>
#include <stdexcept>

#include <catch2/catch.hpp>
#include <omp.h>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/model/recurrent.hpp"
#include "gradflow/model/recurrent_cache.hpp"
#include "gradflow/run/scenario.hpp"
#include "gradflow/model/spectrum.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using gradflow::test::kRadiusTol;
using gradflow::test::kSpectralAgreeTol;

namespace {

Config ginibre(Eigen::Index n, double radius) {
  Config c;
  c.network.units = n;
  c.spectrum.kind = SpectrumKind::ginibre;
  c.spectrum.radius = radius;
  return c;
}

double rel(double a, double b) { return std::abs(a - b) / std::abs(b); }

}  // namespace

TEST_CASE("W at radius r is exactly r times its family's unit-radius base: rho = r, ||W||_2 = r ||base||_2 (N = 60)",
          "[cell][radius]") {
  SpectralInfo i1, i2;
  const Eigen::MatrixXd w1 = build_recurrent_matrix(ginibre(60, 1.0), 5, 1, &i1).to_dense();
  const Eigen::MatrixXd w2 = build_recurrent_matrix(ginibre(60, 2.5), 5, 1, &i2).to_dense();
  CHECK(w2 == 2.5 * w1);
  CHECK(i2.rho == 2.5);
  CHECK(i2.spectral_norm == 2.5 * i1.spectral_norm);
  // Independent solves on the rescaled matrix (dense-checked in test_spectrum).
  CHECK(rel(spectral_radius(w2), 2.5) <= kRadiusTol);
  CHECK(rel(spectral_norm(w2), i2.spectral_norm) <= kSpectralAgreeTol);
  // Another family or replicate is another draw.
  CHECK(build_recurrent_matrix(ginibre(60, 1.0), 6, 1).to_dense() != w1);
  CHECK(build_recurrent_matrix(ginibre(60, 1.0), 5, 2).to_dense() != w1);
}

TEST_CASE("a radius sweep of a file matrix rescales it with one solve: rho = r, ||W||_2 scaled (N = 40)",
          "[cell][radius]") {
  Rng rng(3);
  auto m = std::make_shared<const Eigen::MatrixXd>(gaussian_matrix(40, 40, 0.3, rng));
  const double rho0 = spectral_radius(*m), norm0 = spectral_norm(*m);
  RecurrentCache cache(2);
  for (double r : {0.5, 2.0}) {
    Config c;
    c.network.units = 40;
    c.spectrum.kind = SpectrumKind::file;
    c.spectrum.matrix = m;
    c.spectrum.radius = r;
    SpectralInfo info;
    const Eigen::MatrixXd w = build_recurrent_matrix(c, 0, 0, &info, &cache).to_dense();
    INFO("radius " << r);
    CHECK(info.rho == r);
    CHECK(rel(spectral_radius(w), r) <= kRadiusTol);
    CHECK(rel(info.spectral_norm, norm0 * r / rho0) <= kSpectralAgreeTol);
    CHECK(rel(spectral_norm(w), info.spectral_norm) <= kSpectralAgreeTol);
  }
  CHECK(cache.builds() == 1);
  CHECK(cache.hits() == 1);
}

TEST_CASE("the cache builds a base once for cells that differ only in radius, with the uncached numbers",
          "[cell][cache]") {
  RecurrentCache cache(4);
  for (double r : {0.5, 1.0, 3.0}) {
    SpectralInfo cached, plain;
    const Eigen::MatrixXd a = build_recurrent_matrix(ginibre(50, r), 7, 0, &cached, &cache).to_dense();
    const Eigen::MatrixXd b = build_recurrent_matrix(ginibre(50, r), 7, 0, &plain).to_dense();
    INFO("radius " << r);
    CHECK(a == b);
    CHECK(cached.spectral_norm == plain.spectral_norm);
  }
  CHECK(cache.builds() == 1);
  CHECK(cache.hits() == 2);
}

TEST_CASE("concurrent requests for one base build it once; a failed build is rethrown and not kept",
          "[cell][cache]") {
  RecurrentCache cache(2);
  std::atomic<int> built{0};
  const RecurrentKey key{1, 3, 42, nullptr};
  auto build = [&] {
    ++built;
    RecurrentBase b;
    b.w = Eigen::MatrixXd::Identity(3, 3);
    return b;
  };
  // Catch2's assertions are not thread-safe: the threads record what they saw, the checks run after.
  std::array<double, 16> seen{};
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 16; ++i) seen[i] = cache.get(key, build)->w(0, 0);
  for (double s : seen) CHECK(s == 1.0);
  CHECK(built == 1);

  const RecurrentKey bad{1, 3, 43, nullptr};
  CHECK_THROWS_AS(cache.get(bad, []() -> RecurrentBase { throw std::runtime_error("no"); }), std::runtime_error);
  CHECK(cache.get(bad, build)->w(2, 2) == 1.0);
  CHECK(built == 2);
}

TEST_CASE("recurrent_family: cells that differ only in spectrum.radius share it; without a radius axis it is the cell",
          "[scenario][cache]") {
  const Scenario sc = parse_scenario(R"(
[sweep]
"spectrum.radius" = [0.5, 1.0, 2.0]
"network.activation" = ["tanh", "relu"]
)", "family.toml");
  REQUIRE(sc.cell_count() == 6);
  for (std::int64_t c = 0; c < 6; ++c) CHECK(sc.recurrent_family(c) == c % 2);
  const Scenario plain = parse_scenario(R"(
[sweep]
"network.activation" = ["tanh", "relu", "sigmoid"]
"input.std" = [0.1, 0.2]
)", "plain.toml");
  for (std::int64_t c = 0; c < plain.cell_count(); ++c) CHECK(plain.recurrent_family(c) == c);
}
