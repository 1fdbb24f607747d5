#include "gradflow/model/network.hpp"

#include <cmath>
#include <stdexcept>

#include "gradflow/model/recurrent.hpp"
#include "gradflow/numerics/random.hpp"

namespace gradflow {

namespace {

/// Model of a scenario's [import] torch folder: W, U and b of every block as torch saved them (vanilla: the
/// two biases summed, as nn.RNN adds them).
Model imported_model(const Config& config) {
  const TorchWeights& t = *config.import.weights;
  Model model;
  model.w = t.weight_hh;
  model.u = t.weight_ih;
  if (config.input.kind == InputKind::none) model.u.resize(t.weight_ih.rows(), 0);
  if (is_gated(config.network.cell)) {
    model.b = t.bias_ih;
    model.b_recurrent = t.bias_hh;
  } else {
    model.b = t.bias_ih + t.bias_hh;
  }
  return model;
}

/// The stacked recurrent weights of a gated cell: block k from the spectrum kind at spectrum.radius (the
/// candidate block, W's own stream, so its draw is the vanilla cell's W) or gates.radius (gate blocks, a
/// stream each). `info` receives the candidate block's spectral data; `block_rho` and `block_norm` every block's
/// rho and ||.||_2 from its construction.
Eigen::MatrixXd gated_recurrent(const Config& config, std::uint64_t family, std::uint64_t replicate,
                                SpectralInfo* info, RecurrentCache* cache, std::vector<double>* block_rho,
                                std::vector<double>* block_norm) {
  const CellKind kind = config.network.cell;
  const Eigen::Index n = config.network.units;
  const int blocks = gate_blocks(kind);
  Eigen::MatrixXd w(blocks * n, n);
  for (int k = 0; k < blocks; ++k) {
    const bool candidate = k == candidate_block(kind) && kind != CellKind::minimalrnn;
    SpectrumConfig spectrum = config.spectrum;
    if (!candidate && config.gates.radius) spectrum.radius = config.gates.radius;
    // minimalrnn's only recurrent block U_h is its gate's: gates.radius when given, else spectrum.radius.
    const std::uint64_t seed =
        k == candidate_block(kind)
            ? recurrent_seed(config.seed, family, replicate)
            : derive_seed(config.seed, family, replicate, static_cast<Stream>(std::uint64_t(Stream::gate_recurrent) + k));
    SpectralInfo block_info;
    RecurrentMatrix block = build_recurrent(spectrum, n, seed, &block_info, cache);
    if (block.is_sparse()) throw std::invalid_argument("network.cell = \"" + to_string(kind) + "\": needs dense W");
    w.middleRows(k * n, n) = block.dense;
    block_rho->push_back(block_info.rho);
    block_norm->push_back(block_info.spectral_norm);
    if (k == candidate_block(kind) && info) *info = block_info;
  }
  return w;
}

}  // namespace

Model build_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info,
                  std::uint64_t family, RecurrentCache* cache) {
  if (config.import.weights) {
    Model model = imported_model(config);
    if (info) *info = analyse_spectrum(Eigen::MatrixXd(model.w.middleRows(candidate_block(config.network.cell) *
                                                                              model.w.cols(), model.w.cols())));
    model.activation = config.network.make_activation();
    model.cell = config.network.cell;
    model.leak = config.network.leak;
    return model;
  }
  if (is_gated(config.network.cell)) return build_gated_model(config, cell, replicate, info, family, cache);
  Model model;
  RecurrentMatrix w = build_recurrent_matrix(config, family, replicate, info, cache);
  if (w.is_sparse()) model.w_sparse = std::move(w.sparse);
  else model.w = std::move(w.dense);
  const Eigen::Index n = config.network.units;
  const auto& in = config.input;
  const Eigen::Index dim = in.dim;  // the scenario layer checks that input files have dim columns
  if (in.kind != InputKind::none && in.matrix) {
    model.u = *in.matrix;
  } else if (in.kind != InputKind::none && in.std > 0.0) {
    Rng rng(derive_seed(config.seed, cell, replicate, Stream::input_weights));
    model.u = gaussian_matrix(n, dim, in.std / std::sqrt(double(dim)), rng);
  } else if (in.kind == InputKind::file) {
    model.u = Eigen::MatrixXd::Zero(n, dim);  // std = 0: the sequence is read but drives nothing
  } else {
    model.u.resize(n, 0);
  }
  if (config.bias.vector) {
    model.b = Eigen::Map<const Eigen::VectorXd>(config.bias.vector->data(), config.bias.vector->size());
  } else if (config.bias.mean != 0.0 || config.bias.std != 0.0) {
    Rng rng(derive_seed(config.seed, cell, replicate, Stream::bias));
    model.b = gaussian_matrix(n, 1, config.bias.std, rng).col(0).array() + config.bias.mean;
  }
  model.activation = config.network.make_activation();
  model.cell = config.network.cell;
  model.leak = config.network.leak;
  return model;
}

Model build_gated_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info,
                        std::uint64_t family, RecurrentCache* cache) {
  const CellKind kind = config.network.cell;
  const Eigen::Index n = config.network.units;
  const bool minimal = kind == CellKind::minimalrnn;
  const Eigen::Index rows = minimal ? n : gate_blocks(kind) * n;  // rows of U and b (input side)
  Model model;
  model.w = gated_recurrent(config, family, replicate, info, cache, &model.block_rho, &model.block_norm);
  const auto& in = config.input;
  const Eigen::Index dim = in.dim;
  if (in.kind != InputKind::none && in.matrix) {
    model.u = *in.matrix;
  } else if (in.kind != InputKind::none && in.std > 0.0) {
    // Every block's input current (U x_t)_i has std input.std.
    Rng rng(derive_seed(config.seed, cell, replicate, Stream::input_weights));
    model.u = gaussian_matrix(rows, dim, in.std / std::sqrt(double(dim)), rng);
  } else {
    model.u = Eigen::MatrixXd::Zero(rows, in.kind == InputKind::none ? 0 : dim);
  }
  // The candidate block's bias from [bias]; the memory gate's is gates.bias; the other gates' 0.
  Eigen::VectorXd candidate_bias = Eigen::VectorXd::Zero(n);
  if (config.bias.vector) {
    candidate_bias = Eigen::Map<const Eigen::VectorXd>(config.bias.vector->data(), config.bias.vector->size());
  } else if (config.bias.mean != 0.0 || config.bias.std != 0.0) {
    Rng rng(derive_seed(config.seed, cell, replicate, Stream::bias));
    candidate_bias = gaussian_matrix(n, 1, config.bias.std, rng).col(0).array() + config.bias.mean;
  }
  if (minimal) {
    model.b = candidate_bias;  // b_z of the input map
    model.b_recurrent = Eigen::VectorXd::Constant(n, config.gates.bias);  // b_u
    Rng rng(derive_seed(config.seed, cell, replicate, Stream::gate_inputs));
    model.w_gate_input = gaussian_matrix(n, n, 1.0 / std::sqrt(double(n)), rng);  // U_z ~ N(0, 1/N)
  } else {
    model.b = Eigen::VectorXd::Zero(rows);
    model.b.segment(candidate_block(kind) * n, n) = candidate_bias;
    model.b.segment(memory_block(kind) * n, n).setConstant(config.gates.bias);
    model.b_recurrent = Eigen::VectorXd::Zero(rows);
  }
  model.activation = config.network.make_activation();
  model.cell = kind;
  model.leak = config.network.leak;
  return model;
}

Drive build_drive(const Config& config, std::uint64_t cell, std::uint64_t replicate) {
  Drive drive;
  const Eigen::Index n = config.network.units, batch = config.network.batch;
  drive.steps = config.network.steps;
  drive.burn_in = config.analysis.burn_in;
  if (config.init.state == InitState::file) {
    if (!config.init.matrix) throw std::invalid_argument("init.state = \"file\": h_0 was not loaded");
    const Eigen::MatrixXd& h0 = *config.init.matrix;
    drive.h0 = h0.cols() == batch ? h0 : h0.col(0).replicate(1, batch);  // a single column is shared
  } else if (config.init.state == InitState::gaussian) {
    Rng rng(derive_seed(config.seed, cell, replicate, Stream::init));
    drive.h0 = gaussian_matrix(n, batch, config.init.std, rng);
  } else {
    drive.h0 = Eigen::MatrixXd::Zero(n, batch);
  }
  if (const auto& c0 = config.init.cell_matrix; c0 && config.network.cell == CellKind::lstm)
    drive.c0 = c0->cols() == batch ? *c0 : c0->col(0).replicate(1, batch);
  drive.input_seed = derive_seed(config.seed, cell, replicate, Stream::input);
  if (config.input.kind == InputKind::file) drive.inputs = config.input.sequence;
  drive.loss = config.loss.kind;
  drive.loss_seed = derive_seed(config.seed, cell, replicate, Stream::loss);
  return drive;
}

}  // namespace gradflow
