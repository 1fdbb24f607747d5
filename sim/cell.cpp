#include "gradflow/cell.hpp"

#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "gradflow/ensembles.hpp"
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
bool family_path(const Config& config) {
  const auto& sc = config.spectrum;
  const Eigen::Index n = config.network.units;
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
Eigen::MatrixXd build_family_recurrent(const Config& config, std::uint64_t family, std::uint64_t replicate,
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

}  // namespace

RecurrentMatrix build_recurrent_matrix(const Config& config, std::uint64_t family, std::uint64_t replicate,
                                       SpectralInfo* info, RecurrentCache* cache) {
  if (family_path(config)) {
    RecurrentMatrix built;
    built.dense = build_family_recurrent(config, family, replicate, info, cache);
    return built;
  }
  const auto& sc = config.spectrum;
  const Eigen::Index n = config.network.units;
  const double radius = sc.radius.value_or(1.0);
  Rng rng(derive_seed(config.seed, family, replicate, Stream::recurrent));
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

Eigen::MatrixXd build_recurrent(const Config& config, std::uint64_t family, std::uint64_t replicate,
                                SpectralInfo* info, RecurrentCache* cache) {
  if (family_path(config)) return build_family_recurrent(config, family, replicate, info, cache);
  return build_recurrent_matrix(config, family, replicate, info, cache).to_dense();
}

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
  result.storage = model.w_sparse ? Storage::sparse : Storage::dense;
  result.nonzeros = model.w_sparse ? static_cast<double>(model.w_sparse->nonZeros())
                                   : static_cast<double>((model.w.array() != 0.0).count());
  const Drive drive = build_drive(config, cell, replicate);
  const std::uint64_t tangent_seed = derive_seed(config.seed, cell, replicate, Stream::tangent);
  if (config.network.precision == Precision::float32)
    run_passes<float>(config, model, drive, tangent_seed, result);
  else
    run_passes<double>(config, model, drive, tangent_seed, result);
  result.metrics = compute_metrics(result.spectrum, model.activation, result.trace, config.analysis);
  result.gain_rms = model.w_sparse ? model.w_sparse->norm() / std::sqrt(double(model.w_sparse->rows()))
                                  : gain_rms(model.w);
  result.mean_field = cell_mean_field(config, result.gain_rms);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace gradflow
