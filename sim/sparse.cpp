#include "gradflow/sparse.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

#include <Spectra/GenEigsSolver.h>
#include <Spectra/MatOp/SparseGenMatProd.h>
#include <Spectra/SymEigsSolver.h>

#include "gradflow/random.hpp"

namespace gradflow {
namespace detail {
namespace {

// Residual tolerance of every wanted Ritz pair, as for dense W (spectrum.cpp): |r| < 1e-12 |theta|.
constexpr double kSparseTol = 1e-12;
// Spectra 1.0 can report success with a spurious Ritz value when the Krylov space collapses
// (yixuan/spectra#159), so the answer is verified with an explicit residual before it is trusted.
constexpr double kResidualCheckTol = 1e-10;

// Arnoldi on a sparse W. rho is the largest of kSparseNev converged eigenvalues: on a disk-shaped spectrum
// (sparse Gaussian W obeys the circular law) the top moduli differ by ~1e-3 relative at N = 1e5, and asking
// for a few keeps the dominant one inside the converged set. Measured on in_degree-100 matrices (README):
// ncv = 60 needs about as many products as ncv = 100 but a third of the orthogonalisation work, which at
// N = 1e5 costs as much as the products themselves.
constexpr Eigen::Index kSparseNev = 4;
constexpr Eigen::Index kSparseNcv = 60;
// Restart budget: the products needed grow like 1 / (gap of the top moduli) ~ sqrt(N log N); measured 40
// restarts at N = 1e4, ~90 at N = 3e4, ~190 at N = 1e5. The budget leaves a factor ~3 above that and stops
// a hopeless solve (e.g. a cluster of equal moduli) after ~ 3 * sqrt(N) restarts.
Eigen::Index sparse_max_restarts(Eigen::Index n) {
  return std::max<Eigen::Index>(200, static_cast<Eigen::Index>(3.0 * std::sqrt(static_cast<double>(n))));
}

// Lanczos on W^T W for ||W||_2: the top of a positive semi-definite spectrum, as in spectrum.cpp.
constexpr Eigen::Index kSparseNormNev = 1;
constexpr Eigen::Index kSparseNormNcv = 30;
constexpr Eigen::Index kSparseNormMaxRestarts = 200;

// Scaled-orthogonal probe (see spectrum.cpp): a multiple of a permutation or of an orthogonal matrix has every
// |lambda| equal, which Arnoldi cannot separate; W^T W = s^2 I is checked on a few random vectors.
constexpr Eigen::Index kProbeCount = 4;
constexpr double kProbeTol = 1e-12;
constexpr std::uint64_t kProbeSeed = 0x5eC7a11ULL;

std::optional<double> sparse_scaled_orthogonal_modulus(const SparseMatrix& w) {
  Rng rng(kProbeSeed);
  const Eigen::MatrixXd x = gaussian_matrix(w.cols(), kProbeCount, 1.0, rng);
  const Eigen::MatrixXd wx = w * x;
  const Eigen::MatrixXd z = w.transpose() * wx;
  const double s2 = x.cwiseProduct(z).sum() / x.squaredNorm();
  if (!(s2 > 0.0)) return std::nullopt;
  if ((z - s2 * x).norm() <= kProbeTol * s2 * x.norm()) return std::sqrt(s2);
  return std::nullopt;
}

/// For a triangular W (upper or lower) the eigenvalues are the diagonal: rho = max |W_ii| exactly, without a
/// solve (a delay chain, strictly triangular, is nilpotent and has rho = 0, where Arnoldi breaks down).
std::optional<double> sparse_triangular_radius(const SparseMatrix& w) {
  bool lower = true, upper = true;
  double diag = 0.0;
  for (Eigen::Index i = 0; i < w.outerSize() && (lower || upper); ++i)
    for (SparseMatrix::InnerIterator it(w, i); it; ++it) {
      if (it.value() == 0.0) continue;
      if (it.col() > i) lower = false;
      if (it.col() < i) upper = false;
      if (it.col() == i) diag = std::max(diag, std::abs(it.value()));
    }
  if (lower || upper) return diag;
  return std::nullopt;
}

/// GenEigsSolver that also tells, when it did not converge, how far its best Ritz pair is from an eigenpair.
template <class Op>
class ArnoldiSolver : public Spectra::GenEigsSolver<Op> {
 public:
  using Spectra::GenEigsSolver<Op>::GenEigsSolver;
  /// Largest-modulus Ritz value held after compute() (converged or not).
  std::complex<double> top_ritz_value() const { return this->m_ritz_val[0]; }
  /// ||W v - theta v|| / |theta| of that Ritz pair (v a unit vector): the Arnoldi residual estimate.
  double top_relative_residual() const {
    const double theta = std::abs(this->m_ritz_val[0]);
    return theta > 0 ? std::abs(this->m_ritz_est[0]) * this->m_fac.f_norm() / theta
                     : std::numeric_limits<double>::infinity();
  }
};

/// y = W^T (W x) without forming W^T W.
class SparseGramOp {
 public:
  using Scalar = double;
  explicit SparseGramOp(const SparseMatrix& w) : w_(w), wx_(w.rows()) {}
  Eigen::Index rows() const { return w_.cols(); }
  Eigen::Index cols() const { return w_.cols(); }
  void perform_op(const Scalar* x_in, Scalar* y_out) const {
    Eigen::Map<const Eigen::VectorXd> x(x_in, w_.cols());
    Eigen::Map<Eigen::VectorXd> y(y_out, w_.cols());
    wx_.noalias() = w_ * x;
    y.noalias() = w_.transpose() * wx_;
  }

 private:
  const SparseMatrix& w_;
  mutable Eigen::VectorXd wx_;
};

struct SparseEstimate {
  double value = 0.0;
  SolveStatus status = SolveStatus::converged;
  std::string note;
  double rel_residual = 0.0;
};

bool is_zero(const SparseMatrix& w) {
  for (Eigen::Index k = 0; k < w.nonZeros(); ++k)
    if (w.valuePtr()[k] != 0.0) return false;
  return true;
}

bool all_finite(const SparseMatrix& w) {
  for (Eigen::Index k = 0; k < w.nonZeros(); ++k)
    if (!std::isfinite(w.valuePtr()[k])) return false;
  return true;
}

SparseEstimate dense_fallback_radius(const SparseMatrix& w, const std::string& why) {
  SolveStatus st;
  const double rho = gradflow::spectral_radius(Eigen::MatrixXd(w), &st);
  SparseEstimate e{rho, st == SolveStatus::not_converged ? st : SolveStatus::fallback, why, 0.0};
  return e;
}

SparseEstimate sparse_radius(const SparseMatrix& w) {
  if (w.rows() != w.cols())
    throw std::invalid_argument("spectral_radius: W must be square (rows = cols), got " + std::to_string(w.rows()) +
                                " x " + std::to_string(w.cols()));
  const Eigen::Index n = w.rows();
  if (n == 0 || is_zero(w)) return {};
  if (!all_finite(w))
    return {std::numeric_limits<double>::quiet_NaN(), SolveStatus::not_converged, "W has non-finite entries", 0.0};
  if (n < kIterativeMinSize) return dense_fallback_radius(w, "N = " + std::to_string(n) + ": dense solve");
  if (const auto r = sparse_triangular_radius(w)) return {*r, SolveStatus::converged, "", 0.0};
  if (const auto s = sparse_scaled_orthogonal_modulus(w)) return {*s, SolveStatus::converged, "", 0.0};

  const Eigen::Index nev = std::min(kSparseNev, n - 2);
  const Eigen::Index ncv = std::min(n, std::max(2 * nev + 1, kSparseNcv));
  const Eigen::Index max_restarts = sparse_max_restarts(n);
  using Op = Spectra::SparseGenMatProd<double, Eigen::RowMajor>;
  Op op(w);
  ArnoldiSolver<Op> solver(op, nev, ncv);
  std::string why;
  try {
    solver.init();  // Spectra's fixed-seed start vector: deterministic
    solver.compute(Spectra::SortRule::LargestMagn, max_restarts, kSparseTol);
  } catch (const std::runtime_error& e) {
    why = std::string("Arnoldi broke down (") + e.what() + ")";
  }
  if (why.empty() && solver.info() == Spectra::CompInfo::Successful) {
    const Eigen::VectorXcd lambda = solver.eigenvalues();
    Eigen::Index top = 0;
    const double rho = lambda.cwiseAbs().maxCoeff(&top);
    const Eigen::VectorXcd x = solver.eigenvectors().col(top);
    const Eigen::VectorXd re = x.real(), im = x.imag();
    const Eigen::VectorXcd wx = (w * re).cast<std::complex<double>>() + std::complex<double>(0, 1) * (w * im).cast<std::complex<double>>();
    const double residual = (wx - lambda[top] * x).norm() / (rho * x.norm());
    if (residual <= kResidualCheckTol) return {rho, SolveStatus::converged, "", residual};
    char buf[96];
    std::snprintf(buf, sizeof buf, "Arnoldi returned a spurious Ritz pair (relative residual %.1e)", residual);
    why = buf;
  }
  if (why.empty())
    why = "Arnoldi did not converge in " + std::to_string(max_restarts) + " restarts (" +
          std::to_string(solver.num_operations()) + " products)";
  if (n <= kSparseDenseFallbackMax) return dense_fallback_radius(w, why + ": dense EigenSolver");
  // Too large for a dense solve: the best Ritz value, flagged, with its residual.
  SparseEstimate e;
  e.status = SolveStatus::not_converged;
  e.value = std::abs(solver.top_ritz_value());
  e.rel_residual = solver.top_relative_residual();
  char buf[96];
  std::snprintf(buf, sizeof buf, "; largest Ritz value %.12g has relative residual %.2g", e.value, e.rel_residual);
  e.note = why + buf;
  if (!std::isfinite(e.value)) e.value = std::numeric_limits<double>::quiet_NaN();
  return e;
}

SparseEstimate sparse_norm(const SparseMatrix& w) {
  const Eigen::Index n = w.cols();
  if (n == 0 || w.rows() == 0 || is_zero(w)) return {};
  if (!all_finite(w))
    return {std::numeric_limits<double>::quiet_NaN(), SolveStatus::not_converged, "W has non-finite entries", 0.0};
  auto dense = [&](const std::string& why) {
    SolveStatus st;
    const double s = gradflow::spectral_norm(Eigen::MatrixXd(w), &st);
    return SparseEstimate{s, st == SolveStatus::not_converged ? st : SolveStatus::fallback, why, 0.0};
  };
  if (n < kIterativeMinSize) return dense("N = " + std::to_string(n) + ": dense SVD");
  SparseGramOp op(w);
  const Eigen::Index ncv = std::min(n, kSparseNormNcv);
  Spectra::SymEigsSolver<SparseGramOp> solver(op, kSparseNormNev, ncv);
  std::string why;
  try {
    solver.init();
    solver.compute(Spectra::SortRule::LargestAlge, kSparseNormMaxRestarts, kSparseTol);
  } catch (const std::runtime_error& e) {
    why = std::string("Lanczos on W^T W broke down (") + e.what() + ")";
  }
  if (why.empty() && solver.info() == Spectra::CompInfo::Successful) {
    const double theta = solver.eigenvalues()(0);
    const Eigen::VectorXd x = solver.eigenvectors().col(0);
    Eigen::VectorXd gx(n);
    op.perform_op(x.data(), gx.data());
    if (theta > 0.0 && (gx - theta * x).norm() <= kResidualCheckTol * theta * x.norm())
      return {std::sqrt(theta), SolveStatus::converged, "", 0.0};
    why = "Lanczos on W^T W returned a spurious Ritz pair (explicit residual check failed)";
  }
  if (why.empty()) why = "Lanczos on W^T W did not converge in " + std::to_string(kSparseNormMaxRestarts) + " restarts";
  if (n <= kSparseDenseFallbackMax) return dense(why + ": dense BDCSVD");
  return {std::numeric_limits<double>::quiet_NaN(), SolveStatus::not_converged, why, 0.0};
}

}  // namespace
}  // namespace detail

std::string to_string(StoragePolicy p) {
  switch (p) {
    case StoragePolicy::automatic: return "auto";
    case StoragePolicy::dense: return "dense";
    case StoragePolicy::sparse: return "sparse";
  }
  throw std::invalid_argument("to_string: invalid StoragePolicy value");
}

std::string to_string(Storage s) { return s == Storage::sparse ? "sparse" : "dense"; }

StoragePolicy parse_storage_policy(const std::string& name) {
  if (name == "auto") return StoragePolicy::automatic;
  if (name == "dense") return StoragePolicy::dense;
  if (name == "sparse") return StoragePolicy::sparse;
  throw std::invalid_argument("unknown storage \"" + name + "\": expected auto, dense or sparse");
}

Storage choose_storage(StoragePolicy policy, Eigen::Index n, double nonzeros) {
  if (policy == StoragePolicy::dense) return Storage::dense;
  if (policy == StoragePolicy::sparse) return Storage::sparse;
  const double nn = static_cast<double>(n) * static_cast<double>(n);
  return n >= kSparseMinUnits && nonzeros <= kSparseMaxFill * nn ? Storage::sparse : Storage::dense;
}

double RecurrentMatrix::nonzeros() const {
  if (sparse) return static_cast<double>(sparse->nonZeros());
  return static_cast<double>((dense.array() != 0.0).count());
}

Eigen::MatrixXd RecurrentMatrix::to_dense() const { return sparse ? Eigen::MatrixXd(*sparse) : dense; }

RecurrentMatrix RecurrentMatrix::store(Eigen::MatrixXd w, Storage storage) {
  RecurrentMatrix r;
  if (storage == Storage::sparse) r.sparse = std::make_shared<const SparseMatrix>(w.sparseView(0.0, 0.0));
  else r.dense = std::move(w);
  return r;
}

RecurrentMatrix RecurrentMatrix::store(SparseMatrix w, Storage storage) {
  RecurrentMatrix r;
  if (storage == Storage::dense) {
    r.dense = Eigen::MatrixXd(w);
  } else {
    w.makeCompressed();
    r.sparse = std::make_shared<const SparseMatrix>(std::move(w));
  }
  return r;
}

double spectral_radius(const SparseMatrix& w, SolveStatus* status, std::string* note) {
  const detail::SparseEstimate e = detail::sparse_radius(w);
  if (status) *status = e.status;
  if (note) *note = e.note;
  return e.value;
}

double spectral_norm(const SparseMatrix& w, SolveStatus* status) {
  const detail::SparseEstimate e = detail::sparse_norm(w);
  if (status) *status = e.status;
  return e.value;
}

SpectralInfo analyse_spectrum(const SparseMatrix& w) {
  const detail::SparseEstimate rho = detail::sparse_radius(w);
  const detail::SparseEstimate norm = detail::sparse_norm(w);
  SpectralInfo info;
  info.rho = rho.value;
  info.spectral_norm = norm.value;
  info.rho_status = rho.status;
  info.norm_status = norm.status;
  if (!rho.note.empty()) info.message = "rho: " + rho.note;
  if (!norm.note.empty()) info.message += (info.message.empty() ? "" : "; ") + std::string("||W||_2: ") + norm.note;
  return info;
}

SpectralInfo analyse_spectrum(const RecurrentMatrix& w) {
  return w.is_sparse() ? analyse_spectrum(*w.sparse) : analyse_spectrum(w.dense);
}

SparseMatrix rescale_to_radius(const SparseMatrix& w, double radius, SolveStatus* rho_status, std::string* note) {
  if (w.rows() != w.cols())
    throw std::invalid_argument("rescale_to_radius: W must be square (rows = cols), got " +
                                std::to_string(w.rows()) + " x " + std::to_string(w.cols()));
  if (!(std::isfinite(radius) && radius >= 0.0))
    throw std::invalid_argument("rescale_to_radius: radius must satisfy radius >= 0 and be finite, got " +
                                std::to_string(radius));
  if (radius == 0.0) {
    if (rho_status) *rho_status = SolveStatus::converged;
    return SparseMatrix(w.rows(), w.cols());
  }
  const detail::SparseEstimate rho = detail::sparse_radius(w);
  if (rho_status) *rho_status = rho.status;
  if (note) *note = rho.note;
  if (!std::isfinite(rho.value))
    throw std::runtime_error("rescale_to_radius: rho(W) could not be computed (" + rho.note + ")");
  if (rho.value == 0.0)
    throw std::invalid_argument("rescale_to_radius: rho(W) = 0 (W is nilpotent), so W cannot be rescaled to radius " +
                                std::to_string(radius) + " > 0");
  SparseMatrix out = w * (radius / rho.value);
  out.makeCompressed();
  return out;
}

}  // namespace gradflow
