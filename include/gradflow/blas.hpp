#pragma once

#include <cstddef>
#include <string>

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

/// The backend for an N x N times N x B product of `scalar_bytes`-byte scalars under the current thread
/// count. Environment variable GRADFLOW_GEMM = eigen | openblas | auto (default auto) overrides it, for
/// benchmarks. Auto, on one thread (measurements in sim/blas.cpp): Eigen's GEMV for B = 1, Eigen's GEMM for
/// B >= 16 while W fits in L2 (N^2 * scalar_bytes <= 1 MiB); OpenBLAS for 2 <= B < 16 (where Eigen's GEMM is
/// up to 4x slower), for larger W, and whenever the GEMM has several threads.
GemmBackend choose_gemm(Eigen::Index n, Eigen::Index batch, std::size_t scalar_bytes);

/// Threads the GEMMs inside one cell may use: Eigen's own kernels (Eigen::setNbThreads) and OpenBLAS's.
/// Returns the previous count. Sweeps across cells set 1, so that no GEMM forks inside a cell.
int set_gemm_threads(int threads);

/// The current GEMM thread count.
int gemm_threads();

/// What the engine's GEMMs run on, e.g. "OpenBLAS 0.3.21 ... (openmp, SkylakeX) + Eigen 3.4.0".
std::string gemm_backend();

namespace detail {
/// y = op(W) x with op = transpose ? W^T : W; W is n x n column-major, x and y are n x b column-major.
/// OpenBLAS only (throws std::logic_error when gradflow was built without it).
void blas_product(bool transpose, Eigen::Index n, Eigen::Index b, const double* w, const double* x, double* y);
void blas_product(bool transpose, Eigen::Index n, Eigen::Index b, const float* w, const float* x, float* y);
}  // namespace detail

}  // namespace gradflow
