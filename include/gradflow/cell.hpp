#pragma once

#include <cstdint>

#include "gradflow/config.hpp"
#include "gradflow/engine.hpp"
#include "gradflow/metrics.hpp"
#include "gradflow/spectrum.hpp"

namespace gradflow {

/// Everything one cell x replicate produces.
struct CellResult {
  SpectralInfo spectrum;
  GradientTrace trace;
  CellMetrics metrics;
  double seconds = 0.0;  // wall time of build + analysis + forward + BPTT
  Storage storage = Storage::dense;  // how W was stored
  double nonzeros = 0.0;             // stored nonzeros of W (N^2 for dense random kinds)
};

/// W of a cell, drawn from the (seed, cell, replicate) recurrent stream (or the file matrix, rescaled when a
/// radius is given), in the storage spectrum.storage asks for (choose_storage() for "auto", with the nonzeros
/// of the built W). `info` receives rho and ||W||_2: rho is exact by construction for orthogonal, nonnormal
/// and chain, the radius W was rescaled to with a converged Spectra solve for ginibre, symmetric, sparse and
/// dale (status not_converged when the solve ran out of budget: then W was rescaled by the best estimate),
/// and computed for file matrices; ||W||_2 is exact for orthogonal and chain, computed otherwise. For dale,
/// `info` also receives Rajan & Abbott's bulk radius and outlier at the built scale.
RecurrentMatrix build_recurrent_matrix(const Config& config, std::uint64_t cell, std::uint64_t replicate,
                                       SpectralInfo* info = nullptr);

/// build_recurrent_matrix() as a dense matrix (N^2 doubles whatever the storage).
Eigen::MatrixXd build_recurrent(const Config& config, std::uint64_t cell, std::uint64_t replicate,
                                SpectralInfo* info = nullptr);

/// W, U, b and the activation of one cell; U_ij ~ N(0, input.std^2 / input.dim), b_i ~ N(mean, std^2).
Model build_model(const Config& config, std::uint64_t cell, std::uint64_t replicate, SpectralInfo* info);

/// h0, input and loss streams of one cell.
Drive build_drive(const Config& config, std::uint64_t cell, std::uint64_t replicate);

/// Builds the model and drive, runs forward + BPTT at the configured precision, computes the metrics.
CellResult simulate_cell(const Config& config, std::uint64_t cell, std::uint64_t replicate);

}  // namespace gradflow
