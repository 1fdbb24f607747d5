#include "gradflow/model/sparse.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <complex>
#include <cstdio>
#include <exception>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

#include <omp.h>

#include <Spectra/GenEigsSolver.h>
#include <Spectra/MatOp/SparseGenMatProd.h>
#include <Spectra/SymEigsSolver.h>

#include "gradflow/numerics/blas.hpp"
#include "gradflow/numerics/random.hpp"
#include "spectra_util.hpp"

namespace gradflow {
namespace detail {
namespace {

// Arnoldi on a sparse W. Krylov subspaces favour eigenvalues that are exterior in the plane, not the largest in
// modulus: on a disk-shaped spectrum (sparse Gaussian W obeys the circular law) every edge eigenvalue is
// exterior, and the implicit restarts, whose shifts are the unwanted Ritz values, can filter out the true top
// eigenvector before it is resolved. Measured on one in_degree-100 matrix at N = 1e5: nev = 2, ncv = 60
// converged (residual 1e-12, 32k products, 590 s) to |lambda| = 0.99909, an eigenvalue but not the largest;
// nev = 10, ncv = 100 found 1.00424 (18k products, 410 s), with the top ten moduli spread over 3.1e-3. So
// twenty eigenvalues are wanted: the wanted set covers the crowded top of the disk (at N = 1e4 the top ten
// moduli spread 2.5e-3, the top twenty 4.8e-3), and a run is trusted alone when the twenty moduli spread by at
// least kSparseMinSpread; only a crowded top (an annulus, a near-orthogonal W) needs a second run from an
// independent start. Twenty instead of ten costs more products at the same tolerance (N = 1e4: 3392
// against 2477 at 1e-12), which the contract's tolerance below pays back (2668 at 1e-10).
constexpr Eigen::Index kSparseNev = 20;
constexpr Eigen::Index kSparseNcv = 100;
// Spread (max - min) / max of the wanted moduli below which the top is "crowded" and one run is not trusted
// alone. Battery (known spectra: N = 200, 300, 500 rotation blocks with moduli uniform in an annulus [1 - w, 1],
// w = 0.5 ... 0.001, normal and similarity-transformed, 4 draws each, 144 runs, this nev, ncv and tolerance):
// 25 of the 124 converged runs found an eigenvalue that is not the top (errors 2e-6 ... 6e-4), every one
// with its twenty moduli within 3.15e-3 (nev = 10 on the same battery: wrong runs within 1.03e-3); the right
// runs spread down to 1.3e-4. 4e-3 keeps the margin the nev = 10 rule had (1.3x over its worst wrong run);
// sparse Gaussian W spread their top twenty by 4.8e-3 at N = 1e4 (seed 1), 2.6e-3 at 3e4 (a second run).
constexpr double kSparseMinSpread = 4e-3;
// Stopping tolerance of the sparse Arnoldi (Spectra: every wanted Ritz pair's residual estimate below
// tol |theta|): the radius contract is 1e-8 relative (DESIGN.md), the explicit check below asks a relative
// residual <= kResidualTol = 1e-10, and Spectra's 1e-12 (kSpectraTol) bought digits nobody reads at ~25 % more
// products. 5e-11 leaves the explicit check a factor 2 of rounding margin; the eigenvalue error is at most the
// eigenvalue's condition number times the residual (Bauer-Fike, first order), checked against dense solves
// at N = 1000-3000 in tests/model/test_sparse.cpp.
constexpr double kSparseTol = 5e-11;
// Restart budget: the products needed grow with N as the top moduli crowd (nev = 10, ncv = 100: ~40 restarts at
// N = 1e4, ~200 at N = 1e5; nev = 20 at 1e-10: 36 at 1e4, 142 at 3e4); 3 sqrt(N) leaves a factor ~3 above that
// and stops a hopeless solve (a cluster of equal moduli) in bounded time.
Eigen::Index sparse_max_restarts(Eigen::Index n) {
  return std::max<Eigen::Index>(200, static_cast<Eigen::Index>(3.0 * std::sqrt(static_cast<double>(n))));
}
// Seed of the independent confirming start vector (fixed: the analysis is deterministic).
constexpr std::uint64_t kConfirmSeed = 0xA2401D1ULL;

// Lanczos on W^T W for ||W||_2: the top of a positive semi-definite spectrum, as in spectrum.cpp.
constexpr Eigen::Index kSparseNormNev = 1;
constexpr Eigen::Index kSparseNormNcv = 30;
constexpr Eigen::Index kSparseNormMaxRestarts = 200;

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

// Two converged runs agree when their radii differ by less than this (relative): both are verified eigenvalues
// (residual <= 1e-10), so a larger difference means one of them is not the top.
constexpr double kSparseAgreeTol = 1e-9;

/// Thrown inside a speculative run that is no longer needed (not an error: never leaves sparse_radius).
struct ArnoldiCancelled {};

/// The sparse product of the radius solve, abandoning the solve (ArnoldiCancelled) once `cancel` is set.
template <class Op>
class Cancellable : public Polled<Op> {
 public:
  Cancellable(const SparseMatrix& w, const std::atomic<bool>* cancel) : Polled<Op>(w), cancel_(cancel) {}
  void perform_op(const double* x_in, double* y_out) const {
    if (cancel_ && cancel_->load(std::memory_order_relaxed)) throw ArnoldiCancelled{};
    Polled<Op>::perform_op(x_in, y_out);
  }

 private:
  const std::atomic<bool>* cancel_;
};

/// One Arnoldi solve for the largest moduli (start: Spectra's fixed-seed vector, or `start`).
struct ArnoldiRun {
  bool converged = false;
  double rho = 0.0;            // largest converged modulus (verified by an explicit residual)
  double residual = 0.0;       // its relative residual ||W x - lambda x|| / (|lambda| ||x||)
  double spread = 0.0;         // (max - min) / max of the converged moduli
  Eigen::Index count = 0;      // converged eigenvalues
  double best = 0.0;           // largest Ritz value reached (also when not converged)
  double best_residual = 0.0;  // its Arnoldi residual estimate
  std::string why;             // why it did not converge
};

ArnoldiRun arnoldi_top(const SparseMatrix& w, const Eigen::VectorXd* start,
                       const std::atomic<bool>* cancel = nullptr) {
  const Eigen::Index n = w.rows();
  const Eigen::Index nev = std::min(kSparseNev, n - 2);
  const Eigen::Index ncv = std::min(n, std::max(2 * nev + 1, kSparseNcv));
  const Eigen::Index max_restarts = sparse_max_restarts(n);
  using Op = Cancellable<Spectra::SparseGenMatProd<double, Eigen::RowMajor>>;
  Op op(w, cancel);
  ArnoldiSolver<Op> solver(op, nev, ncv);
  ArnoldiRun run;
  try {
    if (start) solver.init(start->data());
    else solver.init();  // Spectra's fixed-seed start vector: deterministic
    solver.compute(Spectra::SortRule::LargestMagn, max_restarts, kSparseTol);
  } catch (const std::runtime_error& e) {
    run.why = std::string("Arnoldi broke down (") + e.what() + ")";
    return run;
  }
  run.best = std::abs(solver.top_ritz_value());
  run.best_residual = solver.top_relative_residual();
  if (solver.info() != Spectra::CompInfo::Successful) {
    run.why = "Arnoldi did not converge in " + std::to_string(max_restarts) + " restarts (" +
              std::to_string(solver.num_operations()) + " products)";
    return run;
  }
  const Eigen::VectorXcd lambda = solver.eigenvalues();
  Eigen::Index top = 0;
  const Eigen::VectorXd moduli = lambda.cwiseAbs();
  run.rho = moduli.maxCoeff(&top);
  run.count = lambda.size();
  run.spread = (run.rho - moduli.minCoeff()) / run.rho;
  const Eigen::VectorXcd x = solver.eigenvectors().col(top);
  const Eigen::VectorXd re = x.real(), im = x.imag();
  const Eigen::VectorXcd wx =
      (w * re).cast<std::complex<double>>() + std::complex<double>(0, 1) * (w * im).cast<std::complex<double>>();
  run.residual = (wx - lambda[top] * x).norm() / (run.rho * x.norm());
  if (!(run.residual <= kResidualTol)) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "Arnoldi returned a spurious Ritz pair (relative residual %.1e)", run.residual);
    run.why = buf;
    return run;
  }
  run.converged = true;
  return run;
}

/// True when this solve has two threads of its own for the confirming run: the run gave the cell's products
/// more than one thread (gradflow::gemm_threads(), not inside a sweep across cells), and a parallel region
/// opened here leaves the sparse products inside it on one thread each (a nested region would be inactive),
/// so the two runs never oversubscribe the cores.
bool concurrent_confirmation() {
  return gemm_threads() > 1 && !omp_in_parallel() && omp_get_max_active_levels() <= omp_get_active_level() + 1;
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
  if (const auto s = scaled_orthogonal_modulus(w)) return {*s, SolveStatus::converged, "", 0.0};

  // Too large for a dense solve: the best Ritz value, flagged, with its residual and the reason.
  auto give_up = [&](const ArnoldiRun& run, const std::string& why) {
    SparseEstimate e;
    e.status = SolveStatus::not_converged;
    e.value = std::isfinite(run.best) ? run.best : std::numeric_limits<double>::quiet_NaN();
    e.rel_residual = run.best_residual;
    char buf[96];
    std::snprintf(buf, sizeof buf, "; largest Ritz value %.12g has relative residual %.2g", run.best, run.best_residual);
    e.note = why + buf;
    return e;
  };

  // The confirming run's start: independent of Spectra's (fixed-seed) start vector.
  auto confirm_start = [n] {
    Rng rng(kConfirmSeed);
    return Eigen::VectorXd(gaussian_matrix(n, 1, 1.0, rng).col(0));
  };
  ArnoldiRun first, second;
  bool have_second = false;
  if (n > kSparseDenseFallbackMax && concurrent_confirmation()) {
    // Two threads for this solve: the confirming run starts at once beside the first (speculatively) and is
    // abandoned as soon as the first turns out to need no confirmation. Each run is the same deterministic
    // sequence of operations as when the two run one after the other, so rho and the status are the same
    // bits; wall time is one run instead of two when the top is crowded (every large disk spectrum).
    std::atomic<bool> first_suffices{false};
    std::exception_ptr error[2];
#pragma omp parallel sections num_threads(2)
    {
#pragma omp section
      {
        try {
          first = arnoldi_top(w, nullptr);
          if (!first.converged || first.spread >= kSparseMinSpread) first_suffices.store(true);
        } catch (...) {
          error[0] = std::current_exception();
          first_suffices.store(true);
        }
      }
#pragma omp section
      {
        try {
          const Eigen::VectorXd start = confirm_start();
          second = arnoldi_top(w, &start, &first_suffices);
          have_second = true;
        } catch (const ArnoldiCancelled&) {
        } catch (...) {
          error[1] = std::current_exception();
        }
      }
    }
    if (error[0]) std::rethrow_exception(error[0]);
    if (error[1] && !first_suffices.load()) std::rethrow_exception(error[1]);
  } else {
    first = arnoldi_top(w, nullptr);
  }
  if (!first.converged) {
    if (n <= kSparseDenseFallbackMax) return dense_fallback_radius(w, first.why + ": dense EigenSolver");
    return give_up(first, first.why);
  }
  if (first.spread >= kSparseMinSpread) return {first.rho, SolveStatus::converged, "", first.residual};
  // Crowded top: one run is not enough evidence that the largest modulus is among those found.
  char spread[64];
  std::snprintf(spread, sizeof spread, "the top %d moduli spread only %.1e", int(first.count), first.spread);
  if (n <= kSparseDenseFallbackMax) return dense_fallback_radius(w, std::string(spread) + ": dense EigenSolver");
  if (!have_second) {
    const Eigen::VectorXd start = confirm_start();
    second = arnoldi_top(w, &start);
  }
  if (!second.converged) return give_up(first, std::string(spread) + "; the confirming run: " + second.why);
  const double rho = std::max(first.rho, second.rho);
  if (std::abs(first.rho - second.rho) <= kSparseAgreeTol * rho)
    return {rho, SolveStatus::converged, "", std::max(first.residual, second.residual)};
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s and two Arnoldi starts disagree (%.12g vs %.12g); the larger is used", spread,
                first.rho, second.rho);
  SparseEstimate e{rho, SolveStatus::not_converged, buf, std::max(first.residual, second.residual)};
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
  GramOp<SparseMatrix> op(w);
  const Eigen::Index ncv = std::min(n, kSparseNormNcv);
  Spectra::SymEigsSolver<GramOp<SparseMatrix>> solver(op, kSparseNormNev, ncv);
  std::string why;
  if (run_solver(solver, Spectra::SortRule::LargestAlge, kSparseNormMaxRestarts, &why)) {
    const double theta = solver.eigenvalues()(0);
    const Eigen::VectorXd x = solver.eigenvectors().col(0);
    Eigen::VectorXd gx(n);
    op.perform_op(x.data(), gx.data());
    if (theta > 0.0 && (gx - theta * x).norm() <= kResidualTol * theta * x.norm())
      return {std::sqrt(theta), SolveStatus::converged, "", 0.0};
    why = "returned a spurious Ritz pair (explicit residual check failed)";
  }
  why = "Lanczos on W^T W " + why;
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
