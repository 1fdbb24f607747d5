#include "gradflow/cell.hpp"

#include <chrono>

#include "gradflow/random.hpp"

namespace gradflow {

Eigen::MatrixXd build_recurrent(const Config& config, std::uint64_t cell, std::uint64_t replicate,
                                SpectralInfo* info) {
  const auto& sc = config.spectrum;
  Eigen::MatrixXd w;
  SpectralInfo si;
  if (sc.kind == SpectrumKind::file) {
    w = sc.radius ? rescale_to_radius(*sc.matrix, *sc.radius) : *sc.matrix;
    si = analyse_spectrum(w);
  } else {
    const double radius = sc.radius.value_or(1.0);
    Rng rng(derive_seed(config.seed, cell, replicate, Stream::recurrent));
    w = random_recurrent(sc.kind, config.network.units, radius, rng);
    if (sc.kind == SpectrumKind::orthogonal) {
      si.rho = radius;  // radius * Q with Q orthogonal: every |lambda| and every singular value is radius
      si.spectral_norm = radius;
    } else {
      si.rho = radius;  // exact by construction (random_recurrent rescales with a converged solve)
      si.spectral_norm = spectral_norm(w, &si.norm_status);
      if (si.norm_status != SolveStatus::converged) si.message = "||W||_2: Lanczos fell back to a dense SVD";
    }
  }
  if (info) *info = si;
  return w;
}

Model build_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info) {
  Model model;
  model.w = build_recurrent(config, cell, replicate, info);
  const Eigen::Index n = config.network.units;
  if (config.input.kind == InputKind::gaussian && config.input.std > 0.0) {
    Rng rng(derive_seed(config.seed, cell, replicate, Stream::input_weights));
    model.u = gaussian_matrix(n, config.input.dim, config.input.std / std::sqrt(double(config.input.dim)), rng);
  } else {
    model.u.resize(n, 0);
  }
  if (config.bias.mean != 0.0 || config.bias.std != 0.0) {
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
  if (config.init.state == InitState::gaussian) {
    Rng rng(derive_seed(config.seed, cell, replicate, Stream::init));
    drive.h0 = gaussian_matrix(n, batch, config.init.std, rng);
  } else {
    drive.h0 = Eigen::MatrixXd::Zero(n, batch);
  }
  drive.input_seed = derive_seed(config.seed, cell, replicate, Stream::input);
  drive.loss = config.loss.kind;
  drive.loss_seed = derive_seed(config.seed, cell, replicate, Stream::loss);
  return drive;
}

MeanField cell_mean_field(const Config& config, double gain) {
  if (config.network.cell != CellKind::vanilla) {
    MeanField mf;
    mf.status = MeanFieldStatus::not_applicable;
    mf.message = "mean-field theory of h = f(a) only: not defined for the " + to_string(config.network.cell) +
                 " cell";
    return mf;
  }
  MeanFieldParams p;
  p.activation = config.network.make_activation();
  p.gain = gain;
  p.input_std = config.input.kind == InputKind::gaussian ? config.input.std : 0.0;
  p.bias_mean = config.bias.mean;
  p.bias_std = config.bias.std;
  p.h0_sq = config.init.state == InitState::gaussian ? config.init.std * config.init.std : 0.0;
  return mean_field(p);
}

namespace {

/// Forward pass, BPTT and the Lyapunov spectrum over the one tape, at one precision.
template <class Scalar>
void run_passes(const Config& config, const Model& model, const Drive& drive, std::uint64_t tangent_seed,
                CellResult& result) {
  const Tape<Scalar> tape = forward_pass<Scalar>(model, drive);
  result.trace = backward_pass<Scalar>(model, drive, tape);
  const auto& a = config.analysis;
  if (a.lyapunov > 0) {
    LyapunovOptions opt;
    opt.count = a.lyapunov;
    opt.burn_in = a.lyapunov_burn_in_for(config.network.steps);
    opt.interval = a.lyapunov_interval;
    opt.seed = tangent_seed;
    result.lyapunov = lyapunov_spectrum<Scalar>(model, tape, opt);
  }
}

}  // namespace

CellResult simulate_cell(const Config& config, std::uint64_t cell, std::uint64_t replicate) {
  const auto start = std::chrono::steady_clock::now();
  CellResult result;
  const Model model = build_model(config, cell, replicate, &result.spectrum);
  const Drive drive = build_drive(config, cell, replicate);
  const std::uint64_t tangent_seed = derive_seed(config.seed, cell, replicate, Stream::tangent);
  if (config.network.precision == Precision::float32)
    run_passes<float>(config, model, drive, tangent_seed, result);
  else
    run_passes<double>(config, model, drive, tangent_seed, result);
  result.metrics = compute_metrics(result.spectrum, model.activation, result.trace, config.analysis);
  result.gain_rms = gain_rms(model.w);
  result.mean_field = cell_mean_field(config, result.gain_rms);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace gradflow
