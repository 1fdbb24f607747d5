#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <Eigen/Core>

namespace gradflow {

/// Which kernel runs the recurrent products W H and W^T G of the engine.
enum class GemmBackend {
  eigen,    // Eigen's own GEMM / GEMV (always available)
  openblas  // OpenBLAS dgemm_/sgemm_ (dgemv_/sgemv_ for B = 1), when built with GRADFLOW_WITH_OPENBLAS
};
std::string to_string(GemmBackend b);

/// True when gradflow was built with OpenBLAS.
bool have_openblas();

/// True when the OpenBLAS gradflow runs on has AVX-512 "small matrix" GEMM kernels (its SkylakeX, Cooperlake
/// and SapphireRapids cores: openblas_get_corename()), which beat the packed Eigen kernel on small products.
bool openblas_small_kernels();

/// The backend for an N x N times N x B product of `scalar_bytes`-byte scalars under the current thread
/// count. Environment variable GRADFLOW_GEMM = eigen | openblas | auto (default auto) overrides it, for
/// benchmarks. Auto (measurements in sim/numerics/blas.cpp): for B = 1 Eigen's GEMV on one thread, OpenBLAS's
/// on several. For B > 1 on an OpenBLAS with small-matrix kernels (openblas_small_kernels()), OpenBLAS when
/// N^2 B <= 10^6 and Eigen's GEMM with W packed once per pass (PackedProduct, its rows split between the GEMM
/// threads) above, on any thread count. On other cores the packed Eigen GEMM for B >= 16, and for B >= 4 when
/// N >= 256, at any N; OpenBLAS otherwise (narrow B on small W).
GemmBackend choose_gemm(Eigen::Index n, Eigen::Index batch, std::size_t scalar_bytes);

/// Threads the GEMMs inside one cell may use: Eigen's own kernels (Eigen::setNbThreads) and OpenBLAS's.
/// Returns the previous count. Sweeps across cells set 1, so that no GEMM forks inside a cell.
int set_gemm_threads(int threads);

/// The current GEMM thread count.
int gemm_threads();

/// What the engine's GEMMs run on, e.g. "OpenBLAS 0.3.21 ... (openmp, SkylakeX) + Eigen 3.4.0".
std::string gemm_backend();

namespace detail {
/// y = op(W) x, or y += op(W) x when `accumulate`, with op = transpose ? W^T : W; W is n x n column-major, x
/// and y are n x b column-major. OpenBLAS only (throws std::logic_error when gradflow was built without it).
void blas_product(bool transpose, Eigen::Index n, Eigen::Index b, const double* w, const double* x, double* y,
                  bool accumulate = false);
void blas_product(bool transpose, Eigen::Index n, Eigen::Index b, const float* w, const float* x, float* y,
                  bool accumulate = false);

/// The largest column-major copy of W^T the engine keeps for B = 1 (N^2 * scalar bytes), inside the 30 MB
/// slack of the README's memory formula. (The packed copy of W for B > 1 has no limit: the formula counts it.)
constexpr double kPreparedMaxBytes = 8 << 20;

/// y = op(W) x for a fixed W and batches x of at most b columns, on Eigen's GEMM kernel with W packed once.
/// Eigen's product packs its left operand into the kernel's panel layout on every call, which for the
/// recurrent shapes (N^2 B flops against N^2 scalars copied) is about a quarter of the product's time; BPTT
/// multiplies by the same W 2T times, so the panels are packed here once per pass. Same blocking, kernel and
/// summation order as Eigen's sequential GEMM. With `threads` > 1 each product splits the rows of every block
/// between that many OpenMP threads, at multiples of the kernel's row panel, so every entry is computed by
/// the same kernel calls in the same order: the result is the same to the bit on any thread count. W is read
/// only in the constructor. op(W) may be rectangular: the gated cells' stacked blocks (3N x N forward, its
/// transpose N x 3N backward).
template <class Scalar>
class PackedProduct {
 public:
  /// W column-major, n x n; transpose: op(W) = W^T.
  PackedProduct(const Scalar* w, Eigen::Index n, Eigen::Index b, bool transpose, int threads = 1)
      : PackedProduct(w, n, n, b, transpose, threads) {}
  /// op(W) is rows x depth: W column-major rows x depth (leading dimension rows), or, with `transpose`,
  /// depth x rows (leading dimension depth) and op(W) = W^T.
  PackedProduct(const Scalar* w, Eigen::Index rows, Eigen::Index depth, Eigen::Index b, bool transpose,
                int threads = 1);
  /// y = op(W) x, or y += op(W) x when `accumulate` (the kernel adds into y either way; y = 0 first otherwise),
  /// for x depth x b and y rows x b, both contiguous.
  void apply(const Scalar* x, Scalar* y, bool accumulate = false) const { apply(x, depth_, y, rows_, b_, accumulate); }
  /// The same for the first `cols` (<= b) columns of x and y, column-major with leading dimensions ldx >= depth
  /// and ldy >= rows (e.g. the h rows of an LSTM's (h, c) state).
  void apply(const Scalar* x, Eigen::Index ldx, Scalar* y, Eigen::Index ldy, Eigen::Index cols, bool accumulate) const;

  Eigen::Index rows() const { return rows_; }
  Eigen::Index depth() const { return depth_; }
  Eigen::Index columns() const { return b_; }

 private:
  Eigen::Index rows_, depth_, b_, kc_, mc_, nc_;
  int threads_;
  std::vector<Scalar, Eigen::aligned_allocator<Scalar>> packed_w_;  // panels (i2, k2), i2 outer
  mutable std::vector<Scalar, Eigen::aligned_allocator<Scalar>> packed_x_;
};
}  // namespace detail

}  // namespace gradflow
