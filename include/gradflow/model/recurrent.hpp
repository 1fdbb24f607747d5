#pragma once
// The one home of the recurrent matrix W: every way of building it (random kinds, structured ensembles,
// files, dense or sparse storage, the exact-radius rescale, the radius-family cache) is behind
// build_recurrent().

#include <cstdint>

#include <Eigen/Core>

#include "gradflow/model/config.hpp"
#include "gradflow/model/recurrent_cache.hpp"
#include "gradflow/model/sparse.hpp"
#include "gradflow/model/spectrum.hpp"
#include "gradflow/numerics/random.hpp"

namespace gradflow {

/// W of `units` units as `spectrum` describes it, drawn from the random stream seeded by `stream_seed`,
/// in the storage spectrum.storage asks for (choose_storage() for "auto", with the nonzeros of the built W),
/// with rho(W) and ||W||_2 in `info`.
///
/// Dense ginibre, orthogonal, symmetric and file matrices take the radius-family path: random kinds are
/// radius * B with B = random_recurrent(kind, N, 1) drawn from the stream, so that cells whose W differs only
/// in spectrum.radius (same stream: see Scenario::recurrent_family) rescale one base matrix. Files: the matrix,
/// times radius / rho(matrix) when a radius is given. rho is the radius (exact by construction), ||W||_2 the
/// base's (Spectra, solved once per base) times the scale. With a `cache`, bases are shared between calls
/// instead of rebuilt and re-solved.
///
/// The other kinds (sparse, nonnormal, chain, dale) and sparse storage are drawn at the requested radius: rho
/// is exact by construction for orthogonal, nonnormal and chain, the radius W was rescaled to with a converged
/// Spectra solve for ginibre, symmetric, sparse and dale (status not_converged when the solve ran out of
/// budget: then W was rescaled by the best estimate), and computed for file matrices; ||W||_2 is exact for
/// orthogonal and chain, computed otherwise. For dale, `info` also receives Rajan & Abbott's bulk radius and
/// outlier at the built scale.
RecurrentMatrix build_recurrent(const SpectrumConfig& spectrum, Eigen::Index units, std::uint64_t stream_seed,
                                SpectralInfo* info = nullptr, RecurrentCache* cache = nullptr);

/// The seed of W's stream for one cell: (run seed, family, replicate), Stream::recurrent.
inline std::uint64_t recurrent_seed(std::uint64_t run_seed, std::uint64_t family, std::uint64_t replicate) {
  return derive_seed(run_seed, family, replicate, Stream::recurrent);
}

/// build_recurrent() for a cell's config: its spectrum and units, the stream of (config.seed, family, replicate).
inline RecurrentMatrix build_recurrent_matrix(const Config& config, std::uint64_t family, std::uint64_t replicate,
                                              SpectralInfo* info = nullptr, RecurrentCache* cache = nullptr) {
  return build_recurrent(config.spectrum, config.network.units, recurrent_seed(config.seed, family, replicate), info,
                         cache);
}

/// rho(W) and ||W||_2 of a built W, as `gradflow spectrum` reports them: measured (analyse_spectrum), except
/// for sparse W with N > kSparseDenseFallbackMax, where `built` (the construction's own solves: rho before
/// the rescale, ||W||_2 after it, the same computations, minutes at N = 1e5) is reused and the message says
/// so. Dale's bulk radius and outlier always come from `built`.
SpectralInfo measured_spectrum(const RecurrentMatrix& w, const SpectralInfo& built);

/// The spectral radius W was built to: spectrum.radius, or when unset 0 for chain, `measured_rho` for file
/// (the matrix as read) and 1 for the other kinds.
double target_radius(const SpectrumConfig& spectrum, double measured_rho);

}  // namespace gradflow
