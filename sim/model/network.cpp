#include "gradflow/model/network.hpp"

#include <cmath>
#include <stdexcept>

#include "gradflow/model/recurrent.hpp"
#include "gradflow/numerics/random.hpp"

namespace gradflow {

Model build_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info,
                  std::uint64_t family, RecurrentCache* cache) {
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
  drive.input_seed = derive_seed(config.seed, cell, replicate, Stream::input);
  if (config.input.kind == InputKind::file) drive.inputs = config.input.sequence;
  drive.loss = config.loss.kind;
  drive.loss_seed = derive_seed(config.seed, cell, replicate, Stream::loss);
  return drive;
}

}  // namespace gradflow
