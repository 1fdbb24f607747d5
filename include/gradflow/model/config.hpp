#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <Eigen/Core>

#include "gradflow/numerics/activation.hpp"
#include "gradflow/model/ensembles.hpp"
#include "gradflow/model/sparse.hpp"
#include "gradflow/model/spectrum.hpp"

namespace gradflow {

/// The recurrent cell. vanilla, residual and leaky: h_t = c h_{t-1} + s f(a_t) with a_t = W h_{t-1} + U x_t + b,
/// so the step Jacobian is J_t = dh_t/dh_{t-1} = c I + s diag(f'(a_t)) W and BPTT is
/// g_{t-1} = c g_t + s W^T (f'(a_t) .* g_t). gru and lstm follow torch.nn.GRU / torch.nn.LSTM exactly (gate order
/// r, z, n and i, f, g, o; f is the candidate nonlinearity, gates are sigmoids); minimalrnn is Chen, Pennington &
/// Schoenholz 2018 (README, "Gated cells").
enum class CellKind {
  vanilla,    // c = 0, s = 1:        h_t = f(a_t)
  residual,   // c = 1, s = 1:        h_t = h_{t-1} + f(a_t)
  leaky,      // c = 1 - leak, s = leak: h_t = (1 - leak) h_{t-1} + leak f(a_t)
  gru,        // r, z, n; n = f(W_in x + b_in + r (W_hn h + b_hn)); h' = (1 - z) n + z h
  lstm,       // i, f, g, o; c' = f c + i g; h' = o f(c'); state (h, c)
  minimalrnn  // z = f(W_x x + b_z); u = sigmoid(U_h h + U_z z + b_u); h' = u h + (1 - u) z
};
std::string to_string(CellKind k);
CellKind parse_cell_kind(const std::string& name);
/// Whether the cell has gates (gru, lstm, minimalrnn).
bool is_gated(CellKind k);
/// G, the blocks stacked in the cell's recurrent and input weights (rows G N): 3 for gru, 4 for lstm, 1 otherwise.
int gate_blocks(CellKind k);
/// R, the scalars per unit, trajectory and step that the cell's forward step writes to the tape: 1 (f'(a_t)) for
/// the vanilla, residual and leaky cells, 4 for gru, 6 for lstm, 2 for minimalrnn. The cells' tape_rows() is R N,
/// and the memory estimate counts R N B T scalars.
int tape_rows_per_unit(CellKind k);
/// The block of the stacked weights that spectrum.radius sets (gru n = 2, lstm g = 2, 0 otherwise); the other
/// blocks are gate blocks (gates.radius).
int candidate_block(CellKind k);
/// The block of the gate that carries memory (gru z = 1, lstm f = 1, minimalrnn u = 0); -1 without gates.
int memory_block(CellKind k);
/// S / N: 2 for lstm (h, c), 1 otherwise.
int state_vectors(CellKind k);

enum class Precision { float32, float64 };  // "float" | "double"
enum class InputKind { none, gaussian, file };
enum class InitState { zero, gaussian, file };
enum class LossKind { final_state, random };

std::string to_string(Precision p);
std::string to_string(InputKind k);
std::string to_string(InitState s);
std::string to_string(LossKind k);
/// Inverses of to_string; each throws std::invalid_argument listing the accepted names.
Precision parse_precision(const std::string& name);
InputKind parse_input_kind(const std::string& name);
InitState parse_init_state(const std::string& name);
LossKind parse_loss_kind(const std::string& name);

// Plain configuration structs: defaults in place. The scenario layer (scenario.hpp) fills them from TOML
// and documents every key; the numerical core reads them and knows nothing of files.

struct NetworkConfig {
  Eigen::Index units = 256;                 // N, hidden units
  Eigen::Index steps = 400;                 // T, backpropagated time steps
  Eigen::Index batch = 8;                   // B, independent trajectories per cell
  ActivationKind activation = ActivationKind::tanh;
  std::optional<double> alpha;              // leaky_relu slope / elu scale; unset: default_alpha(activation)
  double beta = 1.0;                        // softplus / swish sharpness
  Precision precision = Precision::float64; // scalar type of the forward and backward pass
  CellKind cell = CellKind::vanilla;        // vanilla | residual | leaky (see CellKind)
  double leak = 1.0;                        // leak rate a of the leaky cell, 0 < a <= 1

  bool left_slope_at_kink = false;          // network.slope_at_kink: relu / leaky_relu f'(0) = 1 ("right") or 0 / alpha ("left")

  Activation make_activation() const {
    Activation f(activation, alpha ? *alpha : default_alpha(activation), beta);
    f.left_slope_at_kink = left_slope_at_kink;
    return f;
  }
};

struct SpectrumConfig {
  SpectrumKind kind = SpectrumKind::ginibre;
  std::optional<double> radius;  // exact spectral radius of W; unset: 1 (random kinds), as read (file)
  std::string file;              // path of W for kind = "file" (resolved against the scenario's folder)
  std::shared_ptr<const Eigen::MatrixXd> matrix;  // W read from `file` by the scenario layer (dense files)
  std::shared_ptr<const SparseMatrix> sparse_matrix;  // W read from a coordinate .mtx `file` (sparse files)
  SparseOptions sparse;          // kind = "sparse": density p or in_degree K
  double nonnormality = 0.0;     // kind = "nonnormal": s in W = Q (D + s R) Q^T, R_ij ~ N(0, 1/N)
  DaleOptions dale;              // kind = "dale": E/I fractions, means, stds, balance
  StoragePolicy storage = StoragePolicy::automatic;  // dense or sparse W (choose_storage)
};

struct InputConfig {
  InputKind kind = InputKind::gaussian;
  double std = 0.5;        // std of each unit's input current (U x_t)_i: U_ij ~ N(0, std^2 / dim)
  Eigen::Index dim = 16;   // dimension of x_t ~ N(0, I) (kind = "file": the file's columns)
  std::string file;        // kind = "file": x, (burn_in + steps) x dim, row s = x at forward step s + 1
  std::string weights;     // U as a file, N x dim (any kind but none); empty: U drawn as above
  std::shared_ptr<const Eigen::MatrixXd> sequence;  // x read from `file` by the scenario layer
  std::shared_ptr<const Eigen::MatrixXd> matrix;    // U read from `weights`
};

struct BiasConfig {
  double mean = 0.0;  // b_i ~ N(mean, std^2), drawn once per cell
  double std = 0.0;
  std::string file;   // b as a file (N values); replaces the draw
  std::shared_ptr<const Eigen::MatrixXd> vector;  // b read from `file`
};

struct InitConfig {
  InitState state = InitState::zero;
  double std = 1.0;  // h_0 ~ N(0, std^2) per unit and trajectory (state = "gaussian")
  std::string file;  // state = "file": h_0, N (shared by the B trajectories) or N x B
  std::shared_ptr<const Eigen::MatrixXd> matrix;  // h_0 read from `file`
  std::string cell_file;  // lstm: c_0, N or N x B (zero when empty)
  std::shared_ptr<const Eigen::MatrixXd> cell_matrix;  // c_0 read from `cell_file`
};

/// The gate blocks of gru, lstm and minimalrnn.
struct GatesConfig {
  std::optional<double> radius;  // exact spectral radius of every gate block's W; unset: spectrum.radius
  double bias = 0.0;             // bias of the gate that carries memory (gru z, lstm f, minimalrnn u)
};

/// A single-layer torch.nn.RNN / GRU / LSTM's state_dict tensors as numpy.save wrote them.
struct TorchWeights {
  Eigen::MatrixXd weight_ih;  // G N x dim
  Eigen::MatrixXd weight_hh;  // G N x N
  Eigen::VectorXd bias_ih;    // G N
  Eigen::VectorXd bias_hh;    // G N
};

struct ImportConfig {
  std::string torch;  // folder holding weight_ih_l0.npy, weight_hh_l0.npy, bias_ih_l0.npy, bias_hh_l0.npy
  std::shared_ptr<const TorchWeights> weights;  // read from `torch` by the scenario layer
};

struct LossConfig {
  // random: g_T a random unit vector per trajectory (measures the Jacobian product in a generic direction,
  // never zero); final_state: g_T = h_T (L = ||h_T||^2 / 2), exactly zero when h_T = 0.
  LossKind kind = LossKind::random;
};

struct AnalysisConfig {
  Eigen::Index burn_in = 100;     // forward steps run before t = 0 and not backpropagated
  bool series = true;             // write series.csv (per-step log10 ||g_t||)
  double regime_tolerance = 0.01; // critical when |growth_rate - 1| <= tolerance
  double fit_skip = 0.1;          // fraction of lags skipped as transient before the growth fit
  Eigen::Index lyapunov = 0;      // number of Lyapunov exponents (0 = off)
  std::optional<Eigen::Index> lyapunov_burn_in;  // tangent steps not averaged; unset: floor(steps / 10)
  Eigen::Index lyapunov_interval = 1;            // re-orthonormalise the tangent frame every this many steps

  /// The tangent burn-in in effect for `steps` backpropagated steps.
  Eigen::Index lyapunov_burn_in_for(Eigen::Index steps) const {
    return lyapunov_burn_in ? *lyapunov_burn_in : steps / 10;
  }
};

/// One fully resolved cell configuration.
struct Config {
  std::string title = "";
  std::uint64_t seed = 1;  // run seed; every cell and replicate derives its own streams from it
  NetworkConfig network;
  SpectrumConfig spectrum;
  InputConfig input;
  BiasConfig bias;
  InitConfig init;
  LossConfig loss;
  AnalysisConfig analysis;
  GatesConfig gates;
  ImportConfig import;
};

/// Nonzeros W will have, known before building it: N^2 for the dense kinds, p N^2 or K N for sparse, N - 1
/// for chain, counted for file matrices. The storage rule and the memory check use it.
double expected_nonzeros(const Config& config);
/// The storage build_recurrent_matrix() (cell.hpp) uses: choose_storage(spectrum.storage, N, expected_nonzeros).
Storage expected_storage(const Config& config);
/// Bytes one cell needs at most: the tape (N B T scalars, rounded up to 2 MiB), W (dense: 32 N^2 per block,
/// every copy a cell holds at once: W as drawn or read, its cached base, the scaled copy, the packed copy;
/// sparse: 12 bytes per nonzero for W plus as much again for the one extra copy alive at a time: the run's
/// precision in the forward pass, W^T in BPTT, the row arrays while a random W is drawn), U, the N x B state
/// buffers, the fixed inputs and the Lyapunov tangent frames (2 N B analysis.lyapunov scalars).
double cell_memory_bytes(const Config& config);

}  // namespace gradflow
