#pragma once
// The engine's cell interface. A cell kind says how big its state is, runs one forward step writing what its
// backward step needs to the tape, applies its transposed step Jacobian to a gradient (BPTT) and its step
// Jacobian to tangent vectors (Lyapunov). The passes in engine.hpp and the Lyapunov estimate run any cell
// through it; nothing above the engine knows which cell runs.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "gradflow/model/network.hpp"

namespace gradflow {

/// Which pass a cell object serves. Each pass makes its own: its products are prepared for one direction
/// and one column count (W packed for W x in the forward pass, for W^T x in BPTT).
enum class Pass { forward, backward, tangent };

/// The most coefficients a cell reports (Cell::coefficient_names()).
inline constexpr int kMaxCoefficients = 10;

/// Statistics of the derivatives of one forward step, summed over units and trajectories: the slope
/// f'(a_t) of the cell's (candidate) nonlinearity, what E|f'| and E[f'^2] of the predictors average; and for
/// gated cells the coefficients of the step Jacobian (gates and the diagonal factors in front of each
/// recurrent block), N B values each.
struct StepStats {
  double sum_abs = 0.0;    // sum |f'|
  double sum_sq = 0.0;     // sum f'^2
  double max_abs = 0.0;    // max |f'|
  std::int64_t dead = 0;       // f' == 0
  std::int64_t saturated = 0;  // |f'| < 1e-3 sup|f'|
  std::int64_t count = 0;      // derivatives summed (N B for one step of B trajectories)
  std::array<double, kMaxCoefficients> coef_sum{};  // sum of coefficient k
  std::array<double, kMaxCoefficients> coef_sq{};   // sum of its squares
  std::array<double, kMaxCoefficients> coef_max{};  // max of its absolute value
};

/// The input of one forward step: x_t for each trajectory (dim x B, drawn per step) or one x_t shared by the
/// B trajectories (a fixed input sequence). Neither: no input.
template <class Scalar>
struct StepInput {
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  const Mat* per_trajectory = nullptr;
  const Vec* shared = nullptr;

  /// a += U x_t for U of any row count (rows x dim at this precision).
  void add_to(Mat& a, const Mat& u) const {
    if (shared) {
      const Vec ux = u * *shared;  // once, added to every trajectory's column
      a.colwise() += ux;
    } else if (per_trajectory) {
      a.noalias() += u * *per_trajectory;
    }
  }
};

/// One recurrent cell kind at precision Scalar. The state S_t of a trajectory is a column of state_size()
/// scalars whose first N are h_t; B trajectories are the columns of an S x B block. Step t maps S_{t-1} to
/// S_t with Jacobian J_t = dS_t / dS_{t-1}.
template <class Scalar>
class Cell {
 public:
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  virtual ~Cell() = default;

  /// N, the units of h.
  virtual Eigen::Index units() const = 0;
  /// S: N, or 2N for a cell with a second state vector.
  virtual Eigen::Index state_size() const = 0;
  /// Scalars per trajectory and step that the forward step writes to the tape for the backward step.
  virtual Eigen::Index tape_rows() const = 0;
  /// Names of the Jacobian coefficients StepStats reports (gated cells, e.g. "z", "r", ...; the first is the gate
  /// that carries memory); none by default.
  virtual std::vector<std::string> coefficient_names() const { return {}; }

  /// One forward step of B trajectories: s_next = F(s_prev, x_t), and tape (tape_rows() x B, column-major)
  /// receives what backward() and tangent() need at this step. `stats` (null in the burn-in) receives the
  /// step's derivative statistics. Returns false when a state became non-finite; s_prev is left intact.
  virtual bool forward(const Mat& s_prev, const StepInput<Scalar>& x, Mat& s_next, Scalar* tape,
                       StepStats* stats) = 0;

  /// BPTT through step t: g_prev = J_t^T (g diag(scale)), with `tape` the block forward() wrote at step t and
  /// scale[j] a factor for trajectory j (the renormalisation 1 / ||g_t^(j)||). g may be overwritten.
  virtual void backward(const Scalar* tape, Mat& g, const Scalar* scale, Mat& g_prev) = 0;

  /// Tangent dynamics through step t: q <- J_t q, with q holding k tangent vectors per trajectory (S x (B k),
  /// trajectory b's in columns [b k, (b + 1) k)).
  virtual void tangent(const Scalar* tape, Mat& q, Eigen::Index k) = 0;
};

/// The rules of thumb of a gated cell's per-step factor, from the statistics of its Jacobian coefficients over
/// the forward pass (`mean`, `rms`, `max_abs`, in the order of coefficient_names()):
///   predictor      rho of the mean Jacobian (every gate and slope replaced by its mean; the analogue of
///                  rho(W) E|f'|);
///   predictor_rms  its mean-field RMS version: sqrt of the growth of E||J q||^2 for random W blocks
///                  (coefficients by their RMS, W blocks by their spectral radii, cross terms averaged out);
///   bound          the triangle-inequality bound on ||J_t||_2 with every coefficient at its largest |value|.
struct CellPredictors {
  double predictor = 0.0;
  double predictor_rms = 0.0;
  double bound = 0.0;
};
CellPredictors gated_predictors(const Model& model, const std::vector<double>& mean, const std::vector<double>& rms,
                                const std::vector<double>& max_abs);

/// The cell of model.cell for one pass over `columns` state columns (B for the forward and backward passes,
/// B k for the tangent pass). Throws std::invalid_argument when the model's shapes do not fit the cell. The cell
/// may use the model's weights in place: the model must outlive it.
template <class Scalar>
std::unique_ptr<Cell<Scalar>> make_cell(const Model& model, Pass pass, Eigen::Index columns);

}  // namespace gradflow
