#pragma once
// The recurrent products of the engine's passes, y = W x or y = W^T x for N x B blocks, on the fastest kernel
// for the shape and storage. Internal to the engine: not installed.

#include <optional>

#include <Eigen/Core>

#include "gradflow/engine/cell.hpp"
#include "gradflow/model/network.hpp"
#include "gradflow/numerics/blas.hpp"
#include "recurrent_weights.hpp"

namespace gradflow::detail {

/// f(j) for j = 0..count - 1, split between `threads` OpenMP threads (static schedule) when threads > 1: the
/// per-column (per-trajectory) elementwise work of a step beside the product that splits its rows. Each f(j)
/// touches column j only, so the result does not depend on the thread count or on which thread runs j.
template <class F>
void for_columns(Eigen::Index count, int threads, F&& f) {
  if (threads > 1 && count > 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (Eigen::Index j = 0; j < count; ++j) f(j);
  } else {
    for (Eigen::Index j = 0; j < count; ++j) f(j);
  }
}

/// a += U x_t, the input term of a forward step, for U (rows x dim) at precision Scalar. Inputs drawn per
/// trajectory (B > 1 columns) go through U packed once for the pass (PackedProduct: Eigen's GEMM kernel, blocking
/// and order over the input dimension, so the bits of Eigen's product a += U X, without packing U again at every
/// step: ~1 % of an LSTM's time at B = 32); where Eigen itself would not run its GEMM kernel (a product with
/// rows + dim + B < EIGEN_GEMM_TO_COEFFBASED_THRESHOLD, which it evaluates coefficient by coefficient), and for a
/// shared input (one matrix-vector product added to every column), StepInput::add_to. The packed product runs on
/// the GEMM threads only from 2^21 flops on (rows dim B, e.g. N = 1024 with dim = 64 and B = 16): the usual
/// input (dim << N) is less work than starting a parallel region. Its bits do not depend on the thread count.
template <class Scalar>
class InputProduct {
  static constexpr double kParallelFlops = double(1 << 21);

 public:
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  InputProduct(const Eigen::MatrixXd& u, Eigen::Index columns) : u_(u.cast<Scalar>()) {
    if (columns > 1 && u_.size() > 0 && u_.rows() + u_.cols() + columns >= EIGEN_GEMM_TO_COEFFBASED_THRESHOLD)
      packed_.emplace(u_.data(), u_.rows(), u_.cols(), columns, false,
                      2.0 * double(u_.rows()) * double(u_.cols()) * double(columns) >= kParallelFlops ? gemm_threads() : 1);
  }
  /// a += U x_t for the step input x and the pre-activations a (rows x B).
  void add_to(const StepInput<Scalar>& x, Mat& a) const {
    const Mat* xs = x.per_trajectory;
    if (xs && packed_ && xs->cols() == packed_->columns()) {
      packed_->apply(xs->data(), xs->rows(), a.data(), a.rows(), xs->cols(), true);
      return;
    }
    x.add_to(a, u_);
  }

 private:
  Mat u_;
  std::optional<PackedProduct<Scalar>> packed_;
};

/// The recurrent products of one pass, y = W x (forward) or y = W^T x (backward) for N x B blocks x, on the
/// kernel choose_gemm() picks for the shape: Eigen's GEMV (B = 1), Eigen's GEMM kernel with W packed once
/// per pass (PackedProduct), or OpenBLAS. Writes y without allocating.
template <class Scalar>
class RecurrentProduct {
 public:
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  RecurrentProduct(const Mat& w, Eigen::Index batch, bool transpose)
      : w_(w), batch_(batch), transpose_(transpose), backend_(choose_gemm(w.rows(), batch, sizeof(Scalar))) {
    const bool small = double(w.size()) * sizeof(Scalar) <= kPreparedMaxBytes;
    // W packed once per pass at any N (a copy of N^2 scalars, in the README's memory formula); the rows of
    // each product are split between the GEMM threads, with the same result on any thread count.
    if (backend_ == GemmBackend::eigen && batch > 1) packed_.emplace(w.data(), w.rows(), batch, transpose, gemm_threads());
    // B = 1 backward: Eigen's GEMV runs W^T x as dot products, slower in the engine than its column-major
    // kernel; a column-major copy of W^T is worth its N^2 scalars while it is small.
    if (backend_ == GemmBackend::eigen && batch == 1 && transpose && small) w_transposed_ = w.transpose();
    // B > 1 backward on OpenBLAS: its small-matrix kernels run only the untransposed product (blas.cpp), so
    // W^T x is W^T's copy times x (no packed copy on this backend: the copy takes its place in the formula).
    if (backend_ == GemmBackend::openblas && batch > 1 && transpose) w_transposed_ = w.transpose();
  }

  /// y = op(W) x, or y += op(W) x when `accumulate` (how the forward pass starts a from the bias for free).
  void apply(const Scalar* x, Scalar* y, bool accumulate = false) const {
    const Eigen::Index n = w_.rows();
    if (packed_) {
      packed_->apply(x, y, accumulate);
      return;
    }
    if (backend_ == GemmBackend::openblas) {
      if (w_transposed_.size() != 0) blas_product(false, n, batch_, w_transposed_.data(), x, y, accumulate);
      else blas_product(transpose_, n, batch_, w_.data(), x, y, accumulate);
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
    // Not reached for B > 1 on Eigen's backend (packed above); kept for completeness.
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
  std::optional<PackedProduct<Scalar>> packed_;
  Mat w_transposed_;
};

/// The recurrent product of one pass, whatever stores W: RecurrentProduct's kernels for dense W, the
/// compressed-row product (RecurrentWeights) for sparse W.
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
  RecurrentWeights<Scalar> weights_;
  std::optional<RecurrentProduct<Scalar>> dense_;
};

}  // namespace gradflow::detail
