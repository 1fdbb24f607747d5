#pragma once

#include <Eigen/Core>

#include "gradflow/numerics/random.hpp"
#include "gradflow/model/sparse.hpp"

namespace gradflow {

// Structured random ensembles for W beyond the dense iid ones of spectrum.hpp. Each draws only from the
// given stream; the cell layer (cell.hpp) rescales them to the configured radius where that is not exact by
// construction.

/// Sparse Gaussian W. Exactly one of `density` (Erdos-Renyi: every entry is nonzero independently with
/// probability p, 0 < p <= 1) and `in_degree` (K distinct uniformly chosen columns per row, 1 <= K <= N) is
/// used; nonzero entries are N(0, 1/(mean nonzeros per row)), so that rho(W) ~ 1 by the circular law before
/// any rescale. Built row by row in compressed form (no dense N x N intermediate): N = 1e5, K = 100 takes
/// ~2 s and 120 MB.
struct SparseOptions {
  double density = 0.0;       // p; 0: use in_degree
  Eigen::Index in_degree = 0; // K; 0: use density
};
SparseMatrix sparse_gaussian(Eigen::Index n, const SparseOptions& options, Rng& rng);

/// Feed-forward delay line (a shift): W e_i = e_{i+1} for i < N, W e_N = 0, i.e. W_{i+1,i} = 1. W is nilpotent
/// (W^N = 0, rho = 0) with ||W||_2 = 1: a gradient survives exactly N - 1 lags and is exactly zero at lag N.
SparseMatrix delay_chain(Eigen::Index n);

/// Non-normal W = Q (D + s R) Q^T (Trefethen & Embree 2005 for pseudospectra; the construction follows the
/// real Schur form). D is the block-diagonal part (1 x 1 and 2 x 2 blocks) of the real Schur form of a
/// Ginibre matrix, scaled so that its largest eigenvalue modulus, computed in closed form from the blocks, is
/// exactly `radius`; R has iid N(0, 1/N) entries strictly above the block diagonal and zeros elsewhere, so
/// D + s R is block upper triangular with the eigenvalues of D for every s; Q is Haar orthogonal.
/// rho(W) = radius while ||W||_2 / rho grows with s = `nonnormality` (>= 0). Rounding in Q (...) Q^T
/// perturbs W by ~eps ||W||, which moves eigenvalues of condition number kappa by ~kappa eps ||W||: at large
/// s and N the eigenvalues a dense solver reports drift away from the disk (the pseudospectrum), while the
/// matrix is Q (D + s R) Q^T to rounding.
Eigen::MatrixXd nonnormal_matrix(Eigen::Index n, double radius, double nonnormality, Rng& rng);

/// E/I network obeying Dale's law in the mean (Rajan & Abbott 2006, Phys. Rev. Lett. 97, 188104): the first
/// round(f N) columns are excitatory, the rest inhibitory; W_ij = (mu_c + sigma_c z_ij) / sqrt(N) with
/// z_ij ~ N(0, 1) and c the type of column j. With `balance`, every row of W is shifted to sum to zero exactly,
/// W <- W (I - 1 1^T / N) (Rajan & Abbott's constraint sum_j J_ij = 0). Gaussian entries have the wrong sign
/// with probability Phi(-|mu_c| / sigma_c) (0.04 % for the defaults), as in Rajan & Abbott.
struct DaleOptions {
  double excitatory = 0.8;  // f, fraction of excitatory columns, 0 < f < 1
  double mean_e = 1.0;      // mu_E: E weights have mean mu_E / sqrt(N) (>= 0)
  double std_e = 0.3;       // sigma_E: and std sigma_E / sqrt(N)
  double mean_i = -4.0;     // mu_I (<= 0): f mu_E + (1 - f) mu_I = 0 balances the mean input
  double std_i = 1.2;       // sigma_I
  bool balance = false;     // zero row sums
};
Eigen::MatrixXd dale_matrix(Eigen::Index n, const DaleOptions& options, Rng& rng);

/// Rajan & Abbott's predictions for dale_matrix (before any rescale): the bulk of the eigenvalues fills a
/// disk of radius sqrt(f sigma_E^2 + (1 - f) sigma_I^2) (with equal E and I variances exactly; in general the
/// density inside the disk is not uniform but the edge is there), and the mean part, rank one
/// (1/sqrt(N)) 1 mu^T, adds the real outlier mu^T 1 / sqrt(N) = (N_E mu_E + N_I mu_I) / sqrt(N) when it lies
/// outside the bulk. balance removes it (outlier = 0).
struct DaleSpectrum {
  double bulk_radius = 0.0;
  double outlier = 0.0;  // 0 when balanced
};
DaleSpectrum dale_prediction(Eigen::Index n, const DaleOptions& options);

/// Number of excitatory columns: round(f N), clamped to 1..N-1 when N >= 2.
Eigen::Index dale_excitatory_count(Eigen::Index n, double fraction);

}  // namespace gradflow
