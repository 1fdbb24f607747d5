#pragma once
// The parameters of one unrolled network (Model) and what drives it (Drive), assembled from a cell's Config
// and its random streams.

#include <cstdint>
#include <memory>
#include <vector>

#include <Eigen/Core>

#include "gradflow/model/config.hpp"
#include "gradflow/model/recurrent_cache.hpp"
#include "gradflow/model/sparse.hpp"
#include "gradflow/model/spectrum.hpp"
#include "gradflow/numerics/activation.hpp"

namespace gradflow {

/// The parameters of one unrolled network. Gated cells stack their G blocks (gate_blocks(cell)) in the rows of
/// w, u, b and b_recurrent in PyTorch's order (gru r, z, n; lstm i, f, g, o).
struct Model {
  Eigen::MatrixXd w;  // recurrent weights W, N x N; gated: G N x N (empty when w_sparse holds W)
  std::shared_ptr<const SparseMatrix> w_sparse;  // W in sparse storage; null: W is `w` (vanilla family only)
  Eigen::MatrixXd u;  // input weights U, N x dim or G N x dim (0 columns: no input); minimalrnn: W_x
  Eigen::VectorXd b;  // bias, N or G N (empty: zero); gated: the input side (torch's bias_ih; minimalrnn b_z)
  Eigen::VectorXd b_recurrent;  // gated: the recurrent side, G N (torch's bias_hh; minimalrnn b_u); empty: zero
  Eigen::MatrixXd w_gate_input;  // minimalrnn: U_z, N x N, the gate's weights on the input map z
  // Gated cells drawn by gradflow: rho and ||.||_2 of each N x N block of w, known from its construction (the
  // exact radius, the base's norm times the scale factor); empty (imported weights): computed when needed.
  std::vector<double> block_rho, block_norm;
  Activation activation;
  CellKind cell = CellKind::vanilla;
  double leak = 1.0;  // leak rate of CellKind::leaky, in (0, 1]

  /// (c, s) of the cell: J_t = c I + s diag(f'(a_t)) W.
  double carry() const { return cell == CellKind::vanilla ? 0.0 : cell == CellKind::residual ? 1.0 : 1.0 - leak; }
  double drive_scale() const { return cell == CellKind::leaky ? leak : 1.0; }
  /// N, whichever storage holds W.
  Eigen::Index units() const { return w_sparse ? w_sparse->rows() : w.cols(); }
};

/// What the B trajectories are driven with and how they are seeded.
struct Drive {
  Eigen::Index steps = 400;    // T, backpropagated steps
  Eigen::Index burn_in = 0;    // forward steps before t = 0, not backpropagated
  Eigen::MatrixXd h0;          // N x B state before the burn-in
  Eigen::MatrixXd c0;          // lstm: N x B cell state before the burn-in (empty: zero)
  std::uint64_t input_seed = 0;  // x_t ~ N(0, I), drawn per step from this stream
  /// Fixed inputs instead: row s - 1 is x at forward step s (s = 1..burn_in + steps), shared by the B
  /// trajectories; (burn_in + steps) x dim with dim = U's columns. Null: the random stream above.
  std::shared_ptr<const Eigen::MatrixXd> inputs;
  LossKind loss = LossKind::random;
  std::uint64_t loss_seed = 0;   // stream of the random unit seeds g_T
};

/// W, U, b and the activation of one cell; U_ij ~ N(0, input.std^2 / input.dim), b_i ~ N(mean, std^2).
/// W as build_recurrent_matrix(config, family, replicate, info, cache) (model/recurrent.hpp); family defaults
/// to the cell.
Model build_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info,
                  std::uint64_t family, RecurrentCache* cache = nullptr);
inline Model build_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info) {
  return build_model(config, cell, replicate, info, cell, nullptr);
}

/// build_model() for gru, lstm and minimalrnn: the candidate block of W from the spectrum at spectrum.radius
/// (W's stream: the same draw as the vanilla cell's W), each gate block from the spectrum at gates.radius (a
/// stream each); U with input.std / sqrt(dim) for every block; the candidate block's bias from [bias], the memory
/// gate's gates.bias, the other gates' 0. minimalrnn: U_h from the spectrum, W_x = U, b_z from [bias], b_u =
/// gates.bias, U_z ~ N(0, 1/N). With [import] torch, every block as torch saved it.
Model build_gated_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info,
                        std::uint64_t family, RecurrentCache* cache = nullptr);

/// h0, input and loss streams of one cell (and c_0 of an lstm from init.cell_file).
Drive build_drive(const Config& config, std::uint64_t cell, std::uint64_t replicate);

}  // namespace gradflow
