#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "gradflow/activation.hpp"
#include "gradflow/config.hpp"
#include "gradflow/sparse.hpp"

namespace gradflow {

/// The parameters of one unrolled network.
struct Model {
  Eigen::MatrixXd w;  // recurrent weights W, N x N (empty when w_sparse holds W)
  std::shared_ptr<const SparseMatrix> w_sparse;  // W in sparse storage; null: W is `w`
  Eigen::MatrixXd u;  // input weights U, N x dim (0 columns: no input)
  Eigen::VectorXd b;  // bias, N (empty: zero)
  Activation activation;
  CellKind cell = CellKind::vanilla;
  double leak = 1.0;  // leak rate of CellKind::leaky, in (0, 1]

  /// (c, s) of the cell: J_t = c I + s diag(f'(a_t)) W.
  double carry() const { return cell == CellKind::vanilla ? 0.0 : cell == CellKind::residual ? 1.0 : 1.0 - leak; }
  double drive_scale() const { return cell == CellKind::leaky ? leak : 1.0; }
  /// N, whichever storage holds W.
  Eigen::Index units() const { return w_sparse ? w_sparse->rows() : w.rows(); }
};

/// What the B trajectories are driven with and how they are seeded.
struct Drive {
  Eigen::Index steps = 400;    // T, backpropagated steps
  Eigen::Index burn_in = 0;    // forward steps before t = 0, not backpropagated
  Eigen::MatrixXd h0;          // N x B state before the burn-in
  std::uint64_t input_seed = 0;  // x_t ~ N(0, I), drawn per step from this stream
  /// Fixed inputs instead: row s - 1 is x at forward step s (s = 1..burn_in + steps), shared by the B
  /// trajectories; (burn_in + steps) x dim with dim = U's columns. Null: the random stream above.
  std::shared_ptr<const Eigen::MatrixXd> inputs;
  LossKind loss = LossKind::random;
  std::uint64_t loss_seed = 0;   // stream of the random unit seeds g_T
};

/// Per-step gradient norms and the activation statistics of the forward pass.
/// Index t runs over 0..horizon; g_t = dL/dh_t, with g_horizon the loss seed.
struct GradientTrace {
  Eigen::Index batch = 0;
  double carry = 0.0;        // c of the cell's Jacobian J_t = c I + s diag(f'(a_t)) W (Model::carry())
  double drive_scale = 1.0;  // s (Model::drive_scale())
  /// Steps actually backpropagated: T, or (forward_diverged_at - 1) when the state became non-finite.
  Eigen::Index horizon = 0;
  /// t (counted like the series, burn-in steps at t <= 0) of the first non-finite state, if any.
  std::optional<Eigen::Index> forward_diverged_at;

  std::vector<double> log10_norm_mean;  // mean over trajectories with g_t != 0 of log10 ||g_t||
  std::vector<double> log10_norm_min;
  std::vector<double> log10_norm_max;
  std::vector<int> zero_count;          // trajectories whose g_t is exactly zero
  std::vector<double> mean_abs_dact_t;  // mean |f'(a_t)| over units and trajectories (t >= 1; [0] unused)
  std::vector<double> mean_sq_dact_t;   // mean f'(a_t)^2 over units and trajectories (t >= 1; [0] unused)

  double mean_abs_dact = 0.0;       // E|f'(a)| over units, steps 1..horizon and trajectories
  double mean_sq_dact = 0.0;        // E[f'(a)^2]
  double max_abs_dact = 0.0;        // largest |f'(a)| seen
  double dead_fraction = 0.0;       // fraction of f'(a) == 0
  double saturated_fraction = 0.0;  // fraction of |f'(a)| < 1e-3 sup|f'|
};

/// The forward pass of B trajectories: f'(a_t) for t = 1..horizon (the tape), the final state and the
/// statistics of f'. Column block t - 1 of `dact` (B columns) holds f'(a_t), column-major.
template <class Scalar>
struct Tape {
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  Matrix dact;         // N x (B * T); only the first B * horizon columns are valid
  Matrix final_state;  // h at the horizon (the last finite state)
  Eigen::Index batch = 0;
  Eigen::Index horizon = 0;
  std::optional<Eigen::Index> forward_diverged_at;
  std::vector<double> mean_abs_dact_t;  // [t], t = 1..horizon ([0] unused)
  std::vector<double> mean_sq_dact_t;   // [t], mean f'(a_t)^2, t = 1..horizon ([0] unused)
  double mean_abs_dact = 0.0, mean_sq_dact = 0.0, max_abs_dact = 0.0;
  double dead_fraction = 0.0, saturated_fraction = 0.0;

  /// f'(a_t), N x B.
  auto step(Eigen::Index t) const { return dact.middleCols((t - 1) * batch, batch); }
};

/// Runs burn_in + T forward steps and records the tape. A state that becomes non-finite stops the pass:
/// horizon = t - 1 and forward_diverged_at = t.
template <class Scalar>
Tape<Scalar> forward_pass(const Model& model, const Drive& drive);

/// BPTT over a tape: per-step log norms of g_t from the loss seed at the horizon down to t = 0.
template <class Scalar>
GradientTrace backward_pass(const Model& model, const Drive& drive, const Tape<Scalar>& tape);

/// Forward pass (tape of f'(a_t), t = 1..T, N x B each) then BPTT g_{t-1} = W^T (f'(a_t) .* g_t),
/// renormalising every column each step and accumulating log norms, so log10 ||g_t|| is exact even at
/// 1e+5000. Scalar is float or double; norms and logs are accumulated in double.
template <class Scalar>
GradientTrace run_bptt(const Model& model, const Drive& drive);

/// run_bptt at the given precision.
GradientTrace run_bptt(const Model& model, const Drive& drive, Precision precision);

}  // namespace gradflow
