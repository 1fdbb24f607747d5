#pragma once

#include <string>
#include <vector>

#include <Eigen/Core>

#include "gradflow/random.hpp"

namespace gradflow {

enum class SpectrumKind {
  ginibre,     // iid N(0, 1/N) entries: circular law of radius ~1
  orthogonal,  // Haar orthogonal (QR of a Ginibre matrix with the sign fix): every |lambda| = 1
  symmetric,   // GOE: (G + G^T) / sqrt(2N), semicircle on [-2, 2]
  file         // read from a .npy / .mtx file (the scenario layer loads it)
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
};

/// Spectral radius by Spectra's GenEigsSolver (Arnoldi, largest magnitude; SymEigsSolver when W = W^T).
/// Falls back to dense Eigen::EigenSolver when Arnoldi does not converge (clustered moduli) or N < 3.
double spectral_radius(const Eigen::MatrixXd& w, SolveStatus* status = nullptr);

/// ||W||_2 = sqrt(lambda_max(W^T W)) by Spectra's SymEigsSolver on the operator x -> W^T (W x);
/// falls back to Eigen::BDCSVD when Lanczos does not converge or N < 3.
double spectral_norm(const Eigen::MatrixXd& w, SolveStatus* status = nullptr);

/// Both of the above, with the statuses and a message.
SpectralInfo analyse_spectrum(const Eigen::MatrixXd& w);

/// A random N x N matrix of `kind` (not file) with spectral radius exactly `radius` (1e-8 relative).
/// radius = 0 gives the zero matrix. Draws only from `rng`. Throws std::invalid_argument when
/// n < 1, radius < 0 or kind == file.
Eigen::MatrixXd random_recurrent(SpectrumKind kind, Eigen::Index n, double radius, Rng& rng);

/// W * (radius / rho(W)): the same matrix at an exact spectral radius. Throws std::invalid_argument
/// when rho(W) = 0 and radius > 0 (a nilpotent matrix cannot be rescaled to a positive radius).
Eigen::MatrixXd rescale_to_radius(const Eigen::MatrixXd& w, double radius);

/// All eigenvalues of W (dense, O(N^3)), for plots and tests.
Eigen::VectorXcd eigenvalues(const Eigen::MatrixXd& w);

}  // namespace gradflow
