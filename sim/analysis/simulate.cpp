#include "gradflow/analysis/simulate.hpp"

#include <chrono>
#include <cmath>
#include <algorithm>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "gradflow/engine/cell.hpp"
#include "gradflow/numerics/random.hpp"

namespace gradflow {

MeanField cell_mean_field(const Config& config, double gain) {
  MeanFieldParams p;
  p.cell = config.network.cell;  // mean_field: not_applicable for cells other than vanilla and minimalrnn
  p.gate_bias = config.gates.bias;
  p.activation = config.network.make_activation();
  p.gain = gain;
  p.input_std = config.input.kind == InputKind::gaussian ? config.input.std : 0.0;
  p.bias_mean = config.bias.mean;
  p.bias_std = config.bias.std;
  p.h0_sq = config.init.state == InitState::gaussian ? config.init.std * config.init.std : 0.0;
  return mean_field(p);
}

MeanFieldParams data_mean_field_params(const Config& config, const Model& model, const Drive& drive, double gain) {
  MeanFieldParams p;
  p.activation = model.activation;
  p.gain = gain;
  p.cell = model.cell;
  if (model.cell == CellKind::minimalrnn) {
    // b_u of every unit is gates.bias; U_z's gain as drawn (N(0, 1/N) entries: about 1).
    p.gate_bias = model.b_recurrent.size() > 0 ? model.b_recurrent.mean() : 0.0;
    p.gate_input_gain = gain_rms(model.w_gate_input);
  }
  const auto& in = config.input;
  if (in.kind == InputKind::file && drive.inputs && model.u.cols() == drive.inputs->cols()) {
    // A fixed sequence shared by the trajectories: the time average over the steps run of the mean over
    // units of (U x_t)_i^2.
    const Eigen::Index run = std::min<Eigen::Index>(drive.inputs->rows(), drive.burn_in + drive.steps);
    const Eigen::MatrixXd current = drive.inputs->topRows(run) * model.u.transpose();  // run x N
    p.input_std = run > 0 && current.size() > 0 ? std::sqrt(current.squaredNorm() / double(current.size())) : 0.0;
  } else if (in.kind == InputKind::gaussian && in.matrix) {
    // x_t ~ N(0, I) through the file's U: Var (U x)_i = sum_j U_ij^2, averaged over units.
    p.input_std = model.u.rows() > 0 ? std::sqrt(model.u.squaredNorm() / double(model.u.rows())) : 0.0;
  } else {
    p.input_std = in.kind == InputKind::gaussian ? in.std : 0.0;
  }
  if (config.bias.vector && model.b.size() > 0) {
    // The file's bias: its mean and spread across units stand for b_i ~ N(mean, std^2).
    p.bias_mean = model.b.mean();
    p.bias_std = std::sqrt((model.b.array() - p.bias_mean).square().mean());
  } else {
    p.bias_mean = config.bias.mean;
    p.bias_std = config.bias.std;
  }
  if (config.init.state == InitState::file)
    p.h0_sq = drive.h0.size() > 0 ? drive.h0.squaredNorm() / double(drive.h0.size()) : 0.0;
  else
    p.h0_sq = config.init.state == InitState::gaussian ? config.init.std * config.init.std : 0.0;
  return p;
}

MeanField data_mean_field(const MeanFieldParams& p) {
  const auto finite_square = [](double x) { return std::isfinite(x * x); };
  if (finite_square(p.gain) && finite_square(p.input_std) && finite_square(p.bias_std) && std::isfinite(p.bias_mean) &&
      std::isfinite(p.h0_sq) && std::isfinite(p.initial_variance()))
    return mean_field(p);
  MeanField mf;
  mf.status = MeanFieldStatus::overflow;
  mf.message = "the variances of the data used overflow (gain " + std::to_string(p.gain) + ", input std " +
               std::to_string(p.input_std) + ", bias std " + std::to_string(p.bias_std) + ", E[h0^2] " +
               std::to_string(p.h0_sq) + "): no mean-field prediction";
  return mf;
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
  result.storage = model.w_sparse ? Storage::sparse : Storage::dense;
  result.nonzeros = model.w_sparse ? static_cast<double>(model.w_sparse->nonZeros())
                                   : static_cast<double>((model.w.array() != 0.0).count());
  const Drive drive = build_drive(config, cell, replicate);
  const std::uint64_t tangent_seed = derive_seed(config.seed, cell, replicate, Stream::tangent);
  if (config.network.precision == Precision::float32)
    run_passes<float>(config, model, drive, tangent_seed, result);
  else
    run_passes<double>(config, model, drive, tangent_seed, result);
  if (is_gated(model.cell) && !result.trace.coef_mean.empty())
    result.trace.cell_predictors =
        gated_predictors(model, result.trace.coef_mean, result.trace.coef_rms, result.trace.coef_max);
  if (is_gated(model.cell) && !result.trace.coef_mean.empty()) {
    // A gated cell keeps its state over its memory time 1 / (1 - E[memory gate]) (coefficient 0 is the memory
    // gate: gru z, lstm f, minimalrnn u); its regime is judged per that time constant, at most the run's length.
    const double gate = result.trace.coef_mean[0], steps = double(std::max<Eigen::Index>(1, config.network.steps));
    result.trace.time_constant = gate < 1.0 ? std::min(1.0 / (1.0 - gate), steps) : steps;
  }
  result.metrics = compute_metrics(result.spectrum, model.activation, result.trace, config.analysis);
  const Eigen::Index n = model.units();
  result.gain_rms = model.w_sparse ? model.w_sparse->norm() / std::sqrt(double(model.w_sparse->rows()))
                  : is_gated(model.cell) ? gain_rms(Eigen::MatrixXd(model.w.middleRows(candidate_block(model.cell) * n, n)))
                                         : gain_rms(model.w);
  const CellKind kind = config.network.cell;
  result.mean_field = kind == CellKind::vanilla || kind == CellKind::minimalrnn
                          ? data_mean_field(data_mean_field_params(config, model, drive, result.gain_rms))
                          : cell_mean_field(config, result.gain_rms);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace gradflow
