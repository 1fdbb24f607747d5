#pragma once

#include <cstdint>

#include "gradflow/config.hpp"
#include "gradflow/engine.hpp"
#include "gradflow/lyapunov.hpp"
#include "gradflow/meanfield.hpp"
#include "gradflow/metrics.hpp"
#include "gradflow/recurrent_cache.hpp"
#include "gradflow/spectrum.hpp"

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
  MeanField mean_field;           // mean-field prediction at gain_rms (not_applicable for residual/leaky cells)
  LyapunovResult lyapunov;        // top analysis.lyapunov exponents (empty when 0)
  Storage storage = Storage::dense;  // how W was stored
  double nonzeros = 0.0;             // stored nonzeros of W (N^2 for dense random kinds)
};

/// W of a cell in the storage spectrum.storage asks for (choose_storage() for "auto", with the nonzeros of
/// the built W).
///
/// Dense ginibre, orthogonal, symmetric and file matrices take the radius-family path: random kinds are
/// radius * B with B = random_recurrent(kind, N, 1) drawn from the (seed, family, replicate) recurrent stream,
/// so that cells of one family (a sweep's cells that differ only in spectrum.radius, see
/// Scenario::recurrent_family; family = cell outside sweeps) rescale one base matrix. Files: the matrix, times
/// radius / rho(matrix) when a radius is given. rho is the radius (exact by construction), ||W||_2 the base's
/// (Spectra, solved once per base) times the scale. With a `cache`, bases are shared between calls instead of
/// rebuilt and re-solved.
///
/// The other kinds (sparse, nonnormal, chain, dale) and sparse storage are drawn from the same (seed, family,
/// replicate) stream at the requested radius: rho is exact by construction for orthogonal, nonnormal and
/// chain, the radius W was rescaled to with a converged Spectra solve for ginibre, symmetric, sparse and dale
/// (status not_converged when the solve ran out of budget: then W was rescaled by the best estimate), and
/// computed for file matrices; ||W||_2 is exact for orthogonal and chain, computed otherwise. For dale,
/// `info` also receives Rajan & Abbott's bulk radius and outlier at the built scale.
RecurrentMatrix build_recurrent_matrix(const Config& config, std::uint64_t family, std::uint64_t replicate,
                                       SpectralInfo* info = nullptr, RecurrentCache* cache = nullptr);

/// rho(W) and ||W||_2 of a built W, as `gradflow spectrum` reports them: measured (analyse_spectrum), except
/// for sparse W with N > kSparseDenseFallbackMax, where `built` (the construction's own solves: rho before
/// the rescale, ||W||_2 after it, the same computations, minutes at N = 1e5) is reused and the message says
/// so. Dale's bulk radius and outlier always come from `built`.
SpectralInfo measured_spectrum(const RecurrentMatrix& w, const SpectralInfo& built);

/// The spectral radius W was built to: spectrum.radius, or when unset 0 for chain, `measured_rho` for file
/// (the matrix as read) and 1 for the other kinds.
double target_radius(const SpectrumConfig& spectrum, double measured_rho);

/// build_recurrent_matrix() as a dense matrix (N^2 doubles whatever the storage).
Eigen::MatrixXd build_recurrent(const Config& config, std::uint64_t family, std::uint64_t replicate,
                                SpectralInfo* info = nullptr, RecurrentCache* cache = nullptr);

/// W, U, b and the activation of one cell; U_ij ~ N(0, input.std^2 / input.dim), b_i ~ N(mean, std^2).
/// W as build_recurrent(config, family, replicate, info, cache); family defaults to the cell.
Model build_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info,
                  std::uint64_t family, RecurrentCache* cache = nullptr);
inline Model build_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info) {
  return build_model(config, cell, replicate, info, cell, nullptr);
}

/// h0, input and loss streams of one cell.
Drive build_drive(const Config& config, std::uint64_t cell, std::uint64_t replicate);

/// Mean-field prediction of a cell's network with gain sigma_w = `gain`: its activation, input std (0 for
/// input.kind = "none") and bias; status not_applicable for residual and leaky cells, whose state is not
/// f(a) of a Gaussian a.
MeanField cell_mean_field(const Config& config, double gain);

/// Builds the model and drive, runs forward + BPTT at the configured precision, computes the metrics,
/// gain_rms, the mean-field prediction, and the Lyapunov exponents over the same tape when
/// analysis.lyapunov > 0. W's draw comes from `family` (see build_recurrent), every other stream from the
/// cell.
CellResult simulate_cell(const Config& config, std::uint64_t cell, std::uint64_t replicate, std::uint64_t family,
                         RecurrentCache* cache = nullptr);
/// The same with family = cell and no cache.
CellResult simulate_cell(const Config& config, std::uint64_t cell, std::uint64_t replicate);

}  // namespace gradflow
