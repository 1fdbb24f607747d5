#pragma once

#include <cstdint>

#include "gradflow/config.hpp"
#include "gradflow/engine.hpp"
#include "gradflow/lyapunov.hpp"
#include "gradflow/meanfield.hpp"
#include "gradflow/metrics.hpp"
#include "gradflow/spectrum.hpp"

namespace gradflow {

/// Everything one cell x replicate produces.
struct CellResult {
  SpectralInfo spectrum;
  GradientTrace trace;
  CellMetrics metrics;
  double seconds = 0.0;  // wall time of build + analysis + forward + BPTT
  double gain_rms = 0.0;        // ||W||_F / sqrt(N) of the W built
  MeanField mean_field;         // mean-field prediction at gain_rms (not_applicable for residual/leaky cells)
  LyapunovResult lyapunov;      // top analysis.lyapunov exponents (empty when 0)
};

/// W of a cell: random_recurrent() from the (seed, cell, replicate) recurrent stream, or the file matrix
/// (rescaled when a radius is given). `info` receives rho and ||W||_2; for random kinds rho is the radius
/// the matrix was built to, for orthogonal kinds ||W||_2 = radius exactly, otherwise Spectra computes them.
Eigen::MatrixXd build_recurrent(const Config& config, std::uint64_t cell, std::uint64_t replicate,
                                SpectralInfo* info = nullptr);

/// W, U, b and the activation of one cell; U_ij ~ N(0, input.std^2 / input.dim), b_i ~ N(mean, std^2).
Model build_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info);

/// h0, input and loss streams of one cell.
Drive build_drive(const Config& config, std::uint64_t cell, std::uint64_t replicate);

/// Mean-field prediction of a cell's network with gain sigma_w = `gain`: its activation, input std (0 for
/// input.kind = "none") and bias; status not_applicable for residual and leaky cells, whose state is not
/// f(a) of a Gaussian a.
MeanField cell_mean_field(const Config& config, double gain);

/// Builds the model and drive, runs forward + BPTT at the configured precision, computes the metrics,
/// gain_rms, the mean-field prediction, and the Lyapunov exponents over the same tape when
/// analysis.lyapunov > 0.
CellResult simulate_cell(const Config& config, std::uint64_t cell, std::uint64_t replicate);

}  // namespace gradflow
