#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "gradflow/engine/engine.hpp"

namespace gradflow {

/// Options of the Lyapunov spectrum estimate (Benettin et al. 1980; Shimada & Nagashima 1979).
struct LyapunovOptions {
  Eigen::Index count = 1;     // k, number of leading exponents (1 <= k <= N)
  Eigen::Index burn_in = 0;   // tangent steps (a prefix of the tape, t = 1..burn_in) run but not averaged
  Eigen::Index interval = 1;  // re-orthonormalise (QR) every `interval` steps (>= 1)
  std::uint64_t seed = 0;     // stream of the random orthonormal starting frames
};

enum class LyapunovStatus {
  ok,           // exponents averaged over horizon - burn_in >= 1 steps
  annihilated,  // some trajectory's tangent frame became exactly zero (dead units): exponent -inf
  too_short     // the tape (horizon, shortened by a forward divergence) is not longer than the burn-in
};
std::string to_string(LyapunovStatus s);
LyapunovStatus parse_lyapunov_status(const std::string& name);

/// The top k Lyapunov exponents (natural log per step) of the Jacobian product along each trajectory.
struct LyapunovResult {
  LyapunovStatus status = LyapunovStatus::too_short;
  /// [i]: mean over trajectories of lambda_{i+1} (descending up to finite-time noise); -inf exactly when
  /// some trajectory's product annihilated that direction (status annihilated). Empty when too_short.
  std::vector<double> exponents;
  std::vector<double> exponents_std;   // [i]: sample std over the trajectories with a finite lambda_{i+1}
  Eigen::MatrixXd per_trajectory;      // k x B: lambda_i of each trajectory (-inf when annihilated)
  Eigen::Index steps = 0;              // steps averaged: horizon - burn_in
  std::string message;

  bool ok() const { return status == LyapunovStatus::ok; }
  double max() const { return exponents.empty() ? 0.0 : exponents.front(); }
};

/// Benettin's algorithm over the tape of a forward pass. For each trajectory b, a random orthonormal
/// N x k frame Q is pushed through the step Jacobians
///
///     J_t = c I + s diag(f'(a_t)) W          (c = model.carry(), s = model.drive_scale())
///
/// matrix-free (Q <- c Q + s f'(a_t) .* (W Q), one GEMM with W for all trajectories at once), and
/// re-orthonormalised by Householder QR, Q R = Q, every `interval` steps and at the horizon. From step
/// burn_in on, ln |R_ii| is accumulated; lambda_i = sum ln |R_ii| / (horizon - burn_in). The frame is
/// re-orthonormalised at t = burn_in so that the average starts there. Cost per step: O(N^2 k + N k^2)
/// per trajectory. The tape covers t = 1..horizon after the forward burn-in: the tangent burn-in is a
/// prefix of that window. Scalar is the tape's precision; logs are accumulated in double.
/// Throws std::invalid_argument unless 1 <= count <= N, burn_in >= 0 and interval >= 1.
template <class Scalar>
LyapunovResult lyapunov_spectrum(const Model& model, const Tape<Scalar>& tape, const LyapunovOptions& options);

}  // namespace gradflow
