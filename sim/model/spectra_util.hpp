#pragma once
// Spectra machinery shared by the dense (spectrum.cpp) and sparse (sparse.cpp) spectral solvers: tolerances,
// the scaled-orthogonal probe, the Gram operator and the solver wrapper. Internal to the library: not
// installed, not part of the public headers. Each solver keeps its own policy (Krylov sizes, restart budgets,
// fallbacks) in its own file.

#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include <Eigen/Core>
#include <Spectra/Util/CompInfo.h>
#include <Spectra/Util/SelectionRule.h>

#include "gradflow/numerics/interrupt.hpp"
#include "gradflow/numerics/random.hpp"

namespace gradflow::detail {

// Spectra's convergence test is |residual| < tol * |theta|. For a symmetric operator the eigenvalue error is
// at most the residual; for a non-normal W it is the residual times the eigenvalue's condition number, which
// for Ginibre edge eigenvalues is O(10). 1e-12 therefore keeps rho and ||W||_2 well inside 1e-10 relative
// (measured: ~1e-14 against dense at N = 500 and 2000), two decades inside the 1e-8 radius contract.
inline constexpr double kSpectraTol = 1e-12;

// Spectra 1.0 can report success with a spurious Ritz value when the Krylov space collapses (a rank-one
// operator gives values off by orders of magnitude; yixuan/spectra#159), so every answer is verified with
// an explicit residual ||A x - theta x|| <= kResidualTol |theta| ||x|| before it is trusted. For a symmetric
// operator that bounds the eigenvalue error by kResidualTol relative; Spectra's own estimate is 1e-12.
inline constexpr double kResidualTol = 1e-10;

// Scaled-orthogonal probe: W^T W = s^2 I is tested on a few random vectors. Householder-QR orthogonal factors
// satisfy it to ~sqrt(N) eps, so 1e-12 accepts them at any practical N while a matrix that passes has every
// singular value, hence every |lambda|, equal to s to ~1e-12 (all but surely; see scaled_orthogonal_modulus).
inline constexpr Eigen::Index kProbeCount = 4;
inline constexpr double kProbeTol = 1e-12;
// Fixed so that analysing W never touches the caller's streams and always gives the same answer.
inline constexpr std::uint64_t kProbeSeed = 0x5eC7a11ULL;

/// If W^T W = s^2 I (W a multiple of an orthogonal matrix, e.g. of a permutation), returns s: then
/// sigma_min = sigma_max = s and every |lambda| = s, the case where Arnoldi cannot separate the moduli.
/// Checked on kProbeCount Gaussian vectors X as ||W^T W X - s^2 X||_F <= kProbeTol s^2 ||X||_F. A matrix that
/// is not scaled-orthogonal passes only if all probes are nearly orthogonal to the range of W^T W - s^2 I,
/// probability ~ (tol/defect)^4. `M`: a dense or sparse Eigen matrix of doubles.
template <class M>
std::optional<double> scaled_orthogonal_modulus(const M& w) {
  Rng rng(kProbeSeed);
  const Eigen::MatrixXd x = gaussian_matrix(w.cols(), kProbeCount, 1.0, rng);
  const Eigen::MatrixXd wx = w * x;
  const Eigen::MatrixXd z = w.transpose() * wx;
  const double s2 = x.cwiseProduct(z).sum() / x.squaredNorm();  // pooled Rayleigh quotient of W^T W
  if (!(s2 > 0.0)) return std::nullopt;
  if ((z - s2 * x).norm() <= kProbeTol * s2 * x.norm()) return std::sqrt(s2);
  return std::nullopt;
}

/// The Gram operator x -> W^T (W x), so that Lanczos finds sigma_max(W)^2 without forming W^T W (O(N^3)).
/// `M`: a dense or sparse Eigen matrix of doubles, held by reference.
template <class M>
class GramOp {
 public:
  using Scalar = double;

  explicit GramOp(const M& w) : w_(w), wx_(w.rows()) {}

  Eigen::Index rows() const { return w_.cols(); }
  Eigen::Index cols() const { return w_.cols(); }

  /// y = W^T (W x)
  void perform_op(const Scalar* x_in, Scalar* y_out) const {
    poll_stop("norm solve (Lanczos)", ++products_, 0);
    Eigen::Map<const Eigen::VectorXd> x(x_in, w_.cols());
    Eigen::Map<Eigen::VectorXd> y(y_out, w_.cols());
    wx_.noalias() = w_ * x;
    y.noalias() = w_.transpose() * wx_;
  }

 private:
  const M& w_;
  mutable Eigen::VectorXd wx_;  // scratch, reused across products (Spectra calls perform_op as const)
  mutable std::int64_t products_ = 0;
};

/// A Spectra operator that polls the stop flag (interrupt.hpp) before every product, so that a long solve
/// stops within one product of a request; the products themselves are unchanged.
template <class Op>
class Polled : public Op {
 public:
  using Op::Op;
  void perform_op(const typename Op::Scalar* x_in, typename Op::Scalar* y_out) const {
    poll_stop("radius solve (Arnoldi)", ++products_, 0);
    Op::perform_op(x_in, y_out);
  }

 private:
  mutable std::int64_t products_ = 0;
};

/// Runs an initialised-from-scratch Spectra solver; false (with the reason in *why) when it did not converge.
/// Spectra reports non-convergence through info() but a numerical breakdown of its small dense
/// sub-problems (e.g. a Lanczos basis collapsing on a rank-one W^T W) as std::runtime_error; both are
/// outcomes to fall back from, not errors of the caller.
template <class Solver>
bool run_solver(Solver& solver, Spectra::SortRule rule, Eigen::Index max_restarts, std::string* why) {
  try {
    solver.init();  // Spectra's fixed-seed start vector: the result is deterministic
    solver.compute(rule, max_restarts, kSpectraTol);
  } catch (const std::runtime_error& e) {
    *why = std::string("broke down (") + e.what() + ")";
    return false;
  }
  if (solver.info() == Spectra::CompInfo::Successful) return true;
  *why = "did not converge in " + std::to_string(max_restarts) + " restarts";
  return false;
}

}  // namespace gradflow::detail
