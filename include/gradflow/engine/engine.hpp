#pragma once
// The passes of the engine over any cell (cell.hpp): the forward pass records the tape, BPTT runs the
// transposed step Jacobians back over it in the log domain.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "gradflow/engine/cell.hpp"
#include "gradflow/model/config.hpp"
#include "gradflow/model/network.hpp"
#include "gradflow/numerics/activation.hpp"

namespace gradflow {

/// Per-step gradient norms and the activation statistics of the forward pass.
/// Index t runs over 0..horizon; g_t = dL/dS_t (S_t = h_t for the cells with one state vector), with
/// g_horizon the loss seed.
struct GradientTrace {
  Eigen::Index batch = 0;
  double carry = 0.0;        // c of the cell's Jacobian J_t = c I + s diag(f'(a_t)) W (Model::carry())
  double drive_scale = 1.0;  // s (Model::drive_scale())
  /// Steps over which the cell's state relaxes, for judging the regime per time constant (metrics.hpp,
  /// cell_time_constant); 0: derived from carry and drive_scale. A cell kind with its own (gated) sets it.
  double time_constant = 0.0;
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

  // Cells with a second state vector (lstm): mean over trajectories of log10 ||dL/dh_t|| (the h part of g_t);
  // empty otherwise, NaN where no trajectory has a non-zero h part.
  std::vector<double> log10_norm_h_mean;
  // Gated cells: the coefficients of the step Jacobian (Cell::coefficient_names()) over units, steps and
  // trajectories: mean, root mean square and largest |value|; empty for the other cells.
  std::vector<std::string> coefficient_names;
  std::vector<double> coef_mean, coef_rms, coef_max;
  /// The cell's own predictors (gated cells: gated_predictors()); unset: the vanilla-family formulas of
  /// compute_metrics() with carry and drive_scale.
  std::optional<CellPredictors> cell_predictors;
};

/// The forward pass of B trajectories: what the cell's backward step needs for t = 1..horizon (the tape;
/// f'(a_t) for the vanilla, residual and leaky cells), the final state and the statistics of f'. Column block
/// t - 1 of `data` (B columns of Cell::tape_rows() scalars) belongs to step t, column-major.
template <class Scalar>
struct Tape {
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  // tape_rows x (B * T); only the first B * horizon columns are valid. A view of `storage` (memory mapped
  // and prefaulted by the engine, reused by the next tape of the same thread once this one is gone).
  Eigen::Map<Matrix> data{nullptr, 0, 0};
  std::shared_ptr<void> storage;
  Matrix final_state;  // S x B at the horizon (the last finite state; h in its first N rows)
  Eigen::Index batch = 0;
  Eigen::Index horizon = 0;
  std::optional<Eigen::Index> forward_diverged_at;
  std::vector<double> mean_abs_dact_t;  // [t], t = 1..horizon ([0] unused)
  std::vector<double> mean_sq_dact_t;   // [t], mean f'(a_t)^2, t = 1..horizon ([0] unused)
  double mean_abs_dact = 0.0, mean_sq_dact = 0.0, max_abs_dact = 0.0;
  double dead_fraction = 0.0, saturated_fraction = 0.0;
  std::vector<std::string> coefficient_names;  // gated cells (GradientTrace)
  std::vector<double> coef_mean, coef_rms, coef_max;

  /// The tape of step t, tape_rows x B (f'(a_t) for the vanilla, residual and leaky cells).
  auto step(Eigen::Index t) const { return data.middleCols((t - 1) * batch, batch); }
};

/// Runs burn_in + T forward steps and records the tape. A state that becomes non-finite stops the pass:
/// horizon = t - 1 and forward_diverged_at = t.
template <class Scalar>
Tape<Scalar> forward_pass(const Model& model, const Drive& drive);

/// BPTT over a tape: per-step log norms of g_t from the loss seed at the horizon down to t = 0.
template <class Scalar>
GradientTrace backward_pass(const Model& model, const Drive& drive, const Tape<Scalar>& tape);

/// Forward pass (the tape, t = 1..T) then BPTT g_{t-1} = J_t^T g_t (vanilla: W^T (f'(a_t) .* g_t)),
/// renormalising every column each step and accumulating log norms, so log10 ||g_t|| is exact even at
/// 1e+5000. Scalar is float or double; norms and logs are accumulated in double.
template <class Scalar>
GradientTrace run_bptt(const Model& model, const Drive& drive);

/// run_bptt at the given precision.
GradientTrace run_bptt(const Model& model, const Drive& drive, Precision precision);

/// Unmaps the tape mappings that finished passes keep for the next tape of their thread (one per thread, see
/// Tape), on every thread. A run calls it when its cells are done, so that what follows (the report's
/// eigenvalue picture) does not hold a tape's worth of idle memory: the README's memory formula holds.
void release_kept_tapes();

}  // namespace gradflow
