#pragma once

#include <memory>
#include <string>

#include <Eigen/Core>
#include <Eigen/SparseCore>

#include "gradflow/model/spectrum.hpp"

namespace gradflow {

/// Sparse W: compressed rows, so that W x and W H (H an N x B batch) gather along rows (parallel over rows).
using SparseMatrix = Eigen::SparseMatrix<double, Eigen::RowMajor>;

/// How W is stored. `automatic` applies choose_storage()'s rule.
enum class StoragePolicy { automatic, dense, sparse };
enum class Storage { dense, sparse };

std::string to_string(StoragePolicy p);  // "auto" | "dense" | "sparse"
std::string to_string(Storage s);        // "dense" | "sparse"
/// Inverse of to_string(StoragePolicy); throws std::invalid_argument listing the accepted names.
StoragePolicy parse_storage_policy(const std::string& name);

/// The automatic storage rule: sparse when N >= kSparseMinUnits and nonzeros <= kSparseMaxFill * N^2, dense
/// otherwise. Measured at N = 2000 (one core, Eigen 3.4, -march=native): W H with H an N x B batch takes
/// 30 ms dense for B = 8 and 45-65 ms for B = 32 (a GEMM that streams all of W), against 5.4 / 8.7 ms sparse
/// at 10 % fill and 11.7 / 15 ms at 20 % (compressed rows times a row-major copy of H). The dense product
/// wins only above ~40 % fill; 10 % leaves margin for faster dense kernels (float GEMM, more cores) and keeps
/// W at <= 1.2 bytes per N^2 entry instead of 8. Below 512 units both are fast and dense keeps every
/// dense solver path.
inline constexpr Eigen::Index kSparseMinUnits = 512;
inline constexpr double kSparseMaxFill = 0.10;
Storage choose_storage(StoragePolicy policy, Eigen::Index n, double nonzeros);

/// W in either storage: exactly one of `dense` (N x N) and `sparse` is used.
struct RecurrentMatrix {
  Eigen::MatrixXd dense;
  std::shared_ptr<const SparseMatrix> sparse;

  bool is_sparse() const { return sparse != nullptr; }
  Eigen::Index rows() const { return sparse ? sparse->rows() : dense.rows(); }
  /// Stored nonzeros (for dense storage: the number of nonzero entries).
  double nonzeros() const;
  /// W as a dense matrix (a copy for sparse storage: N^2 doubles).
  Eigen::MatrixXd to_dense() const;
  /// W in `storage`: converts when needed.
  static RecurrentMatrix store(Eigen::MatrixXd w, Storage storage);
  static RecurrentMatrix store(SparseMatrix w, Storage storage);
};

/// Below this size a sparse W is analysed through its dense copy (status SolveStatus::fallback when the
/// dense solvers are used), and a sparse Arnoldi that does not converge falls back to the dense solver.
/// Above it nothing dense is formed: a solve that does not converge is reported as not_converged.
inline constexpr Eigen::Index kSparseDenseFallbackMax = 4000;

/// rho(W) of a sparse W: Spectra's GenEigsSolver on SparseGenMatProd (Arnoldi, implicit restarts, largest
/// magnitude; ten eigenvalues wanted, ncv = 100, every wanted Ritz pair with residual < 1e-12 |theta|, the top
/// one verified by an explicit residual). Triangular W and multiples of orthogonal matrices are recognised
/// first (exact). Krylov methods can settle on an edge eigenvalue that is not the largest when the top moduli
/// are crowded (a disk-shaped spectrum at large N), so a run whose wanted moduli spread less than 3e-3 is not
/// trusted alone: up to N = kSparseDenseFallbackMax the dense solver decides (status fallback), above it a
/// second run from an independent start must agree to 1e-9. When the budget (restarts ~ 3 sqrt(N)) runs out
/// or the two runs disagree, `status` is not_converged (or fallback to the dense solver for small N), the
/// value is the largest Ritz value reached (the first run's when the confirming run does not converge, the
/// larger of the two when both converge and disagree), and `note` says why, with the Ritz pair's relative
/// residual ||W v - theta v|| / |theta| (empty when the solve was trusted).
double spectral_radius(const SparseMatrix& w, SolveStatus* status = nullptr, std::string* note = nullptr);

/// ||W||_2 of a sparse W: Lanczos (SymEigsSolver) on x -> W^T (W x); same fallback rules.
double spectral_norm(const SparseMatrix& w, SolveStatus* status = nullptr);

/// rho and ||W||_2 of a sparse W with statuses and a message.
SpectralInfo analyse_spectrum(const SparseMatrix& w);
/// Either storage.
SpectralInfo analyse_spectrum(const RecurrentMatrix& w);

/// W * (radius / rho(W)) for a sparse W, with rho from spectral_radius(); `rho_status` receives how rho was
/// obtained and `note` why it is not a converged Spectra result. Throws std::invalid_argument when
/// rho(W) = 0 < radius, std::runtime_error when rho is not finite.
SparseMatrix rescale_to_radius(const SparseMatrix& w, double radius, SolveStatus* rho_status = nullptr,
                               std::string* note = nullptr);

}  // namespace gradflow
