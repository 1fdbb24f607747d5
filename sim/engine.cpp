#include "gradflow/engine.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <stdexcept>

#ifdef __linux__
#include <sys/mman.h>
#include <unistd.h>
#endif


#include "gradflow/blas.hpp"
#include "gradflow/random.hpp"
#include "recurrent_weights.hpp"

namespace gradflow {
namespace {

constexpr double kLn10 = 2.302585092994045684;

/// The recurrent products of one pass, y = W x (forward) or y = W^T x (backward) for N x B blocks x, on the
/// kernel choose_gemm() picks for the shape: Eigen's GEMV (B = 1), Eigen's GEMM kernel with W packed once
/// per pass (detail::PackedProduct), or OpenBLAS. Writes y without allocating.
template <class Scalar>
class RecurrentProduct {
 public:
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  RecurrentProduct(const Mat& w, Eigen::Index batch, bool transpose)
      : w_(w), batch_(batch), transpose_(transpose), backend_(choose_gemm(w.rows(), batch, sizeof(Scalar))) {
    const bool small = double(w.size()) * sizeof(Scalar) <= detail::kPreparedMaxBytes;
    if (backend_ == GemmBackend::eigen && batch > 1 && gemm_threads() == 1 && small)
      packed_.emplace(w.data(), w.rows(), batch, transpose);
    // B = 1 backward: Eigen's GEMV runs W^T x as dot products, slower in the engine than its column-major
    // kernel; a column-major copy of W^T is worth its N^2 scalars while it is small.
    if (backend_ == GemmBackend::eigen && batch == 1 && transpose && small) w_transposed_ = w.transpose();
  }

  /// y = op(W) x, or y += op(W) x when `accumulate` (how the forward pass starts a from the bias for free).
  void apply(const Scalar* x, Scalar* y, bool accumulate = false) const {
    const Eigen::Index n = w_.rows();
    if (packed_) {
      packed_->apply(x, y, accumulate);
      return;
    }
    if (backend_ == GemmBackend::openblas) {
      detail::blas_product(transpose_, n, batch_, w_.data(), x, y, accumulate);
      return;
    }
    if (batch_ == 1) {  // Eigen's GEMV
      using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
      const Eigen::Map<const Vec> xv(x, n);
      Eigen::Map<Vec> yv(y, n);
      if (!accumulate) yv.setZero();
      if (w_transposed_.size() != 0) yv.noalias() += w_transposed_ * xv;
      else if (transpose_) yv.noalias() += w_.transpose() * xv;
      else yv.noalias() += w_ * xv;
      return;
    }
    // Eigen's GEMM on several threads, or above the size of the packed copy without OpenBLAS.
    const Eigen::Map<const Mat> xm(x, n, batch_);
    Eigen::Map<Mat> ym(y, n, batch_);
    if (!accumulate) ym.setZero();
    if (transpose_) ym.noalias() += w_.transpose() * xm;
    else ym.noalias() += w_ * xm;
  }

 private:
  const Mat& w_;
  Eigen::Index batch_;
  bool transpose_;
  GemmBackend backend_;
  std::optional<detail::PackedProduct<Scalar>> packed_;
  Mat w_transposed_;
};

/// The recurrent product of one pass, whatever stores W: RecurrentProduct's kernels for dense W, the
/// compressed-row product (detail::RecurrentWeights) for sparse W.
template <class Scalar>
class PassProduct {
 public:
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  PassProduct(const Model& model, Eigen::Index batch, bool transposed) : weights_(model, transposed) {
    if (!weights_.is_sparse()) dense_.emplace(weights_.dense(), batch, transposed);
  }
  // dense_ refers to the W that weights_ holds (its float copy): a copy would refer to the original's.
  PassProduct(const PassProduct&) = delete;
  PassProduct& operator=(const PassProduct&) = delete;
  /// y = op(W) x, or y += op(W) x when `accumulate`; x and y are N x B.
  void apply(const Mat& x, Mat& y, bool accumulate = false) {
    if (dense_) dense_->apply(x.data(), y.data(), accumulate);
    else weights_.apply(x, y, accumulate);
  }

 private:
  detail::RecurrentWeights<Scalar> weights_;
  std::optional<RecurrentProduct<Scalar>> dense_;
};

/// Prefaults a large buffer that is about to be written in full (the tape) with one madvise call, instead of
/// one page fault per 4 KiB page on first touch. Advisory: kernels before Linux 5.14 refuse it (EINVAL) and
/// the pages fault in as usual. (Transparent huge pages were measured too: direct compaction made the
/// forward pass slower on this machine.)
void prefault(void* data, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto first = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t begin = (first + page - 1) & ~(page - 1);
  const std::uintptr_t end = (first + bytes) & ~(page - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
#else
  (void)data;
  (void)bytes;
#endif
}

/// ||col||_2 in double without overflow or underflow of the squares.
template <class Derived>
double column_norm(const Eigen::MatrixBase<Derived>& col) {
  // Squares summed in double in one vectorised pass (omp simd: reordered reduction; float columns are
  // widened in registers, no double copy).
  static_assert(Derived::InnerStrideAtCompileTime == 1, "column_norm reads a contiguous column");
  const auto* x = col.derived().data();
  double sq = 0.0;
#pragma omp simd reduction(+ : sq)
  for (Eigen::Index i = 0; i < col.size(); ++i) sq += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  if (std::isfinite(sq) && sq > std::numeric_limits<double>::min()) return std::sqrt(sq);
  const double scale = col.template cast<double>().cwiseAbs().maxCoeff();
  if (scale == 0.0 || !std::isfinite(scale)) return scale;
  return scale * (col.template cast<double>() / scale).norm();
}

}  // namespace

namespace {

template <class Scalar>
void check_shapes(const Model& model, const Drive& drive) {
  const Eigen::Index n = model.units();
  const Eigen::Index w_cols = model.w_sparse ? model.w_sparse->cols() : model.w.cols();
  if (w_cols != n || drive.h0.rows() != n || (model.u.cols() > 0 && model.u.rows() != n) ||
      (model.b.size() != 0 && model.b.size() != n) || drive.h0.cols() < 1 || drive.steps < 1 || drive.burn_in < 0)
    throw std::invalid_argument("run_bptt: shapes must satisfy W: N x N, U: N x dim, b: N, h0: N x B, "
                                "B >= 1, T >= 1, burn_in >= 0");
  if (drive.inputs && (drive.inputs->rows() < drive.burn_in + drive.steps || drive.inputs->cols() != model.u.cols()))
    throw std::invalid_argument("run_bptt: fixed inputs must be (burn_in + steps) x dim with dim = U's columns");
  if (model.cell == CellKind::leaky && !(model.leak > 0.0 && model.leak <= 1.0))
    throw std::invalid_argument("leaky cell: leak must satisfy 0 < leak <= 1");
}

}  // namespace

std::string to_string(CellKind k) {
  switch (k) {
    case CellKind::vanilla: return "vanilla";
    case CellKind::residual: return "residual";
    case CellKind::leaky: return "leaky";
  }
  return "unknown";
}

CellKind parse_cell_kind(const std::string& name) {
  if (name == "vanilla") return CellKind::vanilla;
  if (name == "residual") return CellKind::residual;
  if (name == "leaky") return CellKind::leaky;
  throw std::invalid_argument("unknown cell \"" + name + "\": expected vanilla, residual or leaky");
}

template <class Scalar>
Tape<Scalar> forward_pass(const Model& model, const Drive& drive) {
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  using Arr = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  using Index = Eigen::Index;
  check_shapes<Scalar>(model, drive);

  const Index n = model.units();
  const Index batch = drive.h0.cols();
  const Index steps = drive.steps;
  const Index dim = model.u.cols();
  PassProduct<Scalar> product(model, batch, /*transposed=*/false);
  const Mat u = model.u.cast<Scalar>();
  const Vec b = model.b.size() ? Vec(model.b.cast<Scalar>()) : Vec::Zero(n);
  const bool has_bias = model.b.size() != 0 && model.b.any();
  const Activation& f = model.activation;
  const Scalar saturation_level = static_cast<Scalar>(1e-3 * f.sup_abs_derivative());
  const bool vanilla = model.cell == CellKind::vanilla;
  const Scalar carry = static_cast<Scalar>(model.carry());
  const Scalar scale = static_cast<Scalar>(model.drive_scale());

  Tape<Scalar> tape;
  tape.batch = batch;
  tape.dact.resize(n, batch * steps);
  prefault(tape.dact.data(), static_cast<std::size_t>(tape.dact.size()) * sizeof(Scalar));

  // Two state buffers so that the last finite state survives a divergence. Everything is allocated here:
  // nothing inside the time loop allocates (the GEMMs write into `a`, the activation into h and the tape).
  Mat h_prev = drive.h0.cast<Scalar>();
  Mat h_next(n, batch);
  Mat a(n, batch);
  Mat x(dim, batch);
  Mat burn_dact(n, batch);
  Rng input_rng(drive.input_seed);
  std::normal_distribution<double> normal(0.0, 1.0);

  tape.mean_abs_dact_t.assign(steps + 1, 0.0);
  tape.mean_sq_dact_t.assign(steps + 1, 0.0);
  double sum_abs = 0.0, sum_sq = 0.0, max_abs = 0.0;
  std::int64_t dead = 0, saturated = 0;

  Index horizon = steps;
  const Index total = drive.burn_in + steps;
  for (Index s = 1; s <= total; ++s) {
    const Index t = s - drive.burn_in;  // series time: burn-in steps have t <= 0
    // a = b + W h_{t-1}: the product adds into a, which starts from the bias, so the bias costs no pass.
    if (has_bias)
      for (Index j = 0; j < batch; ++j) a.col(j) = b;
    product.apply(h_prev, a, /*accumulate=*/has_bias);
    if (dim > 0 && drive.inputs) {
      // One input sequence for every trajectory: U x_s once, added to each column.
      const Vec ux = u * drive.inputs->row(s - 1).transpose().cast<Scalar>();
      a.colwise() += ux;
    } else if (dim > 0) {
      for (Index j = 0; j < batch; ++j)
        for (Index i = 0; i < dim; ++i) x(i, j) = static_cast<Scalar>(normal(input_rng));
      a.noalias() += u * x;
    }
    Scalar* dact = t >= 1 ? tape.dact.data() + (t - 1) * n * batch : burn_dact.data();
    // One pass per trajectory while its column is in L1: f and f' (fused kernel, f' straight into the tape),
    // the cell's carry, then the finiteness check and the statistics of f' in one more pass. A step counts
    // in the statistics only once all its states are finite.
    bool finite = true;
    double step_abs = 0.0, step_sq = 0.0, step_max = 0.0;
    std::int64_t step_dead = 0, step_saturated = 0;
    for (Index j = 0; j < batch && finite; ++j) {
      Scalar* aj = a.data() + j * n;
      Scalar* hj = h_next.data() + j * n;
      Scalar* dj = dact + j * n;
      f.apply<Scalar>(aj, hj, dj, n);
      Eigen::Map<Arr> h(hj, n);
      if (!vanilla) h = carry * Eigen::Map<const Arr>(h_prev.data() + j * n, n) + scale * h;
      if (t < 1) {
        finite = h.allFinite();
        continue;
      }
      // Per-trajectory sums, added in trajectory order: the same numbers for any batch split. One fused,
      // vectorised pass over the column (omp simd allows the reordered reductions); h - h is 0 for a finite
      // h and NaN otherwise, so `probe` is the finiteness check.
      double col_abs = 0.0, col_sq = 0.0;
      Scalar col_max = 0, probe = 0;
      std::int64_t col_dead = 0, col_saturated = 0;
#pragma omp simd reduction(+ : col_abs, col_sq, col_dead, col_saturated, probe) reduction(max : col_max)
      for (Index i = 0; i < n; ++i) {
        probe += hj[i] - hj[i];
        const Scalar v = std::abs(dj[i]);
        col_abs += static_cast<double>(v);
        col_sq += static_cast<double>(v) * static_cast<double>(v);
        col_max = v > col_max ? v : col_max;
        col_dead += v == Scalar(0) ? 1 : 0;
        col_saturated += v < saturation_level ? 1 : 0;
      }
      finite = probe == Scalar(0);
      step_abs += col_abs;
      step_sq += col_sq;
      step_max = std::max(step_max, static_cast<double>(col_max));
      step_dead += col_dead;
      step_saturated += col_saturated;
    }
    if (!finite) {
      tape.forward_diverged_at = t;
      horizon = std::max<Index>(0, t - 1);
      break;
    }
    h_prev.swap(h_next);
    if (t >= 1) {
      sum_abs += step_abs;
      sum_sq += step_sq;
      max_abs = std::max(max_abs, step_max);
      dead += step_dead;
      saturated += step_saturated;
      tape.mean_abs_dact_t[t] = step_abs / static_cast<double>(n * batch);
      tape.mean_sq_dact_t[t] = step_sq / static_cast<double>(n * batch);
    }
  }
  tape.horizon = horizon;
  tape.mean_abs_dact_t.resize(horizon + 1);
  tape.mean_sq_dact_t.resize(horizon + 1);
  tape.final_state = std::move(h_prev);
  if (horizon > 0) {
    const double count = static_cast<double>(n * batch * horizon);
    tape.mean_abs_dact = sum_abs / count;
    tape.mean_sq_dact = sum_sq / count;
    tape.max_abs_dact = max_abs;
    tape.dead_fraction = static_cast<double>(dead) / count;
    tape.saturated_fraction = static_cast<double>(saturated) / count;
  }
  return tape;
}

template <class Scalar>
GradientTrace backward_pass(const Model& model, const Drive& drive, const Tape<Scalar>& tape) {
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Arr = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  using Index = Eigen::Index;
  const Index n = model.units();
  const Index batch = tape.batch;
  const Index horizon = tape.horizon;
  PassProduct<Scalar> product(model, batch, /*transposed=*/true);
  const bool vanilla = model.cell == CellKind::vanilla;
  const Scalar carry = static_cast<Scalar>(model.carry());
  const Scalar scale = static_cast<Scalar>(model.drive_scale());

  GradientTrace trace;
  trace.batch = batch;
  trace.carry = model.carry();
  trace.drive_scale = model.drive_scale();
  trace.horizon = horizon;
  trace.forward_diverged_at = tape.forward_diverged_at;
  trace.mean_abs_dact_t = tape.mean_abs_dact_t;
  trace.mean_sq_dact_t = tape.mean_sq_dact_t;
  trace.mean_abs_dact = tape.mean_abs_dact;
  trace.mean_sq_dact = tape.mean_sq_dact;
  trace.max_abs_dact = tape.max_abs_dact;
  trace.dead_fraction = tape.dead_fraction;
  trace.saturated_fraction = tape.saturated_fraction;

  // Loss seed g_T at the horizon: h_T (final_state) or a random unit vector per trajectory.
  Mat g(n, batch);
  if (drive.loss == LossKind::final_state) {
    g = tape.final_state;
  } else {
    Rng loss_rng(drive.loss_seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    Eigen::VectorXd v(n);
    for (Index j = 0; j < batch; ++j) {
      for (Index i = 0; i < n; ++i) v[i] = normal(loss_rng);
      g.col(j) = (v / v.norm()).cast<Scalar>();  // uniform on the unit sphere
    }
  }

  // g holds the raw g_t (up to the scale already taken out), inv[j] = 1 / ||g_t^(j)|| of it, and log_norm[j]
  // the natural log of the true ||g_t^(j)||. The scale 1/||g_t|| is applied in the same pass that multiplies
  // by f'(a_t), so renormalisation costs no pass of its own.
  std::vector<double> log_norm(batch, 0.0);
  std::vector<Scalar> inv(batch, Scalar(1));
  std::vector<char> zero(batch, 0);
  trace.log10_norm_mean.assign(horizon + 1, 0.0);
  trace.log10_norm_min.assign(horizon + 1, 0.0);
  trace.log10_norm_max.assign(horizon + 1, 0.0);
  trace.zero_count.assign(horizon + 1, 0);

  // Norms of the columns of g (g_t up to the known scale): updates log_norm, inv and zero, records step t.
  auto measure_and_record = [&](Index t) {
    double sum = 0.0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
    int zeros = 0;
    for (Index j = 0; j < batch; ++j) {
      if (!zero[j]) {
        const double c = column_norm(g.col(j));
        if (c == 0.0 || !std::isfinite(c)) {
          // Exactly annihilated (dead units): zero from here on, reported as data. (A non-finite norm
          // would need a one-step growth beyond the largest Scalar; it is treated the same way, never
          // propagated as inf or NaN.)
          zero[j] = 1;
          inv[j] = Scalar(0);
          g.col(j).setZero();
        } else {
          log_norm[j] += std::log(c);
          inv[j] = static_cast<Scalar>(1.0 / c);
        }
      }
      if (zero[j]) {
        ++zeros;
        continue;
      }
      const double l10 = log_norm[j] / kLn10;
      sum += l10;
      lo = std::min(lo, l10);
      hi = std::max(hi, l10);
    }
    trace.zero_count[t] = zeros;
    if (zeros < batch) {
      trace.log10_norm_mean[t] = sum / static_cast<double>(batch - zeros);
      trace.log10_norm_min[t] = lo;
      trace.log10_norm_max[t] = hi;
    }
  };

  measure_and_record(horizon);
  Mat g_next(n, batch);
  Mat dg(n, batch);
  for (Index t = horizon; t >= 1; --t) {
    // g_{t-1} = c g_t + s W^T (f'(a_t) .* g_t), with g_t renormalised to unit columns on the way.
    const Scalar* d = tape.dact.data() + (t - 1) * n * batch;
    for (Index j = 0; j < batch; ++j) {
      Eigen::Map<Arr> gj(g.data() + j * n, n);
      const Eigen::Map<const Arr> dj(d + j * n, n);
      if (vanilla) {
        Eigen::Map<Arr>(dg.data() + j * n, n) = (inv[j] * dj) * gj;
      } else {
        gj *= inv[j];
        Eigen::Map<Arr>(dg.data() + j * n, n) = dj * gj;
      }
    }
    product.apply(dg, g_next);
    if (!vanilla) g_next = carry * g + scale * g_next;
    g.swap(g_next);
    measure_and_record(t - 1);
  }
  return trace;
}

template <class Scalar>
GradientTrace run_bptt(const Model& model, const Drive& drive) {
  const Tape<Scalar> tape = forward_pass<Scalar>(model, drive);
  return backward_pass<Scalar>(model, drive, tape);
}

template Tape<float> forward_pass<float>(const Model&, const Drive&);
template Tape<double> forward_pass<double>(const Model&, const Drive&);
template GradientTrace backward_pass<float>(const Model&, const Drive&, const Tape<float>&);
template GradientTrace backward_pass<double>(const Model&, const Drive&, const Tape<double>&);
template GradientTrace run_bptt<float>(const Model&, const Drive&);
template GradientTrace run_bptt<double>(const Model&, const Drive&);

GradientTrace run_bptt(const Model& model, const Drive& drive, Precision precision) {
  return precision == Precision::float32 ? run_bptt<float>(model, drive) : run_bptt<double>(model, drive);
}

}  // namespace gradflow
