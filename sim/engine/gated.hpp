#pragma once
// What the gated cells (gru_cell.cpp, lstm_cell.cpp, minimalrnn_cell.cpp) share: weights at the pass's
// precision, scratch, and the statistics of their Jacobian coefficients. Internal to the engine.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>

#include <Eigen/Core>

#include "gradflow/engine/cell.hpp"
#include "gradflow/numerics/blas.hpp"
#include "products.hpp"
#include "recurrent_weights.hpp"
#include "tape_store.hpp"

namespace gradflow::detail {

template <class Scalar>
class GatedCell : public Cell<Scalar> {
 public:
  using Mat = typename Cell<Scalar>::Mat;
  using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  using Arr = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  using Index = Eigen::Index;

  Index units() const override { return n_; }

 protected:
  /// `rows`: the rows of the stacked input-side weights (G N; N for minimalrnn).
  GatedCell(const Model& model, Index blocks)
      : n_(model.units()),
        blocks_(blocks),
        f_(model.activation),
        sigmoid_(ActivationKind::sigmoid),
        saturation_level_(static_cast<Scalar>(1e-3 * model.activation.sup_abs_derivative())),
        weights_(model, /*transposed=*/false) {}

  /// The stacked recurrent weights, G N x N, at the pass's precision: the model's own in double (no copy), a
  /// float copy in float (RecurrentWeights).
  const Mat& w() const { return weights_.dense(); }

  /// Input-side operands of the forward pass: U (InputProduct) and the bias vectors at this precision.
  void prepare_forward(const Model& model, Index columns) {
    stage_.resize(this->tape_rows());
    input_.emplace(model.u, columns);
    b_ = model.b.size() ? Vec(model.b.cast<Scalar>()) : Vec::Zero(model.u.rows());
    b_recurrent_ = model.b_recurrent.size() ? Vec(model.b_recurrent.cast<Scalar>()) : Vec::Zero(w().rows());
  }

  /// a += U x_t.
  void add_input(const StepInput<Scalar>& x, Mat& a) const { input_->add_to(x, a); }

  /// The pass's stacked recurrent product, W (G N x N) forward and in the tangent pass, W^T backward: with more
  /// than one column, W is packed once for the pass (PackedProduct: Eigen's GEMM kernel without packing W again
  /// on each of the T products, its rows split between the GEMM threads with the same bits on any count).
  void prepare_product(Pass pass, Index columns) {
    transposed_product_ = pass == Pass::backward;
    if (columns < 2) return;
    const Mat& w = this->w();
    if (pass == Pass::backward) product_.emplace(w.data(), w.cols(), w.rows(), columns, true, gemm_threads());
    else product_.emplace(w.data(), w.rows(), w.cols(), columns, false, gemm_threads());
  }

  /// y = op(W) x, or y += op(W) x when `accumulate`, for `cols` columns of x and y (column-major, leading
  /// dimensions ldx and ldy): op(W) = W^T in the backward pass, W otherwise.
  void recurrent_product(const Scalar* x, Index ldx, Scalar* y, Index ldy, Index cols, bool accumulate) const {
    if (product_ && cols > 1 && cols <= product_->columns()) {
      product_->apply(x, ldx, y, ldy, cols, accumulate);
      return;
    }
    using Stride = Eigen::OuterStride<>;
    const bool transpose = transposed_product_;
    const Mat& w = this->w();
    const Index rows = transpose ? w.cols() : w.rows(), depth = transpose ? w.rows() : w.cols();
    const Eigen::Map<const Mat, 0, Stride> xm(x, depth, cols, Stride(ldx));
    Eigen::Map<Mat, 0, Stride> ym(y, rows, cols, Stride(ldy));
    if (!accumulate) ym.setZero();
    if (transpose) ym.noalias() += w.transpose() * xm;
    else ym.noalias() += w * xm;
  }

  /// Adds one trajectory's candidate slope f'(a) and its K Jacobian coefficients (n values each; coefficient k
  /// of the step's statistics is `coefficients[k]`) to the step's statistics. Each quantity's n terms are summed
  /// by a vectorised reduction (partial sums per SIMD lane, fixed by the build: the same bits on every run and
  /// thread count of one binary), then added into the step's total; since 0.3.0 (summing in index order, as
  /// before, made the pass scalar: 4 % of an LSTM's time at B = 32).
  template <std::size_t K>
  void record_statistics(StepStats& st, const Scalar* slope, const std::array<const Scalar*, K>& coefficients) const {
    static_assert(K <= static_cast<std::size_t>(kMaxCoefficients), "more coefficients than StepStats holds");
    const Index n = n_;
    const Scalar level = saturation_level_;
    double sum_abs = 0.0, sum_sq = 0.0;
    Scalar slope_max = 0;
    std::int64_t dead = 0, saturated = 0;
#pragma omp simd reduction(+ : sum_abs, sum_sq, dead, saturated) reduction(max : slope_max)
    for (Index i = 0; i < n; ++i) {
      const Scalar v = std::abs(slope[i]);
      const double w = static_cast<double>(v);
      sum_abs += w;
      sum_sq += w * w;
      slope_max = std::max(slope_max, v);
      dead += v == Scalar(0) ? 1 : 0;
      saturated += v < level ? 1 : 0;
    }
    st.sum_abs += sum_abs;
    st.sum_sq += sum_sq;
    st.max_abs = std::max(st.max_abs, static_cast<double>(slope_max));
    st.dead += dead;
    st.saturated += saturated;
    st.count += n;
    for (std::size_t k = 0; k < K; ++k) {
      const Scalar* c = coefficients[k];
      double sum = 0.0, sq = 0.0;
      Scalar max = 0;
#pragma omp simd reduction(+ : sum, sq) reduction(max : max)
      for (Index i = 0; i < n; ++i) {
        const double w = static_cast<double>(c[i]);
        sum += w;
        sq += w * w;
        max = std::max(max, std::abs(c[i]));
      }
      st.coef_sum[k] += sum;
      st.coef_sq[k] += sq;
      st.coef_max[k] = std::max(st.coef_max[k], static_cast<double>(max));
    }
  }

  /// Whether the `count` values at x are all finite: x - x is 0 for a finite x and NaN for inf or NaN, and the
  /// sum of the differences is 0 exactly when all are 0 (one vectorised pass; Eigen's allFinite is a scalar loop).
  bool finite(const Scalar* x, Index count) const {
    Scalar probe = 0;
#pragma omp simd reduction(+ : probe)
    for (Index i = 0; i < count; ++i) probe += x[i] - x[i];
    return probe == Scalar(0);
  }

  Index n_, blocks_;
  Activation f_, sigmoid_;
  Scalar saturation_level_;
  RecurrentWeights<Scalar> weights_;  // the stacked W at this precision (w())
  std::optional<PackedProduct<Scalar>> product_;  // W or W^T packed for the pass (prepare_product)
  bool transposed_product_ = false;               // the pass multiplies by W^T (backward)
  std::optional<InputProduct<Scalar>> input_;  // U, for the forward pass (prepare_forward)
  Vec b_, b_recurrent_;
  Vec stage_;          // forward: one trajectory's tape column, staged for stream_copy
};

}  // namespace gradflow::detail
