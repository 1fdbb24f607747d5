#pragma once
// The recurrent matrix of a Model at the precision of a pass, applied to blocks of vectors. Used by the
// engine's sparse path and the tangent dynamics of the cells. Internal to the library: not installed.

#include <type_traits>

#include <Eigen/Core>
#include <Eigen/SparseCore>

#include "gradflow/model/network.hpp"

namespace gradflow::detail {

/// y = W x (or W^T x, built `transposed`) for N x m blocks x at precision Scalar. Dense W: used in place
/// when Scalar is double (a cast copy otherwise) and multiplied by Eigen's GEMM. Sparse W (Model::w_sparse):
/// compressed rows times a row-major copy of the block, so each nonzero updates m contiguous scalars (Eigen
/// parallelises the rows over Eigen::nbThreads()); the transposed product keeps its own compressed-row copy
/// of W^T, so that it gathers as well. The engine runs dense W through its own kernels (RecurrentProduct in
/// engine.cpp) and uses this for sparse W only.
template <class Scalar>
class RecurrentWeights {
 public:
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using RowMat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Sparse = Eigen::SparseMatrix<Scalar, Eigen::RowMajor>;

  RecurrentWeights(const Model& model, bool transposed) : transposed_(transposed) {
    if (model.w_sparse) {
      if constexpr (std::is_same_v<Scalar, double>) {
        if (!transposed) sparse_ref_ = model.w_sparse.get();
        else sparse_copy_ = model.w_sparse->transpose();
      } else {
        if (!transposed) sparse_copy_ = model.w_sparse->template cast<Scalar>();
        else sparse_copy_ = model.w_sparse->transpose().template cast<Scalar>();
      }
      if (!sparse_ref_) sparse_ref_ = &sparse_copy_;
    } else if constexpr (std::is_same_v<Scalar, double>) {
      dense_ref_ = &model.w;
    } else {
      dense_copy_ = model.w.cast<Scalar>();
    }
  }

  bool is_sparse() const { return sparse_ref_ != nullptr; }

  /// The dense W (not transposed) at this precision; only without sparse storage.
  const Mat& dense() const {
    if constexpr (std::is_same_v<Scalar, double>) return *dense_ref_;
    else return dense_copy_;
  }

  /// out = op(W) x, or out += op(W) x when `accumulate`.
  void apply(const Mat& x, Mat& out, bool accumulate = false) {
    if (sparse_ref_) {
      x_rows_ = x;
      out_rows_.noalias() = *sparse_ref_ * x_rows_;
      if (accumulate) out += out_rows_;
      else out = out_rows_;
      return;
    }
    const Mat& w = dense();
    if (accumulate) {
      if (transposed_) out.noalias() += w.transpose() * x;
      else out.noalias() += w * x;
    } else {
      if (transposed_) out.noalias() = w.transpose() * x;
      else out.noalias() = w * x;
    }
  }

 private:
  bool transposed_;
  const Eigen::MatrixXd* dense_ref_ = nullptr;
  Mat dense_copy_;
  const Sparse* sparse_ref_ = nullptr;
  Sparse sparse_copy_;
  RowMat x_rows_, out_rows_;  // scratch of the sparse product
};

}  // namespace gradflow::detail
