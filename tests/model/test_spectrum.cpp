#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

// Third party
#include <Eigen/QR>
#include <catch2/catch.hpp>

#include "gradflow/numerics/random.hpp"
#include "gradflow/model/spectrum.hpp"
#include "reference.hpp"
#include "tolerances.hpp"

using gradflow::Rng;
using gradflow::SolveStatus;
using gradflow::SpectrumKind;
using namespace gradflow::test;

namespace {

double rel_err(double x, double ref) { return std::abs(x - ref) / std::abs(ref); }

// An orthogonal fixture (the Q of a Gaussian matrix, no Haar sign fix needed): every |lambda| = 1.
Eigen::MatrixXd some_orthogonal(Eigen::Index n, Rng& rng) {
  return Eigen::HouseholderQR<Eigen::MatrixXd>(gradflow::gaussian_matrix(n, n, 1.0, rng)).householderQ();
}

}  // namespace

TEST_CASE("spectrum kind and solve status names round-trip and unknown names are rejected", "[spectrum]") {
  for (const auto kind :
       {SpectrumKind::ginibre, SpectrumKind::orthogonal, SpectrumKind::symmetric, SpectrumKind::file,
        SpectrumKind::sparse, SpectrumKind::nonnormal, SpectrumKind::chain, SpectrumKind::dale})
    CHECK(gradflow::parse_spectrum_kind(gradflow::to_string(kind)) == kind);
  CHECK(gradflow::to_string(SpectrumKind::ginibre) == "ginibre");
  CHECK(gradflow::to_string(SolveStatus::converged) == "converged");
  CHECK(gradflow::to_string(SolveStatus::fallback) == "fallback");
  CHECK(gradflow::to_string(SolveStatus::not_converged) == "not_converged");
  CHECK_THROWS_MATCHES(gradflow::parse_spectrum_kind("gaussian"), std::invalid_argument,
                       Catch::Message("unknown spectrum kind \"gaussian\": expected one of ginibre, "
                                      "orthogonal, symmetric, file, sparse, nonnormal, chain, dale"));
  CHECK_THROWS_AS(gradflow::parse_spectrum_kind("Ginibre"), std::invalid_argument);
}

TEST_CASE("random_recurrent has rho(W) = radius to 1e-8 by a dense solve (N = 50, 500)", "[spectrum]") {
  const auto kind = GENERATE(SpectrumKind::ginibre, SpectrumKind::orthogonal, SpectrumKind::symmetric);
  const auto n = GENERATE(as<Eigen::Index>{}, 50, 500);
  const double radius = GENERATE(0.5, 1.0, 2.5);
  Rng rng(12345);
  const Eigen::MatrixXd w = gradflow::random_recurrent(kind, n, radius, rng);
  INFO("kind = " << gradflow::to_string(kind) << ", N = " << n << ", radius = " << radius);
  REQUIRE(w.rows() == n);
  REQUIRE(w.cols() == n);
  CHECK(rel_err(dense_rho(w), radius) <= kRadiusTol);
  if (n == 50) {  // the library's own dense listing agrees (cheap at this size)
    const Eigen::VectorXcd lambda = gradflow::eigenvalues(w);
    REQUIRE(lambda.size() == n);
    CHECK(rel_err(lambda.cwiseAbs().maxCoeff(), radius) <= kRadiusTol);
  }
}

TEST_CASE("random_recurrent with radius 0 is the zero matrix", "[spectrum]") {
  const auto kind = GENERATE(SpectrumKind::ginibre, SpectrumKind::orthogonal, SpectrumKind::symmetric);
  Rng rng(12345);
  const Eigen::MatrixXd w = gradflow::random_recurrent(kind, 30, 0.0, rng);
  CHECK(w.rows() == 30);
  CHECK(w.isZero(0.0));
  CHECK(gradflow::spectral_radius(w) == 0.0);
  CHECK(gradflow::spectral_norm(w) == 0.0);
}

TEST_CASE("orthogonal W / r is orthogonal: W^T W = r^2 I and ||W||_2 = rho = r (N = 50, 500)", "[spectrum]") {
  const auto n = GENERATE(as<Eigen::Index>{}, 50, 500);
  const double r = GENERATE(0.5, 2.5);
  Rng rng(12345);
  const Eigen::MatrixXd w = gradflow::random_recurrent(SpectrumKind::orthogonal, n, r, rng);
  INFO("N = " << n << ", r = " << r);
  const Eigen::MatrixXd defect = w.transpose() * w / (r * r) - Eigen::MatrixXd::Identity(n, n);
  CHECK(defect.cwiseAbs().maxCoeff() <= kOrthogonalityTol);
  SolveStatus status{};
  CHECK(rel_err(gradflow::spectral_norm(w, &status), r) <= kSpectralAgreeTol);
  CHECK(status == SolveStatus::converged);
  CHECK(rel_err(gradflow::spectral_radius(w, &status), r) <= kSpectralAgreeTol);
  CHECK(status == SolveStatus::converged);
}

TEST_CASE("Haar orthogonal: with the sign fix Q_11 is positive half of the time (N = 30)", "[spectrum]") {
  // Householder QR gives R_11 = -sign(g_11) |g_1|, so the raw Q has Q_11 = -|g_11| / |g_1| < 0 always. The
  // sign fix makes Q e_1 = g_1 / |g_1|, uniform on the sphere, so Q_11 > 0 with probability 1/2.
  Rng rng(12345);
  const int draws = 400;
  int positive = 0;
  for (int k = 0; k < draws; ++k)
    positive += gradflow::random_recurrent(SpectrumKind::orthogonal, 30, 1.0, rng)(0, 0) > 0.0 ? 1 : 0;
  // Binomial(400, 1/2): sd 10, so +-60 is a 6-sigma band.
  CHECK(std::abs(positive - draws / 2) < 60);
}

TEST_CASE("symmetric W is exactly symmetric and ||W||_2 = rho(W) (N = 50, 500)", "[spectrum]") {
  const auto n = GENERATE(as<Eigen::Index>{}, 50, 500);
  Rng rng(12345);
  const Eigen::MatrixXd w = gradflow::random_recurrent(SpectrumKind::symmetric, n, 1.5, rng);
  INFO("N = " << n);
  CHECK(w == w.transpose());
  SolveStatus rho_status{}, norm_status{};
  const double rho = gradflow::spectral_radius(w, &rho_status);
  const double norm = gradflow::spectral_norm(w, &norm_status);
  CHECK(rho_status == SolveStatus::converged);
  CHECK(norm_status == SolveStatus::converged);
  CHECK(rel_err(rho, 1.5) <= kSpectralAgreeTol);
  CHECK(rel_err(norm, rho) <= kSpectralAgreeTol);
}

TEST_CASE("ginibre W is non-normal: ||W||_2 / rho(W) > 1, ~2 at large N (N = 50, 500)", "[spectrum]") {
  // Circular law: rho -> 1; Marchenko-Pastur edge: ||W||_2 -> 2 (for entries of variance 1/N).
  Rng rng(12345);
  const Eigen::MatrixXd small = gradflow::random_recurrent(SpectrumKind::ginibre, 50, 1.0, rng);
  CHECK(gradflow::spectral_norm(small) / gradflow::spectral_radius(small) > 1.0);
  const Eigen::MatrixXd large = gradflow::random_recurrent(SpectrumKind::ginibre, 500, 1.0, rng);
  const gradflow::SpectralInfo info = gradflow::analyse_spectrum(large);
  CHECK(info.rho_status == SolveStatus::converged);
  CHECK(info.norm_status == SolveStatus::converged);
  CHECK(info.message.empty());
  CHECK(info.spectral_norm / info.rho > 1.5);
}

TEST_CASE("spectral_radius and spectral_norm agree with dense Eigen on assorted matrices", "[spectrum]") {
  Rng rng(12345);
  struct Case {
    std::string name;
    Eigen::MatrixXd w;
  };
  std::vector<Case> cases;
  cases.push_back({"unscaled Gaussian N = 200", gradflow::gaussian_matrix(200, 200, 1.0, rng)});
  cases.push_back(
      {"Gaussian + 3 I, N = 150 (real dominant eigenvalue)",
       gradflow::gaussian_matrix(150, 150, 0.1, rng) + 3.0 * Eigen::MatrixXd::Identity(150, 150)});
  // Every |lambda| = 1.7: the clustered case Arnoldi cannot separate (caught as scaled orthogonal).
  cases.push_back({"1.7 x orthogonal, N = 300", 1.7 * some_orthogonal(300, rng)});
  {
    // The same clustered spectrum without normality, so the scaled-orthogonal shortcut does not apply and
    // Arnoldi must converge or fall back to the dense solve.
    const Eigen::Index n = 120;
    const Eigen::VectorXd d = Eigen::VectorXd::LinSpaced(n, 1.0, 3.0);
    const Eigen::MatrixXd q = some_orthogonal(n, rng);
    cases.push_back({"D Q D^-1 (similar to orthogonal, non-normal), N = 120",
                     0.8 * d.asDiagonal() * q * d.cwiseInverse().asDiagonal()});
  }
  {
    // Moduli all within ~1% of 1 but not equal: Arnoldi converges to genuine eigenvalues that are not the
    // largest unless the clustered-moduli gate sends it to the dense solve.
    const Eigen::Index n = 200;
    const Eigen::VectorXd d = Eigen::VectorXd::Ones(n) + 0.01 * gradflow::gaussian_matrix(n, 1, 1.0, rng);
    cases.push_back({"orthogonal x diag(1 + 0.01 g) (near-circle spectrum), N = 200",
                     some_orthogonal(n, rng) * d.asDiagonal()});
  }
  {
    // Rank one: Spectra 1.0 reports spurious Ritz values or throws here; the residual check must catch it.
    const Eigen::MatrixXd u = gradflow::gaussian_matrix(150, 1, 1.0, rng);
    const Eigen::MatrixXd v = gradflow::gaussian_matrix(150, 1, 1.0, rng);
    cases.push_back({"rank one u v^T, N = 150", u * v.transpose()});
    cases.push_back({"rank one u u^T (symmetric), N = 150", u * u.transpose()});
  }
  {
    Eigen::MatrixXd s = gradflow::gaussian_matrix(200, 200, 1.0 / std::sqrt(200.0), rng);
    s = (s + s.transpose()).eval();
    s(0, 0) -= 5.0;  // dominant eigenvalue negative: largest magnitude, not largest algebraic
    cases.push_back({"symmetric with dominant eigenvalue ~ -5, N = 200", s});
  }
  cases.push_back(
      {"diag(1, -4, 2) (dense path)", Eigen::Vector3d(1.0, -4.0, 2.0).asDiagonal().toDenseMatrix()});
  cases.push_back({"Gaussian N = 10 (dense path)", gradflow::gaussian_matrix(10, 10, 1.0, rng)});

  for (const Case& c : cases) {
    INFO(c.name);
    SolveStatus rho_status{}, norm_status{};
    const double rho = gradflow::spectral_radius(c.w, &rho_status);
    const double norm = gradflow::spectral_norm(c.w, &norm_status);
    INFO("rho status " << gradflow::to_string(rho_status) << ", norm status "
                       << gradflow::to_string(norm_status));
    CHECK(rho_status != SolveStatus::not_converged);
    CHECK(norm_status != SolveStatus::not_converged);
    const double ref_norm = dense_norm(c.w);
    CHECK(rel_err(rho, dense_rho(c.w)) <= kSpectralAgreeTol);
    CHECK(rel_err(norm, ref_norm) <= kSpectralAgreeTol);
    CHECK(rho <= norm * (1.0 + kSpectralAgreeTol));  // rho(W) <= ||W||_2 always
  }
}

TEST_CASE("nilpotent W = u v^T with v . u = 0 has rho = 0 to the sqrt(eps) a Jordan block allows (N = 60)",
          "[spectrum]") {
  // W^2 = 0 but W != 0: its zero eigenvalue is defective, so any backward-stable method (Spectra or dense
  // QR) returns it only to ~sqrt(eps) ||W||. (A nilpotent matrix of index k is determined only to
  // eps^(1/k) ||W||: for a generic strictly triangular N = 60 matrix seen in another basis that is ~0.5.)
  Rng rng(12345);
  const Eigen::VectorXd u = gradflow::gaussian_matrix(60, 1, 1.0, rng);
  Eigen::VectorXd v = gradflow::gaussian_matrix(60, 1, 1.0, rng);
  v -= u * (u.dot(v) / u.squaredNorm());
  const Eigen::MatrixXd w = u * v.transpose();
  SolveStatus status{};
  const double norm = gradflow::spectral_norm(w, &status);
  CHECK(rel_err(norm, u.norm() * v.norm()) <= kSpectralAgreeTol);  // rank one: ||u v^T||_2 = |u| |v|
  CHECK(gradflow::spectral_radius(w) <= kDefectiveEigTol * norm);
  CHECK(dense_rho(w) <= kDefectiveEigTol * norm);
}

TEST_CASE("spectral_radius and spectral_norm of small matrices in closed form (1x1, 2x2, zero)",
          "[spectrum]") {
  SECTION("1x1: rho = ||W||_2 = |w|") {
    const Eigen::MatrixXd w = Eigen::MatrixXd::Constant(1, 1, -3.0);
    SolveStatus status{};
    CHECK(gradflow::spectral_radius(w, &status) == Approx(3.0).epsilon(kSpectralAgreeTol));
    CHECK(status == SolveStatus::fallback);  // below kIterativeMinSize: dense by design
    CHECK(gradflow::spectral_norm(w) == Approx(3.0).epsilon(kSpectralAgreeTol));
  }
  SECTION("2x2 [[0, 2], [-1/2, 0]]: lambda = +-i, so rho = 1; ||W||_2 = 2") {
    Eigen::MatrixXd w(2, 2);
    w << 0.0, 2.0, -0.5, 0.0;
    CHECK(gradflow::spectral_radius(w) == Approx(1.0).epsilon(kSpectralAgreeTol));
    CHECK(gradflow::spectral_norm(w) == Approx(2.0).epsilon(kSpectralAgreeTol));
  }
  SECTION("2x2 Jordan block [[0, 1], [0, 0]]: nilpotent, rho = 0, ||W||_2 = 1") {
    Eigen::MatrixXd w(2, 2);
    w << 0.0, 1.0, 0.0, 0.0;
    CHECK(gradflow::spectral_radius(w) == 0.0);
    CHECK(gradflow::spectral_norm(w) == Approx(1.0).epsilon(kSpectralAgreeTol));
  }
  SECTION("5x5 shift matrix (ones on the superdiagonal): nilpotent, triangular, so rho = 0 exactly") {
    Eigen::MatrixXd w = Eigen::MatrixXd::Zero(5, 5);
    w.diagonal(1).setOnes();
    CHECK(gradflow::spectral_radius(w) == 0.0);
    CHECK(gradflow::spectral_norm(w) == Approx(1.0).epsilon(kSpectralAgreeTol));
  }
  SECTION("zero matrix at iterative size (N = 50): rho = ||W||_2 = 0, converged") {
    const Eigen::MatrixXd w = Eigen::MatrixXd::Zero(50, 50);
    const gradflow::SpectralInfo info = gradflow::analyse_spectrum(w);
    CHECK(info.rho == 0.0);
    CHECK(info.spectral_norm == 0.0);
    CHECK(info.rho_status == SolveStatus::converged);
    CHECK(info.norm_status == SolveStatus::converged);
  }
  SECTION("empty matrix: rho = ||W||_2 = 0") {
    CHECK(gradflow::spectral_radius(Eigen::MatrixXd()) == 0.0);
    CHECK(gradflow::spectral_norm(Eigen::MatrixXd()) == 0.0);
  }
}

TEST_CASE("spectral_norm of a rectangular matrix (30 x 80) matches the SVD", "[spectrum]") {
  Rng rng(12345);
  const Eigen::MatrixXd w = gradflow::gaussian_matrix(30, 80, 1.0, rng);
  SolveStatus status{};
  CHECK(rel_err(gradflow::spectral_norm(w, &status), dense_norm(w)) <= kSpectralAgreeTol);
  CHECK(status == SolveStatus::converged);
}

TEST_CASE("analyse_spectrum reports a fallback with a message", "[spectrum]") {
  Rng rng(12345);
  const gradflow::SpectralInfo info = gradflow::analyse_spectrum(gradflow::gaussian_matrix(5, 5, 1.0, rng));
  CHECK(info.rho_status == SolveStatus::fallback);
  CHECK(info.norm_status == SolveStatus::fallback);
  CHECK_THAT(info.message,
             Catch::Contains("rho:") && Catch::Contains("||W||_2:") && Catch::Contains("dense"));

  Eigen::MatrixXd bad = Eigen::MatrixXd::Identity(30, 30);
  bad(3, 4) = std::numeric_limits<double>::quiet_NaN();
  const gradflow::SpectralInfo nan_info = gradflow::analyse_spectrum(bad);
  CHECK(nan_info.rho_status == SolveStatus::not_converged);
  CHECK(nan_info.norm_status == SolveStatus::not_converged);
  CHECK(std::isnan(nan_info.rho));
  CHECK_THAT(nan_info.message, Catch::Contains("non-finite"));
}

TEST_CASE("clustered moduli without normality: Arnoldi gives up and the dense fallback is exact (N = 120)",
          "[spectrum]") {
  // D Q D^-1 has the eigenvalues of the orthogonal Q (all |lambda| = 1) but is not normal, so neither the
  // scaled-orthogonal identity nor Arnoldi's modulus ordering can resolve it: the fallback must.
  Rng rng(12345);
  const Eigen::Index n = 120;
  const Eigen::VectorXd d = Eigen::VectorXd::LinSpaced(n, 1.0, 3.0);
  const Eigen::MatrixXd w = 0.8 * d.asDiagonal() * some_orthogonal(n, rng) * d.cwiseInverse().asDiagonal();
  const gradflow::SpectralInfo info = gradflow::analyse_spectrum(w);
  INFO(info.message);
  CHECK(info.rho_status == SolveStatus::fallback);
  CHECK_THAT(info.message, Catch::Contains("Arnoldi"));
  CHECK(rel_err(info.rho, 0.8) <= kSpectralAgreeTol);
  CHECK(info.norm_status == SolveStatus::converged);
  CHECK(rel_err(info.spectral_norm, dense_norm(w)) <= kSpectralAgreeTol);
}

TEST_CASE("rescale_to_radius gives the exact radius along the same direction (N = 200)", "[spectrum]") {
  Rng rng(12345);
  const Eigen::MatrixXd g = gradflow::gaussian_matrix(200, 200, 1.0, rng);
  const Eigen::MatrixXd w = gradflow::rescale_to_radius(g, 0.7);
  CHECK(rel_err(dense_rho(w), 0.7) <= kRadiusTol);
  // Same matrix up to a positive factor.
  const double factor = w(0, 0) / g(0, 0);
  CHECK(factor > 0.0);
  CHECK((w - factor * g).cwiseAbs().maxCoeff() <= 1e-14 * w.cwiseAbs().maxCoeff());
  CHECK(gradflow::rescale_to_radius(g, 0.0).isZero(0.0));

  Eigen::MatrixXd nilpotent = Eigen::MatrixXd::Zero(4, 4);
  nilpotent(0, 1) = nilpotent(1, 2) = nilpotent(2, 3) = 1.0;
  CHECK(gradflow::rescale_to_radius(nilpotent, 0.0).isZero(0.0));
  CHECK_THROWS_WITH(gradflow::rescale_to_radius(nilpotent, 1.0), Catch::Contains("nilpotent"));
}

TEST_CASE("random_recurrent is deterministic: the same seed gives the same matrix, another seed another",
          "[spectrum]") {
  const auto kind = GENERATE(SpectrumKind::ginibre, SpectrumKind::orthogonal, SpectrumKind::symmetric);
  INFO(gradflow::to_string(kind));
  Rng a(12345), b(12345), c(54321);
  const Eigen::MatrixXd wa = gradflow::random_recurrent(kind, 100, 1.3, a);
  const Eigen::MatrixXd wb = gradflow::random_recurrent(kind, 100, 1.3, b);
  const Eigen::MatrixXd wc = gradflow::random_recurrent(kind, 100, 1.3, c);
  CHECK(wa == wb);
  CHECK(wa != wc);
  // Analysis is deterministic too (Spectra and the probes use fixed internal seeds).
  CHECK(gradflow::spectral_radius(wa) == gradflow::spectral_radius(wb));
  CHECK(gradflow::spectral_norm(wa) == gradflow::spectral_norm(wb));
}

TEST_CASE("eigenvalues returns every eigenvalue: rotation block (+) diagonal", "[spectrum]") {
  // [[a, -b], [b, a]] has a +- i b; the diagonal part contributes itself.
  Eigen::MatrixXd w = Eigen::MatrixXd::Zero(4, 4);
  w.topLeftCorner(2, 2) << 0.6, -0.8, 0.8, 0.6;
  w(2, 2) = 3.0;
  w(3, 3) = -0.25;
  Eigen::VectorXcd lambda = gradflow::eigenvalues(w);
  REQUIRE(lambda.size() == 4);
  std::vector<std::complex<double>> got(lambda.data(), lambda.data() + 4);
  const auto key = [](const std::complex<double>& z) { return std::make_pair(z.real(), z.imag()); };
  std::sort(got.begin(), got.end(), [&](auto x, auto y) { return key(x) < key(y); });
  const std::vector<std::complex<double>> want{{-0.25, 0.0}, {0.6, -0.8}, {0.6, 0.8}, {3.0, 0.0}};
  for (std::size_t i = 0; i < 4; ++i) {
    INFO("i = " << i << ": " << got[i] << " vs " << want[i]);
    CHECK(std::abs(got[i] - want[i]) <= kSpectralAgreeTol);
  }
  CHECK(gradflow::eigenvalues(Eigen::MatrixXd()).size() == 0);
}

TEST_CASE("invalid arguments throw std::invalid_argument stating the constraint", "[spectrum]") {
  Rng rng(12345);
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(gradflow::random_recurrent(SpectrumKind::ginibre, 0, 1.0, rng),
                    Catch::Contains("n must satisfy n >= 1"));
  CHECK_THROWS_AS(gradflow::random_recurrent(SpectrumKind::ginibre, -3, 1.0, rng), std::invalid_argument);
  for (const double bad : {-1.0, inf, nan}) {
    INFO("radius = " << bad);
    CHECK_THROWS_WITH(gradflow::random_recurrent(SpectrumKind::orthogonal, 10, bad, rng),
                      Catch::Contains("radius must satisfy radius >= 0"));
    CHECK_THROWS_AS(gradflow::rescale_to_radius(Eigen::MatrixXd::Identity(3, 3), bad), std::invalid_argument);
  }
  CHECK_THROWS_WITH(gradflow::random_recurrent(SpectrumKind::file, 10, 1.0, rng), Catch::Contains("kind"));

  // A rejected call draws nothing.
  Rng fresh(12345);
  CHECK(rng() == fresh());

  const Eigen::MatrixXd rect = Eigen::MatrixXd::Ones(3, 4);
  CHECK_THROWS_WITH(gradflow::spectral_radius(rect), Catch::Contains("must be square"));
  CHECK_THROWS_AS(gradflow::rescale_to_radius(rect, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(gradflow::eigenvalues(rect), std::invalid_argument);
  CHECK_THROWS_AS(gradflow::analyse_spectrum(rect), std::invalid_argument);
  Eigen::MatrixXd nonfinite = Eigen::MatrixXd::Identity(3, 3);
  nonfinite(1, 1) = inf;
  CHECK_THROWS_AS(gradflow::rescale_to_radius(nonfinite, 1.0), std::invalid_argument);
}

TEST_CASE("shifted_spectral_radius: rho(a I + s W) equals the dense solve, also where every |eigenvalue| is "
          "near |a| (Ginibre N = 300)",
          "[spectrum][shifted]") {
  Rng rng(41);
  const Eigen::Index n = 300;
  const Eigen::MatrixXd w = gradflow::random_recurrent(SpectrumKind::ginibre, n, 1.0, rng);
  const Eigen::VectorXcd lambda = dense_eigenvalues(w);
  const double rho_w = lambda.cwiseAbs().maxCoeff();
  // (a, s): a small s against a (the clustered case of a minimalRNN's mean Jacobian), both signs, and a
  // comparable s (where the certificate may fail and the plain solve decides).
  for (const auto& [a, s] : {std::pair{0.9, 0.01}, std::pair{0.9, -0.01}, std::pair{-0.7, 0.02},
                             std::pair{0.5, 0.4}, std::pair{0.0, 0.3}, std::pair{0.8, 0.0}}) {
    INFO("a = " << a << ", s = " << s);
    double dense = 0.0;
    for (Eigen::Index i = 0; i < n; ++i) dense = std::max(dense, std::abs(a + s * lambda(i)));
    SolveStatus status;
    const double got = gradflow::shifted_spectral_radius(w, a, s, rho_w, &status);
    CHECK(status != SolveStatus::not_converged);
    CHECK(got == Approx(dense).epsilon(kSpectralAgreeTol));
  }
}
