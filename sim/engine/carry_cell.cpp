// The cells of the form h_t = c h_{t-1} + s f(a_t), a_t = W h_{t-1} + U x_t + b: vanilla (c = 0, s = 1),
// residual (c = s = 1) and leaky (c = 1 - leak, s = leak). J_t = c I + s diag(f'(a_t)) W; the tape holds
// f'(a_t), N per trajectory.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "cells.hpp"
#include "products.hpp"
#include "recurrent_weights.hpp"

namespace gradflow::detail {
namespace {

template <class Scalar>
class CarryCell final : public Cell<Scalar> {
 public:
  using Mat = typename Cell<Scalar>::Mat;
  using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  using Arr = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  using Index = Eigen::Index;

  CarryCell(const Model& model, Pass pass, Index columns)
      : n_(model.units()),
        f_(model.activation),
        vanilla_(model.cell == CellKind::vanilla),
        carry_(static_cast<Scalar>(model.carry())),
        scale_(static_cast<Scalar>(model.drive_scale())),
        saturation_level_(static_cast<Scalar>(1e-3 * model.activation.sup_abs_derivative())),
        threads_(gemm_threads()),
        columns_(static_cast<std::size_t>(columns)) {
    switch (pass) {
      case Pass::forward:
        product_.emplace(model, columns, /*transposed=*/false);
        input_.emplace(model.u, columns);
        b_ = model.b.size() ? Vec(model.b.cast<Scalar>()) : Vec::Zero(n_);
        has_bias_ = model.b.size() != 0 && model.b.any();
        a_.resize(n_, columns);
        break;
      case Pass::backward:
        product_.emplace(model, columns, /*transposed=*/true);
        dg_.resize(n_, columns);
        break;
      case Pass::tangent:
        weights_.emplace(model, /*transposed=*/false);  // no copy of a double W
        y_.resize(n_, columns);
        break;
    }
  }

  Index units() const override { return n_; }
  Index state_size() const override { return n_; }
  Index tape_rows() const override { return tape_rows_per_unit(CellKind::vanilla) * n_; }  // residual, leaky: the same

  bool forward(const Mat& h_prev, const StepInput<Scalar>& x, Mat& h_next, Scalar* dact, StepStats* stats) override {
    const Index batch = h_prev.cols();
    // a = b + W h_{t-1}: the product adds into a, which starts from the bias, so the bias costs no pass.
    if (has_bias_)
      for (Index j = 0; j < batch; ++j) a_.col(j) = b_;
    product_->apply(h_prev, a_, /*accumulate=*/has_bias_);
    input_->add_to(x, a_);
    // One pass per trajectory while its column is in L1: f and f' (fused kernel, f' straight into the tape),
    // the cell's carry, then the finiteness check and the statistics of f' in one more pass. The columns
    // are split between the product's threads; their sums are added below in trajectory order, so the
    // numbers are the same on any thread count.
    for_columns(batch, threads_, [&](Index j) {
      Scalar* aj = a_.data() + j * n_;
      Scalar* hj = h_next.data() + j * n_;
      Scalar* dj = dact + j * n_;
      f_.apply<Scalar>(aj, hj, dj, n_);
      Eigen::Map<Arr> h(hj, n_);
      if (!vanilla_) h = carry_ * Eigen::Map<const Arr>(h_prev.data() + j * n_, n_) + scale_ * h;
      ColumnStats& c = columns_[static_cast<std::size_t>(j)];
      if (!stats) {
        c.finite = h.allFinite();
        return;
      }
      // One fused, vectorised pass over the column (omp simd allows the reordered reductions); h - h is 0
      // for a finite h and NaN otherwise, so `probe` is the finiteness check.
      double col_abs = 0.0, col_sq = 0.0;
      Scalar col_max = 0, probe = 0;
      std::int64_t col_dead = 0, col_saturated = 0;
      const Scalar level = saturation_level_;
#pragma omp simd reduction(+ : col_abs, col_sq, col_dead, col_saturated, probe) reduction(max : col_max)
      for (Index i = 0; i < n_; ++i) {
        probe += hj[i] - hj[i];
        const Scalar v = std::abs(dj[i]);
        col_abs += static_cast<double>(v);
        col_sq += static_cast<double>(v) * static_cast<double>(v);
        col_max = v > col_max ? v : col_max;
        col_dead += v == Scalar(0) ? 1 : 0;
        col_saturated += v < level ? 1 : 0;
      }
      c = {probe == Scalar(0), col_abs, col_sq, static_cast<double>(col_max), col_dead, col_saturated};
    });
    // Per-trajectory sums added in trajectory order: the same numbers for any batch or thread split.
    StepStats step;
    for (Index j = 0; j < batch; ++j) {
      const ColumnStats& c = columns_[static_cast<std::size_t>(j)];
      if (!c.finite) return false;
      step.sum_abs += c.sum_abs;
      step.sum_sq += c.sum_sq;
      step.max_abs = std::max(step.max_abs, c.max_abs);
      step.dead += c.dead;
      step.saturated += c.saturated;
    }
    if (stats) {
      step.count = n_ * batch;
      *stats = step;
    }
    return true;
  }

  void backward(const Scalar* dact, Mat& g, const Scalar* inv, Mat& g_prev) override {
    // g_{t-1} = c g_t + s W^T (f'(a_t) .* g_t), with g_t scaled per column on the way (no pass of its own).
    // On one thread: the scaling is a multiply per element, cheaper than the join a split would add.
    const Index batch = g.cols();
    for (Index j = 0; j < batch; ++j) {
      Eigen::Map<Arr> gj(g.data() + j * n_, n_);
      const Eigen::Map<const Arr> dj(dact + j * n_, n_);
      if (vanilla_) {
        Eigen::Map<Arr>(dg_.data() + j * n_, n_) = (inv[j] * dj) * gj;
      } else {
        gj *= inv[j];
        Eigen::Map<Arr>(dg_.data() + j * n_, n_) = dj * gj;
      }
    }
    product_->apply(dg_, g_prev);
    if (!vanilla_) g_prev = carry_ * g + scale_ * g_prev;
  }

  void tangent(const Scalar* dact, Mat& q, Index k) override {
    // Q <- c Q + s diag(f'(a_t)) W Q, per trajectory with its own f'(a_t).
    weights_->apply(q, y_);
    const Index batch = q.cols() / k;
    for (Index b = 0; b < batch; ++b)
      y_.middleCols(b * k, k).array().colwise() *= Eigen::Map<const Arr>(dact + b * n_, n_);
    if (vanilla_) q.swap(y_);
    else q.array() = carry_ * q.array() + scale_ * y_.array();
  }

 private:
  Index n_;
  Activation f_;
  bool vanilla_;
  Scalar carry_, scale_, saturation_level_;
  std::optional<PassProduct<Scalar>> product_;           // forward: W x; backward: W^T x
  std::optional<RecurrentWeights<Scalar>> weights_;      // tangent: W Q on B k columns
  std::optional<InputProduct<Scalar>> input_;           // forward: U x
  Vec b_;
  bool has_bias_ = false;
  Mat a_, dg_, y_;  // scratch: pre-activations, f' .* g, W Q
  int threads_;     // the GEMM threads, which also split the columns of the elementwise passes
  /// One trajectory's share of a forward step: finiteness and the sums of |f'|, f'^2, max |f'|, counts.
  struct ColumnStats {
    bool finite = true;
    double sum_abs = 0.0, sum_sq = 0.0, max_abs = 0.0;
    std::int64_t dead = 0, saturated = 0;
  };
  std::vector<ColumnStats> columns_;
};

}  // namespace

template <class Scalar>
std::unique_ptr<Cell<Scalar>> make_carry_cell(const Model& model, Pass pass, Eigen::Index columns) {
  return std::make_unique<CarryCell<Scalar>>(model, pass, columns);
}

template std::unique_ptr<Cell<float>> make_carry_cell<float>(const Model&, Pass, Eigen::Index);
template std::unique_ptr<Cell<double>> make_carry_cell<double>(const Model&, Pass, Eigen::Index);

}  // namespace gradflow::detail
