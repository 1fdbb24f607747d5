#include "gradflow/model/spectrum.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

// Third party
#include <Spectra/GenEigsSolver.h>
#include <Spectra/MatOp/DenseGenMatProd.h>
#include <Spectra/MatOp/DenseSymMatProd.h>
#include <Spectra/SymEigsSolver.h>

#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <Eigen/SVD>

#include "spectra_util.hpp"

namespace gradflow {
namespace detail {

// Arnoldi ranks Ritz values by modulus, but Krylov subspaces favour eigenvalues that are exterior in the
// plane, not the largest in modulus. When many eigenvalues lie on (or near) one circle, as for a perturbed
// orthogonal matrix, it converges, with tiny residuals, to genuine eigenvalues that are not the largest: in
// a battery of annulus spectra (N = 200-500, widths 0.5..0.001, normal and not) 5-20% of converged runs were
// wrong by 1e-7..1e-3. With nev = 10, every such run had its converged moduli within 1.9e-3 (relative) of
// each other, while Ginibre matrices (N = 110..2000, ~1500 draws) always spread them by >= 4e-3. So the
// answer is trusted only when the converged moduli spread by at least kArnoldiMinSpread; otherwise the
// modulus ordering is unresolved and the dense solve decides. This is a measured heuristic, not a proof.
constexpr Eigen::Index kArnoldiNev = 10;
constexpr double kArnoldiMinSpread = 3e-3;
// Krylov dimension. Measured on Ginibre N = 2000 (memory-bound matvecs, ~1 ms each): ncv = 30 needs ~3000
// products, ncv = 80-160 about 1000; the O(ncv^3) Ritz work per restart stays below one matvec at N = 2000.
// For N <= ncv the subspace is the whole space and the Ritz values are the eigenvalues (no gate needed).
constexpr Eigen::Index kArnoldiNcv = 100;
// Restart budget, N / 10 clamped to [20, 100]. Ginibre (ncv = 100) needs at most 2, 4, 7, 19, 19 restarts at
// N = 150, 300, 500, 1000, 2000 (30 draws each, 6 at 2000). A cluster of equal moduli (e.g. a non-normal
// matrix similar to an orthogonal one) never converges, and each wasted restart costs ~ncv^3 + ncv N^2
// flops, so the budget scales with N to keep the waste a fraction of the N^3 dense solve that follows
// (~10 s against ~50 s at N = 2000; ~0.05 s against ~0.03 s at N = 200).
constexpr Eigen::Index kArnoldiMinRestarts = 20;
constexpr Eigen::Index kArnoldiMaxRestarts = 100;

// Lanczos on a symmetric W for rho. LargestMagn must weigh both ends of the spectrum (for GOE lambda_min and
// lambda_max have nearly equal moduli), so ask for a few. Measured at N = 2000: ~300 products (0.2 s) against
// ~1 s for the dense SelfAdjointEigenSolver, so the restart budget (~1800 products) is about one dense solve.
constexpr Eigen::Index kSymNev = 3;
constexpr Eigen::Index kSymNcv = 40;
constexpr Eigen::Index kSymMaxRestarts = 50;

// Lanczos on W^T W for ||W||_2. Only the top of a positive semi-definite spectrum is wanted and the largest
// Ritz value approaches lambda_max from below, so one eigenvalue suffices (halves the work against nev = 3:
// ~120 products, 0.3 s at N = 2000). The dense fallback (BDCSVD, ~2.5 s at N = 2000) is cheap, so the budget
// (~1200 products of two matvecs each) is about one fallback.
constexpr Eigen::Index kNormNev = 1;
constexpr Eigen::Index kNormNcv = 30;
constexpr Eigen::Index kNormMaxRestarts = 40;

/// A value with how it was obtained; `note` says why it is not a plain Spectra result (empty otherwise).
struct Estimate {
  double value = 0.0;
  SolveStatus status = SolveStatus::converged;
  std::string note;
};

void require_square(const Eigen::MatrixXd& w, const char* what) {
  if (w.rows() != w.cols())
    throw std::invalid_argument(std::string(what) + ": W must be square (rows = cols), got " +
                                std::to_string(w.rows()) + " x " + std::to_string(w.cols()));
}

void require_radius(double radius, const char* what) {
  if (!(std::isfinite(radius) && radius >= 0.0))
    throw std::invalid_argument(std::string(what) + ": radius must satisfy radius >= 0 and be finite, got " +
                                std::to_string(radius));
}

bool exactly_symmetric(const Eigen::MatrixXd& w) {
  const Eigen::Index n = w.rows();
  for (Eigen::Index j = 0; j < n; ++j)
    for (Eigen::Index i = j + 1; i < n; ++i)
      if (w(i, j) != w(j, i)) return false;
  return true;
}

/// For a triangular W (upper or lower) the eigenvalues are the diagonal: rho = max |W_ii| exactly. Catches
/// nilpotent shifts (delay chains), on which Arnoldi breaks down, in O(N^2) with an early exit otherwise.
std::optional<double> triangular_radius(const Eigen::MatrixXd& w) {
  const Eigen::Index n = w.rows();
  bool lower = true, upper = true;
  for (Eigen::Index j = 0; j < n && (lower || upper); ++j)
    for (Eigen::Index i = 0; i < n; ++i) {
      if (w(i, j) == 0.0 || i == j) continue;
      if (j > i) lower = false;
      else upper = false;
      if (!lower && !upper) break;
    }
  if (lower || upper) return w.diagonal().cwiseAbs().maxCoeff();
  return std::nullopt;
}

Estimate dense_radius(const Eigen::MatrixXd& w, bool symmetric, std::string note) {
  Estimate e{0.0, SolveStatus::fallback, std::move(note)};
  if (symmetric) {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(w, Eigen::EigenvaluesOnly);
    if (es.info() == Eigen::Success) {
      e.value = es.eigenvalues().cwiseAbs().maxCoeff();
      return e;
    }
  } else {
    Eigen::EigenSolver<Eigen::MatrixXd> es(w, /*computeEigenvectors=*/false);
    if (es.info() == Eigen::Success) {
      e.value = es.eigenvalues().cwiseAbs().maxCoeff();
      return e;
    }
  }
  e.value = std::numeric_limits<double>::quiet_NaN();
  e.status = SolveStatus::not_converged;
  e.note += "; the dense Eigen solve did not converge either";
  return e;
}

Estimate dense_norm(const Eigen::MatrixXd& w, std::string note) {
  // Singular values only: BDCSVD without U and V is a bidiagonalisation plus a small tridiagonal problem.
  Eigen::BDCSVD<Eigen::MatrixXd> svd(w);
  if (svd.info() != Eigen::Success)
    return {std::numeric_limits<double>::quiet_NaN(), SolveStatus::not_converged,
            note + "; the dense BDCSVD did not converge either"};
  return {svd.singularValues()(0), SolveStatus::fallback, std::move(note)};
}

/// Why a Ritz pair (theta, x) with ||A x - theta x|| = residual was rejected.
std::string residual_note(double residual, double theta, double x_norm) {
  char text[96];
  std::snprintf(text, sizeof text, "returned a spurious Ritz pair (relative residual %.1e > %.0e)",
                residual / (std::abs(theta) * x_norm), kResidualTol);
  return text;
}

std::optional<double> arnoldi_radius(const Eigen::MatrixXd& w, std::string* why) {
  const Eigen::Index n = w.rows();
  const Eigen::Index nev = std::min(kArnoldiNev, n - 2);                     // Spectra: 1 <= nev <= n - 2
  const Eigen::Index ncv = std::min(n, std::max(2 * nev + 1, kArnoldiNcv));  // nev + 2 <= ncv <= n
  Polled<Spectra::DenseGenMatProd<double>> op(w);
  Spectra::GenEigsSolver<Polled<Spectra::DenseGenMatProd<double>>> solver(op, nev, ncv);
  const Eigen::Index restarts = std::clamp(n / 10, kArnoldiMinRestarts, kArnoldiMaxRestarts);
  if (!run_solver(solver, Spectra::SortRule::LargestMagn, restarts, why)) return std::nullopt;
  const Eigen::VectorXcd lambda = solver.eigenvalues();
  Eigen::Index top = 0;
  const double rho = lambda.cwiseAbs().maxCoeff(&top);
  const double spread = (rho - lambda.cwiseAbs().minCoeff()) / rho;
  if (ncv < n && !(spread >= kArnoldiMinSpread)) {
    char text[160];
    std::snprintf(text, sizeof text,
                  "cannot rank clustered moduli (the %d converged |lambda| lie within %.1e relative < %.0e)",
                  static_cast<int>(lambda.size()), spread, kArnoldiMinSpread);
    *why = text;
    return std::nullopt;
  }
  const Eigen::VectorXcd x = solver.eigenvectors().col(top);
  Eigen::VectorXcd wx(n);  // W is real: apply it to the real and imaginary parts
  wx.real() = w * x.real();
  wx.imag() = w * x.imag();
  const double residual = (wx - lambda(top) * x).norm();
  if (!(residual <= kResidualTol * rho * x.norm())) {
    *why = residual_note(residual, rho, x.norm());
    return std::nullopt;
  }
  return rho;
}

std::optional<double> lanczos_radius(const Eigen::MatrixXd& w, std::string* why) {
  const Eigen::Index n = w.rows();
  const Eigen::Index nev = std::min(kSymNev, n - 1);                     // Spectra: 1 <= nev <= n - 1
  const Eigen::Index ncv = std::min(n, std::max(2 * nev + 1, kSymNcv));  // nev < ncv <= n
  Polled<Spectra::DenseSymMatProd<double>> op(w);
  Spectra::SymEigsSolver<Polled<Spectra::DenseSymMatProd<double>>> solver(op, nev, ncv);
  if (!run_solver(solver, Spectra::SortRule::LargestMagn, kSymMaxRestarts, why)) return std::nullopt;
  const Eigen::VectorXd lambda = solver.eigenvalues();
  Eigen::Index top = 0;
  const double rho = lambda.cwiseAbs().maxCoeff(&top);
  const Eigen::VectorXd x = solver.eigenvectors().col(top);
  const double residual = (w * x - lambda(top) * x).norm();
  if (!(residual <= kResidualTol * rho * x.norm())) {
    *why = residual_note(residual, rho, x.norm());
    return std::nullopt;
  }
  return rho;
}

std::optional<double> lanczos_norm(const Eigen::MatrixXd& w, std::string* why) {
  const Eigen::Index n = w.cols();
  const Eigen::Index nev = std::min(kNormNev, n - 1);
  const Eigen::Index ncv = std::min(n, std::max(2 * nev + 1, kNormNcv));
  GramOp<Eigen::MatrixXd> op(w);
  Spectra::SymEigsSolver<GramOp<Eigen::MatrixXd>> solver(op, nev, ncv);
  if (!run_solver(solver, Spectra::SortRule::LargestAlge, kNormMaxRestarts, why)) return std::nullopt;
  Eigen::Index top = 0;
  const double theta = solver.eigenvalues().maxCoeff(&top);  // sigma_max^2
  const Eigen::VectorXd x = solver.eigenvectors().col(top);
  Eigen::VectorXd gx(n);
  op.perform_op(x.data(), gx.data());
  const double residual = (gx - theta * x).norm();
  // theta > 0 also rejects a collapsed solve: W != 0 here, so sigma_max^2 > 0.
  if (!(theta > 0.0 && residual <= kResidualTol * theta * x.norm())) {
    *why = residual_note(residual, theta, x.norm());
    return std::nullopt;
  }
  return std::sqrt(theta);
}

std::string small_note(Eigen::Index n) {
  return "N = " + std::to_string(n) + " < " + std::to_string(kIterativeMinSize) + ": dense solve";
}

Estimate radius_estimate(const Eigen::MatrixXd& w) {
  require_square(w, "spectral_radius");
  const Eigen::Index n = w.rows();
  if (n == 0 || w.isZero(0.0)) return {};
  if (!w.allFinite())
    return {std::numeric_limits<double>::quiet_NaN(), SolveStatus::not_converged, "W has non-finite entries"};
  const bool symmetric = exactly_symmetric(w);
  if (n < kIterativeMinSize) return dense_radius(w, symmetric, small_note(n));
  if (const auto r = triangular_radius(w)) return {*r, SolveStatus::converged, ""};
  if (const auto s = scaled_orthogonal_modulus(w)) return {*s, SolveStatus::converged, ""};
  std::string why;
  if (symmetric) {
    if (const auto rho = lanczos_radius(w, &why)) return {*rho, SolveStatus::converged, ""};
    return dense_radius(w, true, "Lanczos " + why + ": dense SelfAdjointEigenSolver");
  }
  if (const auto rho = arnoldi_radius(w, &why)) return {*rho, SolveStatus::converged, ""};
  return dense_radius(w, false, "Arnoldi " + why + ": dense EigenSolver");
}

Estimate norm_estimate(const Eigen::MatrixXd& w) {
  const Eigen::Index n = std::min(w.rows(), w.cols());
  if (n == 0 || w.isZero(0.0)) return {};
  if (!w.allFinite())
    return {std::numeric_limits<double>::quiet_NaN(), SolveStatus::not_converged, "W has non-finite entries"};
  if (w.cols() < kIterativeMinSize) return dense_norm(w, small_note(w.cols()));
  std::string why;
  if (const auto s = lanczos_norm(w, &why)) return {*s, SolveStatus::converged, ""};
  return dense_norm(w, "Lanczos on W^T W " + why + ": dense BDCSVD");
}

/// W * (radius / rho(W)) with the checks rescale_to_radius documents; `rho` is rho(W).
Eigen::MatrixXd rescale(const Eigen::MatrixXd& w, double radius, const Estimate& rho) {
  if (radius == 0.0) return Eigen::MatrixXd::Zero(w.rows(), w.cols());
  if (rho.status == SolveStatus::not_converged || !std::isfinite(rho.value))
    throw std::runtime_error("rescale_to_radius: rho(W) could not be computed (" + rho.note + ")");
  if (rho.value == 0.0)
    throw std::invalid_argument(
        "rescale_to_radius: rho(W) = 0 (W is nilpotent), so W cannot be rescaled to radius " +
        std::to_string(radius) + " > 0");
  return w * (radius / rho.value);
}

}  // namespace detail

std::string to_string(SpectrumKind kind) {
  switch (kind) {
    case SpectrumKind::ginibre:
      return "ginibre";
    case SpectrumKind::orthogonal:
      return "orthogonal";
    case SpectrumKind::symmetric:
      return "symmetric";
    case SpectrumKind::file:
      return "file";
    case SpectrumKind::sparse:
      return "sparse";
    case SpectrumKind::nonnormal:
      return "nonnormal";
    case SpectrumKind::chain:
      return "chain";
    case SpectrumKind::dale:
      return "dale";
  }
  throw std::invalid_argument("to_string: invalid SpectrumKind value");
}

SpectrumKind parse_spectrum_kind(const std::string& name) {
  for (const SpectrumKind kind :
       {SpectrumKind::ginibre, SpectrumKind::orthogonal, SpectrumKind::symmetric, SpectrumKind::file,
        SpectrumKind::sparse, SpectrumKind::nonnormal, SpectrumKind::chain, SpectrumKind::dale})
    if (name == to_string(kind)) return kind;
  throw std::invalid_argument("unknown spectrum kind \"" + name +
                              "\": expected one of ginibre, orthogonal, symmetric, file, sparse, nonnormal, "
                              "chain, dale");
}

std::string to_string(SolveStatus status) {
  switch (status) {
    case SolveStatus::converged:
      return "converged";
    case SolveStatus::fallback:
      return "fallback";
    case SolveStatus::not_converged:
      return "not_converged";
  }
  throw std::invalid_argument("to_string: invalid SolveStatus value");
}

double spectral_radius(const Eigen::MatrixXd& w, SolveStatus* status) {
  const detail::Estimate e = detail::radius_estimate(w);
  if (status != nullptr) *status = e.status;
  return e.value;
}

double spectral_norm(const Eigen::MatrixXd& w, SolveStatus* status) {
  const detail::Estimate e = detail::norm_estimate(w);
  if (status != nullptr) *status = e.status;
  return e.value;
}

double shifted_spectral_radius(const Eigen::MatrixXd& w, double a, double s, double rho_w, SolveStatus* status) {
  detail::require_square(w, "shifted_spectral_radius");
  const Eigen::Index n = w.rows();
  if (status != nullptr) *status = SolveStatus::converged;
  if (s == 0.0 || rho_w == 0.0) return std::abs(a);
  if (a == 0.0) return std::abs(s) * rho_w;
  if (n > detail::kArnoldiNcv && w.allFinite() && std::isfinite(rho_w)) {
    const Eigen::Index nev = detail::kArnoldiNev, ncv = detail::kArnoldiNcv;
    Spectra::DenseGenMatProd<double> op(w);
    Spectra::GenEigsSolver<Spectra::DenseGenMatProd<double>> solver(op, nev, ncv);
    const double sign = a * s > 0.0 ? 1.0 : -1.0;
    const Eigen::Index restarts = std::clamp(n / 10, detail::kArnoldiMinRestarts, detail::kArnoldiMaxRestarts);
    std::string why;
    if (detail::run_solver(solver, sign > 0.0 ? Spectra::SortRule::LargestReal : Spectra::SortRule::SmallestReal,
                           restarts, &why)) {
      const Eigen::VectorXcd lambda = solver.eigenvalues();
      Eigen::Index top = 0;
      double best = 0.0, least = std::numeric_limits<double>::infinity();
      for (Eigen::Index i = 0; i < lambda.size(); ++i) {
        const double modulus = std::abs(a + s * lambda(i));
        if (modulus > best) best = modulus, top = i;
        least = std::min(least, sign * lambda(i).real());
      }
      const double others = a * a + 2.0 * std::abs(a * s) * least + s * s * rho_w * rho_w;
      const Eigen::VectorXcd x = solver.eigenvectors().col(top);
      Eigen::VectorXcd wx(n);
      wx.real() = w * x.real();
      wx.imag() = w * x.imag();
      const double residual = (wx - lambda(top) * x).norm();
      if (others <= best * best && residual <= detail::kResidualTol * std::abs(lambda(top)) * x.norm()) return best;
    }
  }
  return spectral_radius(Eigen::MatrixXd(a * Eigen::MatrixXd::Identity(n, n) + s * w), status);
}

SpectralInfo analyse_spectrum(const Eigen::MatrixXd& w) {
  const detail::Estimate rho = detail::radius_estimate(w);
  const detail::Estimate norm = detail::norm_estimate(w);
  SpectralInfo info;
  info.rho = rho.value;
  info.spectral_norm = norm.value;
  info.rho_status = rho.status;
  info.norm_status = norm.status;
  if (!rho.note.empty()) info.message = "rho: " + rho.note;
  if (!norm.note.empty())
    info.message += (info.message.empty() ? "" : "; ") + std::string("||W||_2: ") + norm.note;
  return info;
}

Eigen::MatrixXd random_recurrent(SpectrumKind kind, Eigen::Index n, double radius, Rng& rng) {
  // Validate everything before drawing, so a rejected call leaves `rng` untouched.
  if (n < 1) throw std::invalid_argument("random_recurrent: n must satisfy n >= 1, got " + std::to_string(n));
  detail::require_radius(radius, "random_recurrent");
  if (kind != SpectrumKind::ginibre && kind != SpectrumKind::orthogonal && kind != SpectrumKind::symmetric)
    throw std::invalid_argument(
        "random_recurrent: kind must be ginibre, orthogonal or symmetric (a file matrix is loaded, then "
        "rescaled with rescale_to_radius; sparse, nonnormal, chain and dale are built by ensembles.hpp)");
  if (radius == 0.0) return Eigen::MatrixXd::Zero(n, n);

  const double dn = static_cast<double>(n);
  switch (kind) {
    case SpectrumKind::ginibre: {
      const Eigen::MatrixXd g = gaussian_matrix(n, n, 1.0 / std::sqrt(dn), rng);
      return detail::rescale(g, radius, detail::radius_estimate(g));
    }
    case SpectrumKind::orthogonal: {
      // Q of a Gaussian matrix alone is not Haar: the QR convention biases the column signs. Multiplying
      // column j by sign(R_jj) makes the factorisation unique and Q Haar-distributed (Mezzadri 2007).
      const Eigen::MatrixXd g = gaussian_matrix(n, n, 1.0, rng);
      const Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
      Eigen::MatrixXd q = qr.householderQ();
      for (Eigen::Index j = 0; j < n; ++j)
        if (qr.matrixQR()(j, j) < 0.0) q.col(j) = -q.col(j);
      // Every eigenvalue of an orthogonal matrix has modulus 1, so rho(radius Q) = radius with no solve.
      return radius * q;
    }
    case SpectrumKind::symmetric: {
      const Eigen::MatrixXd g = gaussian_matrix(n, n, 1.0, rng);
      // g(i,j) + g(j,i) is computed identically on both sides, so the result is exactly symmetric and the
      // Lanczos path applies.
      const Eigen::MatrixXd s = (g + g.transpose()) / std::sqrt(2.0 * dn);
      return detail::rescale(s, radius, detail::radius_estimate(s));
    }
    default:
      break;
  }
  throw std::invalid_argument("random_recurrent: invalid SpectrumKind value");
}

Eigen::MatrixXd rescale_to_radius(const Eigen::MatrixXd& w, double radius) {
  detail::require_square(w, "rescale_to_radius");
  detail::require_radius(radius, "rescale_to_radius");
  if (!w.allFinite()) throw std::invalid_argument("rescale_to_radius: W must have finite entries");
  if (radius == 0.0) return Eigen::MatrixXd::Zero(w.rows(), w.cols());
  return detail::rescale(w, radius, detail::radius_estimate(w));
}

Eigen::VectorXcd eigenvalues(const Eigen::MatrixXd& w) {
  detail::require_square(w, "eigenvalues");
  if (w.rows() == 0) return Eigen::VectorXcd();
  Eigen::EigenSolver<Eigen::MatrixXd> es(w, /*computeEigenvectors=*/false);
  if (es.info() != Eigen::Success)
    throw std::runtime_error("eigenvalues: the dense QR iteration (Eigen::EigenSolver) did not converge");
  return es.eigenvalues();
}

}  // namespace gradflow
