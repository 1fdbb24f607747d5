#include "gradflow/numerics/blas.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>

#include <Eigen/Core>
#include <omp.h>

#ifdef GRADFLOW_HAVE_OPENBLAS
// The Fortran BLAS entry points and OpenBLAS's own extensions, declared here so that no cblas.h of a
// particular OpenBLAS variant has to be on the include path.
extern "C" {
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc);
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc);
void dgemv_(const char* t, const int* m, const int* n, const double* alpha, const double* a, const int* lda,
            const double* x, const int* incx, const double* beta, double* y, const int* incy);
void sgemv_(const char* t, const int* m, const int* n, const float* alpha, const float* a, const int* lda,
            const float* x, const int* incx, const float* beta, float* y, const int* incy);
void openblas_set_num_threads(int num_threads);
char* openblas_get_config(void);
char* openblas_get_corename(void);
int openblas_get_parallel(void);
}
#endif

namespace gradflow {

namespace {

// Measured with tools/bench/gemm_limit on one core (AVX-512, Eigen 3.4.0, OpenBLAS 0.3.21), 2 x 1000 products.
// Eigen's GEMM as such packs W on every call; the engine packs it once per pass (detail::PackedProduct,
// "prepared"), which changes the picture. N = 256: B = 2: Eigen 103 ms, prepared 33, OpenBLAS 22; B = 4: 118 /
// 39 / 39; B = 8: 109 / 47 / 93; B = 16: 142 / 83 / 161; B = 32: 210 / 172 / 224. N = 512: B = 4: 436 / 236 /
// 430; B = 8: 669 / 441 / 644; B = 16: 1040 / 609 / 1202. N = 1024 (300 steps): B = 8: 1627 / 678 / 1092;
// B = 16: 2305 / 1089 / 1627. N = 64, B = 8: 10.5 / 4.3 / 1.9; N = 128, B = 8: 17 / 6.3 / 2.2 (small W: the
// narrow GEMM is OpenBLAS's). (The machine was shared while these ran; the ratios held over repeats.) So on
// one thread: Eigen's GEMV for B = 1; the prepared Eigen GEMM for B >= 16, and for B >= 4 once N >= 256;
// OpenBLAS otherwise. Issue 18 lifted the 8 MiB limit on the packed copy (N = 2048, B = 32, double: packed
// 0.68x OpenBLAS's engine time, docs/performance.md) and runs the packed product on several threads too
// (rows split, same bits); B = 1 on several threads stays OpenBLAS's GEMV.
constexpr Eigen::Index kEigenMinBatch = 16;
constexpr Eigen::Index kEigenMinBatchLargeN = 4;
constexpr Eigen::Index kLargeN = 256;

// OpenBLAS's cores with AVX-512 "small matrix" GEMM kernels (SkylakeX, and Cooperlake and SapphireRapids, which
// use its kernels) run an untransposed product directly, without packing, when M N K <= 10^6. Measured on one
// core (Zen 4 with OpenBLAS 0.3.21's Cooperlake core, medians of 7, tools/bench/gemm_limit and a grid of shapes,
// docs/performance.md): OpenBLAS / Eigen with W packed once = 0.70-0.78 for every N^2 B <= 10^6 from N = 64 to
// 512 (N = 256, B = 8: 18.1 against 23.4 us per product; N = 64, B = 244: 34.7 against 49.2; N = 300, B = 11:
// 41 against 53) and 0.91-1.14 just above it (N = 64, B = 245; N = 300, B = 12), 1.9-2.1 at N = 1024, B = 2
// and 4. The transposed product is not run by those kernels (N = 256, B = 8: 34.6 us), so the backward pass
// multiplies by a copy of W^T instead (RecurrentProduct). On such a core: OpenBLAS up to 10^6, Eigen's packed
// product above; OpenBLAS's small kernels are single-threaded, so the choice and the bits do not depend on
// the thread count.
constexpr double kSmallGemmMNK = 1e6;

enum class Override { automatic, eigen, openblas };

Override read_override() {
  const char* v = std::getenv("GRADFLOW_GEMM");
  if (v == nullptr) return Override::automatic;
  const std::string s(v);
  if (s == "eigen") return Override::eigen;
  if (s == "openblas") return Override::openblas;
  return Override::automatic;
}

}  // namespace

std::string to_string(GemmBackend b) { return b == GemmBackend::openblas ? "openblas" : "eigen"; }

bool have_openblas() {
#ifdef GRADFLOW_HAVE_OPENBLAS
  return true;
#else
  return false;
#endif
}

bool openblas_small_kernels() {
#ifdef GRADFLOW_HAVE_OPENBLAS
  static const bool small = [] {
    const std::string core = openblas_get_corename();
    return core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
  }();
  return small;
#else
  return false;
#endif
}

GemmBackend choose_gemm(Eigen::Index n, Eigen::Index batch, std::size_t scalar_bytes) {
  if (!have_openblas()) return GemmBackend::eigen;
  static const Override forced = read_override();
  if (forced == Override::eigen) return GemmBackend::eigen;
  if (forced == Override::openblas) return GemmBackend::openblas;
  (void)scalar_bytes;  // the packed copy of W is N^2 scalars at any N (README's memory formula counts it)
  if (batch == 1) return gemm_threads() > 1 ? GemmBackend::openblas : GemmBackend::eigen;
  if (openblas_small_kernels())
    return double(n) * double(n) * double(batch) <= kSmallGemmMNK ? GemmBackend::openblas : GemmBackend::eigen;
  if (batch >= kEigenMinBatch || (n >= kLargeN && batch >= kEigenMinBatchLargeN)) return GemmBackend::eigen;
  return GemmBackend::openblas;
}

int set_gemm_threads(int threads) {
  const int previous = gemm_threads();
  if (threads < 1) threads = 1;
  Eigen::setNbThreads(threads);
#ifdef GRADFLOW_HAVE_OPENBLAS
  openblas_set_num_threads(threads);
#endif
  return previous;
}

int gemm_threads() { return Eigen::nbThreads(); }

std::string gemm_backend() {
  std::string eigen = "Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) +
                      "." + std::to_string(EIGEN_MINOR_VERSION);
#ifdef GRADFLOW_HAVE_OPENBLAS
  const int parallel = openblas_get_parallel();
  const char* mode = parallel == 0 ? "sequential" : parallel == 1 ? "pthread" : "openmp";
  return std::string(openblas_get_config()) + " (" + mode + ", " + openblas_get_corename() + ") + " + eigen;
#else
  return eigen;
#endif
}

namespace detail {

#ifdef GRADFLOW_HAVE_OPENBLAS
void blas_product(bool transpose, Eigen::Index n, Eigen::Index b, const double* w, const double* x, double* y,
                  bool accumulate) {
  const int in = static_cast<int>(n), ib = static_cast<int>(b), inc = 1;
  const double one = 1.0, beta = accumulate ? one : 0.0;
  const char t = transpose ? 'T' : 'N';
  if (b == 1) dgemv_(&t, &in, &in, &one, w, &in, x, &inc, &beta, y, &inc);
  else dgemm_(&t, "N", &in, &ib, &in, &one, w, &in, x, &in, &beta, y, &in);
}
void blas_product(bool transpose, Eigen::Index n, Eigen::Index b, const float* w, const float* x, float* y,
                  bool accumulate) {
  const int in = static_cast<int>(n), ib = static_cast<int>(b), inc = 1;
  const float one = 1.0f, beta = accumulate ? one : 0.0f;
  const char t = transpose ? 'T' : 'N';
  if (b == 1) sgemv_(&t, &in, &in, &one, w, &in, x, &inc, &beta, y, &inc);
  else sgemm_(&t, "N", &in, &ib, &in, &one, w, &in, x, &in, &beta, y, &in);
}
#else
void blas_product(bool, Eigen::Index, Eigen::Index, const double*, const double*, double*, bool) {
  throw std::logic_error("blas_product: gradflow was built without OpenBLAS");
}
void blas_product(bool, Eigen::Index, Eigen::Index, const float*, const float*, float*, bool) {
  throw std::logic_error("blas_product: gradflow was built without OpenBLAS");
}
#endif

// Eigen 3.4's sequential GEMM (Eigen/src/Core/products/GeneralMatrixMatrix.h) with the packing of the left
// operand hoisted out: the same gebp_traits, blocking sizes, pack routines and kernel. The result is
// accumulated over the k2 panels in the same order, so it is the number Eigen's own product gives.
namespace {
using Eigen::internal::const_blas_data_mapper;
template <class Scalar>
using GebpTraits = Eigen::internal::gebp_traits<Scalar, Scalar>;
template <class Scalar, int Order>
using PackLhs = Eigen::internal::gemm_pack_lhs<Scalar, Eigen::Index, const_blas_data_mapper<Scalar, Eigen::Index, Order>,
                                               GebpTraits<Scalar>::mr, GebpTraits<Scalar>::LhsProgress,
                                               typename GebpTraits<Scalar>::LhsPacket4Packing, Order>;
template <class Scalar>
using ResMapper = Eigen::internal::blas_data_mapper<Scalar, Eigen::Index, Eigen::ColMajor, Eigen::Unaligned, 1>;
}  // namespace

template <class Scalar>
PackedProduct<Scalar>::PackedProduct(const Scalar* w, Eigen::Index rows, Eigen::Index depth, Eigen::Index b,
                                     bool transpose, int threads)
    : rows_(rows), depth_(depth), b_(b), kc_(depth), mc_(rows), nc_(b), threads_(std::max(1, threads)) {
  // The blocking of Eigen's sequential GEMM whatever the thread count: the threads split the rows of each
  // block (below), so that every entry of y is summed in the same order on any number of threads.
  Eigen::internal::computeProductBlockingSizes<Scalar, Scalar>(kc_, mc_, nc_, Eigen::Index(1));
  packed_w_.resize(static_cast<std::size_t>(rows) * static_cast<std::size_t>(depth));
  packed_x_.resize(static_cast<std::size_t>(depth) * static_cast<std::size_t>(nc_));
  Scalar* out = packed_w_.data();
  for (Eigen::Index i2 = 0; i2 < rows; i2 += mc_) {
    const Eigen::Index mc = std::min(i2 + mc_, rows) - i2;
    for (Eigen::Index k2 = 0; k2 < depth; k2 += kc_) {
      const Eigen::Index kc = std::min(k2 + kc_, depth) - k2;
      // op(W)(i, k) = W(k, i) for the transpose: W (depth x rows) read row-major is W^T column-major.
      if (transpose) {
        PackLhs<Scalar, Eigen::RowMajor>()(
            out, const_blas_data_mapper<Scalar, Eigen::Index, Eigen::RowMajor>(w, depth).getSubMapper(i2, k2), kc, mc);
      } else {
        PackLhs<Scalar, Eigen::ColMajor>()(
            out, const_blas_data_mapper<Scalar, Eigen::Index, Eigen::ColMajor>(w, rows).getSubMapper(i2, k2), kc, mc);
      }
      out += kc * mc;
    }
  }
}

template <class Scalar>
void PackedProduct<Scalar>::apply(const Scalar* x, Eigen::Index ldx, Scalar* y, Eigen::Index ldy, Eigen::Index cols,
                                  bool accumulate) const {
  using Traits = GebpTraits<Scalar>;
  using RhsMapper = const_blas_data_mapper<Scalar, Eigen::Index, Eigen::ColMajor>;
  if (cols > b_ || ldx < depth_ || ldy < rows_) throw std::logic_error("PackedProduct::apply: operand shapes");
  const RhsMapper rhs(x, ldx);
  const ResMapper<Scalar> res(y, ldy, 1);
  // Thread `part` of `parts` runs rows [lo, hi) of every row block, the block cut at multiples of the kernel's
  // row panel (mr): the packed panels of a sub-range are a contiguous slice of the block's, and each row goes
  // through the same micro-kernel, in the same order over k, as in one call on the block. It also zeroes its
  // own rows of y (unless accumulating) and packs its share of x's column panels (nr columns each: a panel's
  // packed layout does not depend on the others), so that on several threads the whole product is one parallel
  // region with one barrier per column block, and no thread waits while another packs.
  auto row_range = [&](Eigen::Index mc, int part, int parts) {
    const Eigen::Index panels = (mc + Traits::mr - 1) / Traits::mr;
    return std::pair<Eigen::Index, Eigen::Index>(std::min(mc, panels * part / parts * Traits::mr),
                                                 std::min(mc, panels * (part + 1) / parts * Traits::mr));
  };
  auto run = [&](int part, int parts) {
    Eigen::internal::gemm_pack_rhs<Scalar, Eigen::Index, RhsMapper, Traits::nr, Eigen::ColMajor> pack_rhs;
    Eigen::internal::gebp_kernel<Scalar, Scalar, Eigen::Index, ResMapper<Scalar>, Traits::mr, Traits::nr, false,
                                 false> gebp;
    if (!accumulate) {
      for (Eigen::Index i2 = 0; i2 < rows_; i2 += mc_) {
        const auto [lo, hi] = row_range(std::min(i2 + mc_, rows_) - i2, part, parts);
        for (Eigen::Index j = 0; j < cols; ++j) std::fill(y + j * ldy + i2 + lo, y + j * ldy + i2 + hi, Scalar(0));
      }
    }
    for (Eigen::Index j2 = 0; j2 < cols; j2 += nc_) {
      const Eigen::Index nc = std::min(j2 + nc_, cols) - j2;
      // Every depth block (k2, j2) of x packed once, at offset k2 * nc: shared by all row blocks and threads.
      // This thread packs column panels [c0, c1) (multiples of nr; the last thread takes the remainder).
      const Eigen::Index col_panels = nc / Traits::nr;
      const Eigen::Index c0 = col_panels * part / parts * Traits::nr;
      const Eigen::Index c1 = part + 1 == parts ? nc : col_panels * (part + 1) / parts * Traits::nr;
      if (parts > 1) {
#pragma omp barrier  // the previous column block's products have read packed_x_
      }
      if (c1 > c0) {
        for (Eigen::Index k2 = 0; k2 < depth_; k2 += kc_) {
          const Eigen::Index kc = std::min(k2 + kc_, depth_) - k2;
          pack_rhs(packed_x_.data() + k2 * nc + c0 * kc, rhs.getSubMapper(k2, j2 + c0), kc, c1 - c0);
        }
      }
      if (parts > 1) {
#pragma omp barrier  // every panel of x is packed
      }
      const Scalar* panel = packed_w_.data();
      for (Eigen::Index i2 = 0; i2 < rows_; i2 += mc_) {
        const Eigen::Index mc = std::min(i2 + mc_, rows_) - i2;
        const auto [lo, hi] = row_range(mc, part, parts);
        for (Eigen::Index k2 = 0; k2 < depth_; k2 += kc_) {
          const Eigen::Index kc = std::min(k2 + kc_, depth_) - k2;
          if (hi > lo)
            gebp(res.getSubMapper(i2 + lo, j2), panel + lo * kc, packed_x_.data() + k2 * nc, hi - lo, kc, nc,
                 Scalar(1));
          panel += kc * mc;
        }
      }
    }
  };
  if (threads_ == 1) {
    run(0, 1);
  } else {
#pragma omp parallel num_threads(threads_)
    run(omp_get_thread_num(), omp_get_num_threads());
  }
}

template class PackedProduct<float>;
template class PackedProduct<double>;

}  // namespace detail

}  // namespace gradflow
