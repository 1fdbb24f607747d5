#include "gradflow/engine/engine.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>

#ifdef __linux__
#include <sys/mman.h>
#include <unistd.h>
#endif


#include "gradflow/engine/cell.hpp"
#include "gradflow/numerics/interrupt.hpp"
#include "gradflow/numerics/random.hpp"

namespace gradflow {
namespace {

constexpr double kLn10 = 2.302585092994045684;

// The tape's memory. A tape is N B T scalars written once forward and read once backward; fresh 4 KiB pages
// from the kernel (zeroed and mapped one by one) cost as much as a third of the engine at B >= 16. So a tape
// gets its own anonymous mapping, aligned to 2 MiB so that transparent huge pages can back it
// (MADV_HUGEPAGE), populated for writing in one call (MADV_POPULATE_WRITE, Linux >= 5.14; older kernels
// refuse it and the pages fault in as usual), and when the tape is released its mapping is kept by the
// thread for its next tape (one idle mapping per thread, at most kKeepBytes), so a sweep maps its tapes once
// per thread. GRADFLOW_TAPE = thp (default) | 4k (no huge pages: for machines where direct compaction
// stalls) | heap (the heap, no reuse: the behaviour before) chooses, for benchmarks.
enum class TapeMode { thp, small_pages, heap };

TapeMode tape_mode() {
  static const TapeMode mode = [] {
    const char* v = std::getenv("GRADFLOW_TAPE");
    const std::string s = v ? v : "";
    return s == "4k" ? TapeMode::small_pages : s == "heap" ? TapeMode::heap : TapeMode::thp;
  }();
  return mode;
}

constexpr std::size_t kHugePage = std::size_t(2) << 20;
constexpr std::size_t kKeepBytes = std::size_t(1) << 30;  // larger tapes are unmapped when released

#ifdef __linux__
void* map_tape(std::size_t bytes, bool huge) {
  // Over-allocate by one huge page and trim, so that the mapping starts on a 2 MiB boundary.
  void* raw = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto first = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t begin = (first + kHugePage - 1) & ~(kHugePage - 1);
  if (begin > first) munmap(raw, begin - first);
  const std::uintptr_t end = first + bytes + kHugePage;
  if (end > begin + bytes) munmap(reinterpret_cast<void*>(begin + bytes), end - (begin + bytes));
  void* p = reinterpret_cast<void*>(begin);
#ifdef MADV_HUGEPAGE
  if (huge) madvise(p, bytes, MADV_HUGEPAGE);
#else
  (void)huge;
#endif
#ifdef MADV_POPULATE_WRITE
  madvise(p, bytes, MADV_POPULATE_WRITE);
#endif
  return p;
}

/// The thread's idle tape mapping (unmapped when the thread ends, or by release_kept_tapes()). Every slot is
/// listed in `idle_slots` and read or changed under `idle_mutex` (once per pass), so that release_kept_tapes
/// can empty the slots of every thread.
struct IdleTape;
std::mutex idle_mutex;
std::set<IdleTape*>& idle_slots() {
  static auto* slots = new std::set<IdleTape*>;  // never destroyed: threads may end after static destructors
  return *slots;
}
struct IdleTape {
  void* data = nullptr;
  std::size_t bytes = 0;
  IdleTape() {
    const std::lock_guard<std::mutex> lock(idle_mutex);
    idle_slots().insert(this);
  }
  ~IdleTape() {
    const std::lock_guard<std::mutex> lock(idle_mutex);
    idle_slots().erase(this);
    if (data) munmap(data, bytes);
  }
};
thread_local IdleTape idle_tape;

/// Returns a released tape mapping to the releasing thread's slot, or to the kernel.
struct ReleaseTape {
  std::size_t bytes;
  void operator()(void* p) const {
    IdleTape& slot = idle_tape;  // constructed (and listed, under the lock) before the lock is taken here
    const std::lock_guard<std::mutex> lock(idle_mutex);
    if (bytes <= kKeepBytes && bytes > slot.bytes) {
      if (slot.data) munmap(slot.data, slot.bytes);
      slot.data = p;
      slot.bytes = bytes;
    } else {
      munmap(p, bytes);
    }
  }
};
#endif

/// Memory for a tape of `bytes` bytes, aligned for Eigen; its contents are undefined.
std::shared_ptr<void> tape_storage(std::size_t bytes) {
  if (bytes == 0) return nullptr;
#ifdef __linux__
  if (tape_mode() != TapeMode::heap) {
    bytes = (bytes + kHugePage - 1) & ~(kHugePage - 1);
    IdleTape& slot = idle_tape;  // constructed (and listed, under the lock) before the lock is taken here
    std::unique_lock<std::mutex> lock(idle_mutex);
    if (slot.data && slot.bytes >= bytes) {
      void* p = slot.data;
      const std::size_t held = slot.bytes;
      slot.data = nullptr;
      slot.bytes = 0;
      return std::shared_ptr<void>(p, ReleaseTape{held});
    }
    lock.unlock();
    return std::shared_ptr<void>(map_tape(bytes, tape_mode() == TapeMode::thp), ReleaseTape{bytes});
  }
#endif
  void* p = Eigen::internal::aligned_malloc(bytes);
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
  // Prefault with one call instead of one fault per page (whole pages inside the block only).
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto first = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t begin = (first + page - 1) & ~(page - 1);
  const std::uintptr_t end = (first + bytes) & ~(page - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
#endif
  return std::shared_ptr<void>(p, [](void* q) { Eigen::internal::aligned_free(q); });
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

void release_kept_tapes() {
#ifdef __linux__
  const std::lock_guard<std::mutex> lock(idle_mutex);
  for (IdleTape* slot : idle_slots()) {
    if (slot->data) munmap(slot->data, slot->bytes);
    slot->data = nullptr;
    slot->bytes = 0;
  }
#endif
}

namespace {

void check_shapes(const Model& model, const Drive& drive) {
  const Eigen::Index n = model.units();
  const Eigen::Index blocks = gate_blocks(model.cell);
  const Eigen::Index input_rows = model.cell == CellKind::minimalrnn ? n : blocks * n;
  const Eigen::Index w_rows = model.w_sparse ? model.w_sparse->rows() : model.w.rows();
  const Eigen::Index w_cols = model.w_sparse ? model.w_sparse->cols() : model.w.cols();
  if (w_cols != n || w_rows != blocks * n || drive.h0.rows() != n ||
      (model.u.cols() > 0 && model.u.rows() != input_rows) || (model.b.size() != 0 && model.b.size() != input_rows) ||
      (model.b_recurrent.size() != 0 && model.b_recurrent.size() != blocks * n) || drive.h0.cols() < 1 ||
      drive.steps < 1 || drive.burn_in < 0)
    throw std::invalid_argument("run_bptt: shapes must satisfy W: G N x N, U: G N x dim, b: G N, h0: N x B (G = 3 "
                                "for gru, 4 for lstm, 1 otherwise), B >= 1, T >= 1, burn_in >= 0");
  if (drive.c0.size() != 0 && (model.cell != CellKind::lstm || drive.c0.rows() != n || drive.c0.cols() != drive.h0.cols()))
    throw std::invalid_argument("run_bptt: c0 is the lstm cell state, N x B like h0");
  if (is_gated(model.cell) && model.w_sparse)
    throw std::invalid_argument("run_bptt: gated cells need dense W");
  if (model.cell == CellKind::minimalrnn && (model.w_gate_input.rows() != n || model.w_gate_input.cols() != n))
    throw std::invalid_argument("run_bptt: minimalrnn needs U_z (w_gate_input), N x N");
  if (drive.inputs && (drive.inputs->rows() < drive.burn_in + drive.steps || drive.inputs->cols() != model.u.cols()))
    throw std::invalid_argument("run_bptt: fixed inputs must be (burn_in + steps) x dim with dim = U's columns");
  if (model.cell == CellKind::leaky && !(model.leak > 0.0 && model.leak <= 1.0))
    throw std::invalid_argument("leaky cell: leak must satisfy 0 < leak <= 1");
}

}  // namespace

template <class Scalar>
Tape<Scalar> forward_pass(const Model& model, const Drive& drive) {
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  using Index = Eigen::Index;
  check_shapes(model, drive);

  const Index batch = drive.h0.cols();
  const Index steps = drive.steps;
  const Index dim = model.u.cols();
  const std::unique_ptr<Cell<Scalar>> cell = make_cell<Scalar>(model, Pass::forward, batch);
  const Index rows = cell->tape_rows();

  Tape<Scalar> tape;
  tape.batch = batch;
  tape.storage = tape_storage(static_cast<std::size_t>(rows * batch * steps) * sizeof(Scalar));
  new (&tape.data) Eigen::Map<Mat>(static_cast<Scalar*>(tape.storage.get()), rows, batch * steps);

  // Two state buffers so that the last finite state survives a divergence. Everything is allocated here:
  // nothing inside the time loop allocates.
  Mat s_prev = Mat::Zero(cell->state_size(), batch);
  s_prev.topRows(cell->units()) = drive.h0.cast<Scalar>();
  if (drive.c0.size() != 0) s_prev.bottomRows(cell->units()) = drive.c0.cast<Scalar>();
  Mat s_next(cell->state_size(), batch);
  Mat x(dim, batch);
  Vec x_shared(dim);
  Mat burn_tape(rows, batch);
  StepInput<Scalar> input;
  if (dim > 0 && drive.inputs) input.shared = &x_shared;
  else if (dim > 0) input.per_trajectory = &x;
  Rng input_rng(drive.input_seed);
  const StandardNormal normal;

  tape.mean_abs_dact_t.assign(steps + 1, 0.0);
  tape.mean_sq_dact_t.assign(steps + 1, 0.0);
  double sum_abs = 0.0, sum_sq = 0.0, max_abs = 0.0;
  std::int64_t dead = 0, saturated = 0, count = 0;
  tape.coefficient_names = cell->coefficient_names();
  const std::size_t coefficients = tape.coefficient_names.size();
  std::vector<double> coef_sum(coefficients, 0.0), coef_sq(coefficients, 0.0), coef_max(coefficients, 0.0);

  Index horizon = steps;
  const Index total = drive.burn_in + steps;
  for (Index s = 1; s <= total; ++s) {
    poll_stop("forward pass", s, total);  // throws Interrupted once a stop is requested
    const Index t = s - drive.burn_in;  // series time: burn-in steps have t <= 0
    if (dim > 0 && drive.inputs) {
      x_shared = drive.inputs->row(s - 1).transpose().cast<Scalar>();  // one x_t for every trajectory
    } else if (dim > 0) {
      for (Index j = 0; j < batch; ++j)
        for (Index i = 0; i < dim; ++i) x(i, j) = static_cast<Scalar>(normal(input_rng));
    }
    Scalar* block = t >= 1 ? tape.data.data() + (t - 1) * rows * batch : burn_tape.data();
    // A step counts in the statistics only once all its states are finite.
    StepStats step;
    if (!cell->forward(s_prev, input, s_next, block, t >= 1 ? &step : nullptr)) {
      tape.forward_diverged_at = t;
      horizon = std::max<Index>(0, t - 1);
      break;
    }
    s_prev.swap(s_next);
    if (t >= 1) {
      sum_abs += step.sum_abs;
      sum_sq += step.sum_sq;
      max_abs = std::max(max_abs, step.max_abs);
      dead += step.dead;
      saturated += step.saturated;
      count += step.count;
      for (std::size_t k = 0; k < coefficients; ++k) {
        coef_sum[k] += step.coef_sum[k];
        coef_sq[k] += step.coef_sq[k];
        coef_max[k] = std::max(coef_max[k], step.coef_max[k]);
      }
      tape.mean_abs_dact_t[t] = step.sum_abs / static_cast<double>(step.count);
      tape.mean_sq_dact_t[t] = step.sum_sq / static_cast<double>(step.count);
    }
  }
  tape.horizon = horizon;
  tape.mean_abs_dact_t.resize(horizon + 1);
  tape.mean_sq_dact_t.resize(horizon + 1);
  tape.final_state = std::move(s_prev);
  if (horizon > 0) {
    const double n_values = static_cast<double>(count);
    tape.mean_abs_dact = sum_abs / n_values;
    tape.mean_sq_dact = sum_sq / n_values;
    tape.max_abs_dact = max_abs;
    tape.dead_fraction = static_cast<double>(dead) / n_values;
    tape.saturated_fraction = static_cast<double>(saturated) / n_values;
    for (std::size_t k = 0; k < coefficients; ++k) {
      tape.coef_mean.push_back(coef_sum[k] / n_values);
      tape.coef_rms.push_back(std::sqrt(coef_sq[k] / n_values));
      tape.coef_max.push_back(coef_max[k]);
    }
  }
  return tape;
}

template <class Scalar>
GradientTrace backward_pass(const Model& model, const Drive& drive, const Tape<Scalar>& tape) {
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Index = Eigen::Index;
  const Index batch = tape.batch;
  const Index horizon = tape.horizon;
  const std::unique_ptr<Cell<Scalar>> cell = make_cell<Scalar>(model, Pass::backward, batch);
  const Index n = cell->units();
  const Index size = cell->state_size();
  const Index rows = cell->tape_rows();

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
  trace.coefficient_names = tape.coefficient_names;
  trace.coef_mean = tape.coef_mean;
  trace.coef_rms = tape.coef_rms;
  trace.coef_max = tape.coef_max;
  const bool split = size > n;  // a second state vector: the h part's norm is recorded too

  // Loss seed g_T = dL/dS_T at the horizon, zero outside h: h_T (final_state) or a random unit vector of h
  // per trajectory.
  Mat g = Mat::Zero(size, batch);
  if (drive.loss == LossKind::final_state) {
    g.topRows(n) = tape.final_state.topRows(n);
  } else {
    Rng loss_rng(drive.loss_seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    Eigen::VectorXd v(n);
    for (Index j = 0; j < batch; ++j) {
      for (Index i = 0; i < n; ++i) v[i] = normal(loss_rng);
      g.col(j).head(n) = (v / v.norm()).cast<Scalar>();  // uniform on the unit sphere
    }
  }

  // g holds the raw g_t (up to the scale already taken out), inv[j] = 1 / ||g_t^(j)|| of it, and log_norm[j]
  // the natural log of the true ||g_t^(j)||. The cell applies the scale 1/||g_t|| in its own pass over g, so
  // renormalisation costs no pass of its own.
  std::vector<double> log_norm(batch, 0.0);
  std::vector<Scalar> inv(batch, Scalar(1));
  std::vector<char> zero(batch, 0);
  trace.log10_norm_mean.assign(horizon + 1, 0.0);
  trace.log10_norm_min.assign(horizon + 1, 0.0);
  trace.log10_norm_max.assign(horizon + 1, 0.0);
  trace.zero_count.assign(horizon + 1, 0);
  if (split) trace.log10_norm_h_mean.assign(horizon + 1, std::numeric_limits<double>::quiet_NaN());

  // Norms of the columns of g (g_t up to the known scale): updates log_norm, inv and zero, records step t.
  auto measure_and_record = [&](Index t) {
    double sum = 0.0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
    double sum_h = 0.0;
    int zeros = 0, h_count = 0;
    for (Index j = 0; j < batch; ++j) {
      if (!zero[j]) {
        const double c = column_norm(g.col(j));
        if (split && c > 0.0 && std::isfinite(c)) {
          // ||g_h|| = ||raw g_h|| / ||raw g|| * ||g_t||, in the log domain (-inf when the h part is 0: skipped)
          const double ch = column_norm(g.col(j).head(n));
          if (ch > 0.0) {
            sum_h += (log_norm[j] + std::log(ch)) / kLn10;
            ++h_count;
          }
        }
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
    if (split && h_count > 0) trace.log10_norm_h_mean[t] = sum_h / h_count;
    if (zeros < batch) {
      trace.log10_norm_mean[t] = sum / static_cast<double>(batch - zeros);
      trace.log10_norm_min[t] = lo;
      trace.log10_norm_max[t] = hi;
    }
  };

  measure_and_record(horizon);
  Mat g_prev(size, batch);
  for (Index t = horizon; t >= 1; --t) {
    poll_stop("backward pass", horizon - t, horizon);
    cell->backward(tape.data.data() + (t - 1) * rows * batch, g, inv.data(), g_prev);
    g.swap(g_prev);
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
