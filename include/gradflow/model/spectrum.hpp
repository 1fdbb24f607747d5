#pragma once

#include <optional>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "gradflow/numerics/random.hpp"

namespace gradflow {

enum class SpectrumKind {
  ginibre,     // iid N(0, 1/N) entries: circular law of radius ~1
  orthogonal,  // Haar orthogonal (QR of a Ginibre matrix with the sign fix): every |lambda| = 1
  symmetric,   // GOE: (G + G^T) / sqrt(2N), semicircle on [-2, 2]
  file,        // read from a .npy / .mtx file (the scenario layer loads it)
  sparse,      // sparse Gaussian, Erdos-Renyi density or fixed in-degree (ensembles.hpp: sparse_gaussian)
  nonnormal,   // Q (D + s R) Q^T: fixed eigenvalues, non-normality s (ensembles.hpp: nonnormal_matrix)
  chain,       // feed-forward delay line, rho = 0, ||W||_2 = 1 (ensembles.hpp: delay_chain)
  dale         // excitatory / inhibitory columns (Rajan & Abbott 2006; ensembles.hpp: dale_matrix)
};

std::string to_string(SpectrumKind kind);
/// Inverse of to_string; throws std::invalid_argument naming the accepted names.
SpectrumKind parse_spectrum_kind(const std::string& name);

/// Outcome of an iterative solve: a status, never an exception.
enum class SolveStatus { converged, fallback, not_converged };
std::string to_string(SolveStatus status);

/// Below this size rho(W) and ||W||_2 are computed densely (status SolveStatus::fallback): Spectra needs
/// nev <= N - 2 and a Krylov subspace of ~N vectors, so an iterative solve gains nothing there.
inline constexpr Eigen::Index kIterativeMinSize = 20;

/// rho(W) and ||W||_2 with how they were obtained.
struct SpectralInfo {
  double rho = 0.0;            // spectral radius max |lambda_i(W)|
  double spectral_norm = 0.0;  // ||W||_2 = sigma_max(W)
  SolveStatus rho_status = SolveStatus::converged;
  SolveStatus norm_status = SolveStatus::converged;
  std::string message;  // what fell back and why; empty when Spectra converged
  // Parts of the spectrum some kinds know in closed form (unset otherwise), at the built W's scale.
  std::optional<double> bulk_radius;  // dale: radius of the disk holding the bulk (Rajan & Abbott 2006)
  std::optional<double> outlier;      // dale: the real outlier of the mean part (0 when balanced)
};

/// Spectral radius by Spectra's GenEigsSolver (Arnoldi, largest magnitude; SymEigsSolver when W = W^T).
/// Falls back to dense Eigen::EigenSolver when Arnoldi does not converge (clustered moduli) or N < 3.
double spectral_radius(const Eigen::MatrixXd& w, SolveStatus* status = nullptr);

/// rho(a I + s W) = max_i |a + s lambda_i(W)|, given rho_w = rho(W) (e.g. known from W's construction). A mean
/// Jacobian of this form with |s| rho_w << |a| has all its eigenvalues near the circle |z| = |a|, where
/// spectral_radius cannot rank the moduli and falls back to the dense solve; here Arnoldi runs on W itself for
/// the eigenvalues of largest sign(a s) Re lambda, and the answer is accepted only when no other eigenvalue can
/// exceed it: a^2 + 2 |a s| R + s^2 rho_w^2 <= max |a + s lambda_i|^2, R = the least sign(a s) Re lambda_i
/// found. Otherwise (or for N <= 100) it is spectral_radius(a I + s W).
double shifted_spectral_radius(const Eigen::MatrixXd& w, double a, double s, double rho_w,
                               SolveStatus* status = nullptr);

/// ||W||_2 = sqrt(lambda_max(W^T W)) by Spectra's SymEigsSolver on the operator x -> W^T (W x);
/// falls back to Eigen::BDCSVD when Lanczos does not converge or N < 3.
double spectral_norm(const Eigen::MatrixXd& w, SolveStatus* status = nullptr);

/// Both of the above, with the statuses and a message.
SpectralInfo analyse_spectrum(const Eigen::MatrixXd& w);

/// A random N x N matrix of `kind` (ginibre, orthogonal or symmetric; the other kinds need parameters, see
/// ensembles.hpp and build_recurrent in cell.hpp) with spectral radius exactly `radius` (1e-8 relative).
/// radius = 0 gives the zero matrix. Draws only from `rng`. Throws std::invalid_argument when
/// n < 1, radius < 0 or kind == file.
Eigen::MatrixXd random_recurrent(SpectrumKind kind, Eigen::Index n, double radius, Rng& rng);

/// W * (radius / rho(W)): the same matrix at an exact spectral radius. Throws std::invalid_argument
/// when rho(W) = 0 and radius > 0 (a nilpotent matrix cannot be rescaled to a positive radius).
Eigen::MatrixXd rescale_to_radius(const Eigen::MatrixXd& w, double radius);

/// All eigenvalues of W (dense, O(N^3)), for plots and tests.
Eigen::VectorXcd eigenvalues(const Eigen::MatrixXd& w);

}  // namespace gradflow
