#include "gradflow/cell.hpp"

#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "gradflow/random.hpp"

namespace gradflow {

namespace {

/// The base of a cell's W (see RecurrentBase): random kinds at radius 1 from the (seed, family, replicate)
/// stream, file matrices as read; built and solved here, or taken from `cache`.
std::shared_ptr<const RecurrentBase> recurrent_base(const Config& config, std::uint64_t family,
                                                    std::uint64_t replicate, RecurrentCache* cache) {
  const auto& sc = config.spectrum;
  RecurrentKey key;
  key.kind = static_cast<int>(sc.kind);
  key.n = config.network.units;
  std::function<RecurrentBase()> build;
  if (sc.kind == SpectrumKind::file) {
    key.n = sc.matrix->rows();
    key.matrix = sc.matrix.get();
    build = [&sc] { return RecurrentBase{*sc.matrix, analyse_spectrum(*sc.matrix)}; };
  } else {
    key.seed = derive_seed(config.seed, family, replicate, Stream::recurrent);
    build = [&sc, &key] {
      Rng rng(key.seed);
      RecurrentBase b;
      b.w = random_recurrent(sc.kind, key.n, 1.0, rng);
      b.info.rho = 1.0;  // exact by construction (random_recurrent rescales with a converged solve)
      if (sc.kind == SpectrumKind::orthogonal) {
        b.info.spectral_norm = 1.0;  // Q orthogonal: every |lambda| and every singular value is 1
      } else {
        b.info.spectral_norm = spectral_norm(b.w, &b.info.norm_status);
        if (b.info.norm_status != SolveStatus::converged) b.info.message = "||W||_2: Lanczos fell back to a dense SVD";
      }
      return b;
    };
  }
  if (cache) return cache->get(key, build);
  return std::make_shared<const RecurrentBase>(build());
}

}  // namespace

Eigen::MatrixXd build_recurrent(const Config& config, std::uint64_t family, std::uint64_t replicate,
                                SpectralInfo* info, RecurrentCache* cache) {
  const auto& sc = config.spectrum;
  const std::shared_ptr<const RecurrentBase> base = recurrent_base(config, family, replicate, cache);
  SpectralInfo si = base->info;
  double radius = 1.0, factor = 1.0;
  if (sc.kind == SpectrumKind::file) {
    if (sc.radius) {
      radius = *sc.radius;
      if (radius > 0.0) {
        if (si.rho_status == SolveStatus::not_converged || !std::isfinite(si.rho))
          throw std::runtime_error("rescale_to_radius: rho(W) could not be computed (" + si.message + ")");
        if (si.rho == 0.0)
          throw std::invalid_argument("rescale_to_radius: rho(W) = 0 (W is nilpotent), so W cannot be rescaled "
                                      "to radius " + std::to_string(radius) + " > 0");
        factor = radius / si.rho;
      } else {
        factor = 0.0;
      }
    }
  } else {
    radius = sc.radius.value_or(1.0);
    factor = radius;  // the base has rho = 1
  }
  if (info) {
    // Scaling by factor >= 0 scales every eigenvalue and singular value: no new solve.
    si.rho = (sc.kind == SpectrumKind::file && !sc.radius) ? si.rho : radius;
    si.spectral_norm *= factor;
    *info = si;
  }
  if (factor == 1.0) return base->w;
  return factor * base->w;
}

Model build_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info,
                  std::uint64_t family, RecurrentCache* cache) {
  Model model;
  model.w = build_recurrent(config, family, replicate, info, cache);
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

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Forward pass, then BPTT and the Lyapunov spectrum over the one tape, at one precision, each timed; the
/// tape is freed before returning.
template <class Scalar>
void run_passes(const Config& config, const Model& model, const Drive& drive, std::uint64_t tangent_seed,
                CellResult& result) {
  auto t0 = Clock::now();
  const Tape<Scalar> tape = forward_pass<Scalar>(model, drive);
  result.seconds_forward = since(t0);
  t0 = Clock::now();
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
  result.seconds_backward = since(t0);
}

}  // namespace

CellResult simulate_cell(const Config& config, std::uint64_t cell, std::uint64_t replicate) {
  return simulate_cell(config, cell, replicate, cell, nullptr);
}

CellResult simulate_cell(const Config& config, std::uint64_t cell, std::uint64_t replicate, std::uint64_t family,
                         RecurrentCache* cache) {
  const auto start = Clock::now();
  CellResult result;
  const Model model = build_model(config, cell, replicate, &result.spectrum, family, cache);
  result.seconds_spectrum = since(start);
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
