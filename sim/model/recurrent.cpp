#include "gradflow/model/recurrent.hpp"

#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "gradflow/model/ensembles.hpp"

namespace gradflow {

namespace {

/// The base of a cell's W (see RecurrentBase): random kinds at radius 1 from the (seed, family, replicate)
/// stream, file matrices as read; built and solved here, or taken from `cache`.
std::shared_ptr<const RecurrentBase> recurrent_base(const SpectrumConfig& sc, Eigen::Index units,
                                                    std::uint64_t stream_seed, RecurrentCache* cache) {
  RecurrentKey key;
  key.kind = static_cast<int>(sc.kind);
  key.n = units;
  std::function<RecurrentBase()> build;
  if (sc.kind == SpectrumKind::file) {
    key.n = sc.matrix->rows();
    key.matrix = sc.matrix.get();
    build = [&sc] { return RecurrentBase{*sc.matrix, analyse_spectrum(*sc.matrix)}; };
  } else {
    key.seed = stream_seed;
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

/// ||W||_2 of a built matrix into `si`, keeping a note when Spectra did not converge.
void measure_norm(const RecurrentMatrix& w, SpectralInfo& si) {
  si.spectral_norm = w.is_sparse() ? spectral_norm(*w.sparse, &si.norm_status) : spectral_norm(w.dense, &si.norm_status);
  if (si.norm_status != SolveStatus::converged) {
    const std::string note = si.norm_status == SolveStatus::fallback ? "||W||_2: Lanczos fell back to a dense SVD"
                                                                     : "||W||_2: Lanczos did not converge";
    si.message += (si.message.empty() ? "" : "; ") + note;
  }
}

/// Eigenvalues of a nilpotent W are computed only to ~sqrt(eps) ||W|| (index 2, e.g. a rank-one u v^T with
/// v . u = 0; eps^(1/k) ||W|| for index k): a rho below this times ||W||_F is zero to working precision.
constexpr double kNilpotentRhoTol = 1.4901161193847656e-08;  // sqrt(2^-52)

/// rho(W0) of a random draw and W0 * radius / rho(W0), recording how rho was obtained. `factor` receives
/// radius / rho(W0) (0 for radius 0). A nilpotent draw (rho(W0) = 0 to working precision) cannot be
/// rescaled: it is returned as drawn with rho = 0 and a note, and `factor` = 1.
template <class Matrix>
Matrix rescaled(const Matrix& w0, double radius, SpectralInfo& si, double* factor) {
  si.rho = radius;
  if (radius == 0.0) {
    *factor = 0.0;
    Matrix zero(w0.rows(), w0.cols());
    zero.setZero();
    return zero;
  }
  std::string note;
  double rho0;
  if constexpr (std::is_same_v<Matrix, SparseMatrix>) rho0 = spectral_radius(w0, &si.rho_status, &note);
  else rho0 = spectral_radius(w0, &si.rho_status);
  if (!std::isfinite(rho0)) throw std::runtime_error("rho(W) of the random draw could not be computed: " + note);
  if (!note.empty()) si.message = "rho: " + note;
  if (rho0 <= kNilpotentRhoTol * w0.norm()) {
    // A draw without a cycle (no nonzero at all at a tiny density; a balanced dale W of one unit or with zero
    // stds) is nilpotent: no factor gives it radius > 0, and radius / rho0 would only blow up rounding. Like
    // any draw it is data: used as drawn, with rho = 0.
    si.rho = 0.0;
    si.message += std::string(si.message.empty() ? "" : "; ") + "the random draw is nilpotent (rho = 0): it cannot " +
                  "be rescaled to spectrum.radius = " + std::to_string(radius) + " and is used as drawn";
    *factor = 1.0;
    return w0;
  }
  *factor = radius / rho0;
  return Matrix(w0 * *factor);
}

/// Whether the radius-family path (a unit-radius base drawn from the family stream, shared through the
/// RecurrentCache) builds this cell's W: dense storage of the kinds it handles.
bool family_path(const SpectrumConfig& sc, Eigen::Index n) {
  switch (sc.kind) {
    case SpectrumKind::ginibre:
    case SpectrumKind::orthogonal:
    case SpectrumKind::symmetric:
      return choose_storage(sc.storage, n, double(n) * double(n)) == Storage::dense;
    case SpectrumKind::file:
      if (sc.sparse_matrix || !sc.matrix) return false;
      return choose_storage(sc.storage, sc.matrix->rows(), static_cast<double>((sc.matrix->array() != 0.0).count())) ==
             Storage::dense;
    default:
      return false;
  }
}

/// The radius-family path: dense W = factor * base.
Eigen::MatrixXd build_family_recurrent(const SpectrumConfig& sc, Eigen::Index units, std::uint64_t stream_seed,
                                       SpectralInfo* info, RecurrentCache* cache) {
  const std::shared_ptr<const RecurrentBase> base = recurrent_base(sc, units, stream_seed, cache);
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

}  // namespace

RecurrentMatrix build_recurrent(const SpectrumConfig& sc, Eigen::Index n, std::uint64_t stream_seed,
                                SpectralInfo* info, RecurrentCache* cache) {
  if (family_path(sc, n)) {
    RecurrentMatrix built;
    built.dense = build_family_recurrent(sc, n, stream_seed, info, cache);
    return built;
  }
  const double radius = sc.radius.value_or(1.0);
  Rng rng(stream_seed);
  SpectralInfo si;
  RecurrentMatrix built;
  auto store = [&](auto&& w, double nonzeros) {
    built = RecurrentMatrix::store(std::forward<decltype(w)>(w), choose_storage(sc.storage, n, nonzeros));
  };

  switch (sc.kind) {
    case SpectrumKind::file: {
      if (sc.sparse_matrix) {
        SparseMatrix w = sc.radius ? rescale_to_radius(*sc.sparse_matrix, *sc.radius) : *sc.sparse_matrix;
        const double nnz = static_cast<double>(w.nonZeros());
        store(std::move(w), nnz);
      } else {
        if (!sc.matrix) throw std::invalid_argument("spectrum.kind = \"file\": the matrix was not loaded");
        Eigen::MatrixXd w = sc.radius ? rescale_to_radius(*sc.matrix, *sc.radius) : *sc.matrix;
        const double nnz = static_cast<double>((w.array() != 0.0).count());
        store(std::move(w), nnz);
      }
      si = analyse_spectrum(built);
      break;
    }
    case SpectrumKind::orthogonal: {
      store(random_recurrent(sc.kind, n, radius, rng), double(n) * double(n));
      si.rho = radius;  // radius * Q with Q orthogonal: every |lambda| and every singular value is radius
      si.spectral_norm = radius;
      break;
    }
    case SpectrumKind::ginibre:
    case SpectrumKind::symmetric: {
      store(random_recurrent(sc.kind, n, radius, rng), double(n) * double(n));
      si.rho = radius;  // exact by construction (random_recurrent rescales with a converged solve)
      measure_norm(built, si);
      break;
    }
    case SpectrumKind::sparse: {
      double factor;
      SparseMatrix w = rescaled(sparse_gaussian(n, sc.sparse, rng), radius, si, &factor);
      w.makeCompressed();
      const double nnz = static_cast<double>(w.nonZeros());
      store(std::move(w), nnz);
      measure_norm(built, si);
      break;
    }
    case SpectrumKind::nonnormal: {
      store(nonnormal_matrix(n, radius, sc.nonnormality, rng), double(n) * double(n));
      si.rho = radius;  // the eigenvalues of D, exact in closed form (ensembles.hpp)
      measure_norm(built, si);
      break;
    }
    case SpectrumKind::chain: {
      // Nilpotent shift: rho = 0 and ||W||_2 = 1 exactly (0 for N = 1); the radius key does not apply.
      store(delay_chain(n), double(n - 1));
      si.rho = 0.0;
      si.spectral_norm = n > 1 ? 1.0 : 0.0;
      break;
    }
    case SpectrumKind::dale: {
      double factor;
      Eigen::MatrixXd w = rescaled(dale_matrix(n, sc.dale, rng), radius, si, &factor);
      store(std::move(w), double(n) * double(n));
      measure_norm(built, si);
      const DaleSpectrum p = dale_prediction(n, sc.dale);
      si.bulk_radius = factor * p.bulk_radius;
      si.outlier = factor * p.outlier;
      break;
    }
  }
  if (info) *info = si;
  return built;
}

SpectralInfo measured_spectrum(const RecurrentMatrix& w, const SpectralInfo& built) {
  const bool reuse = w.is_sparse() && w.rows() > kSparseDenseFallbackMax;
  SpectralInfo info = reuse ? built : analyse_spectrum(w);
  if (reuse)
    info.message += (info.message.empty() ? "" : "; ") + std::string("rho and ||W||_2 from the construction");
  info.bulk_radius = built.bulk_radius;
  info.outlier = built.outlier;
  return info;
}

double target_radius(const SpectrumConfig& spectrum, double measured_rho) {
  if (spectrum.kind == SpectrumKind::chain) return 0.0;
  return spectrum.radius.value_or(spectrum.kind == SpectrumKind::file ? measured_rho : 1.0);
}

}  // namespace gradflow
