#pragma once
// One cell x replicate from its Config to its numbers: model -> passes -> analysis.

#include <cstdint>

#include "gradflow/analysis/lyapunov.hpp"
#include "gradflow/analysis/meanfield.hpp"
#include "gradflow/analysis/metrics.hpp"
#include "gradflow/engine/engine.hpp"
#include "gradflow/model/config.hpp"
#include "gradflow/model/network.hpp"
#include "gradflow/model/recurrent_cache.hpp"
#include "gradflow/model/spectrum.hpp"

namespace gradflow {

/// Everything one cell x replicate produces.
struct CellResult {
  SpectralInfo spectrum;
  GradientTrace trace;
  CellMetrics metrics;
  double seconds = 0.0;           // wall time of build + analysis + forward + BPTT + metrics
  double seconds_spectrum = 0.0;  // build_model: W with rho(W) and ||W||_2 (the spectra), U and b
  double seconds_forward = 0.0;   // forward_pass: burn-in + T steps, the tape of f'(a_t)
  double seconds_backward = 0.0;  // backward_pass (BPTT) and the Lyapunov pass over the same tape
  double gain_rms = 0.0;          // ||W||_F / sqrt(N) of the W built
  MeanField mean_field;           // mean-field prediction at gain_rms from the data used (data_mean_field_params;
                                  // not_applicable for residual, leaky, gru and lstm cells)
  LyapunovResult lyapunov;        // top analysis.lyapunov exponents (empty when 0)
  Storage storage = Storage::dense;  // how W was stored
  double nonzeros = 0.0;             // stored nonzeros of W (N^2 for dense random kinds)
};

/// Mean-field prediction of a cell's network with gain sigma_w = `gain` from the scenario's keys alone: its
/// activation, input std (0 for input.kind = "none") and bias (minimalrnn: gates.bias and gate_input_gain 1, the
/// gain of U_z ~ N(0, 1/N)); status not_applicable for residual, leaky, gru and lstm cells, whose state is not
/// f(a) of a Gaussian a. simulate_cell uses data_mean_field_params instead, which equals this for data drawn
/// from the keys (up to U_z's finite-N gain) and measures file data.
MeanField cell_mean_field(const Config& config, double gain);

/// The mean-field parameters of the data a vanilla or minimalrnn cell is actually fed (the scenario's keys where
/// the data is drawn from them, measured where it comes from a file; minimalrnn: gain is U_h's, gate_bias the
/// mean of b_u, gate_input_gain = ||U_z||_F / sqrt(N)):
///   input_std^2 = mean over the steps run and units of (U x_t)_i^2 for a file input sequence;
///                 ||U||_F^2 / N for x_t ~ N(0, I) through a file U; input.std otherwise (0 for no input);
///   bias_mean, bias_std = mean and spread over units of a file bias; bias.mean, bias.std otherwise;
///   h0_sq = mean of h_0^2 over units and trajectories for a file h_0; init.std^2 (gaussian) or 0 otherwise.
/// The theory averages over units: an input current spread unevenly across units (a U with few columns) or a
/// time-varying sequence enters only through its mean square. It assumes W_ij independent: it does not hold
/// for symmetric W (spectrum.kind = "symmetric": off by about a factor 2 in chi below the edge, and a
/// discrete-time symmetric tanh network settles on fixed points or 2-cycles above it).
MeanFieldParams data_mean_field_params(const Config& config, const Model& model, const Drive& drive, double gain);
/// mean_field(p) of such data, or status overflow (no prediction) when a variance of it is not finite in double:
/// gain^2, input_std^2, bias_std^2 or the initial variance (a file's values beyond ~1e154). A cell so fed still
/// reports its measured numbers; mean_field() itself refuses such parameters.
MeanField data_mean_field(const MeanFieldParams& p);

/// Builds the model and drive, runs forward + BPTT at the configured precision, computes the metrics,
/// gain_rms, the mean-field prediction, and the Lyapunov exponents over the same tape when
/// analysis.lyapunov > 0. W's draw comes from `family` (see build_recurrent_matrix), every other stream from the
/// cell.
CellResult simulate_cell(const Config& config, std::uint64_t cell, std::uint64_t replicate, std::uint64_t family,
                         RecurrentCache* cache = nullptr);
/// The same with family = cell and no cache.
CellResult simulate_cell(const Config& config, std::uint64_t cell, std::uint64_t replicate);

}  // namespace gradflow
