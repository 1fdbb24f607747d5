#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <utility>

#include <catch2/catch.hpp>

#include "gradflow/numerics/blas.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using gradflow::test::kProductOrderFactor;

TEMPLATE_TEST_CASE("OpenBLAS and Eigen give the recurrent products W x and W^T x to rounding (N = 48, B = 1, 5)",
                   "[blas]", float, double) {
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  if (!have_openblas()) {
    WARN("built without OpenBLAS: nothing to compare");
    return;
  }
  std::srand(11);
  const Eigen::Index n = 48;
  const Mat w = Mat::Random(n, n);
  for (Eigen::Index b : {1, 5}) {
    const Mat x = Mat::Random(n, b);
    for (bool transpose : {false, true}) {
      Mat y(n, b);
      detail::blas_product(transpose, n, b, w.data(), x.data(), y.data());
      const Mat ref = transpose ? Mat(w.transpose() * x) : Mat(w * x);
      const double bound = kProductOrderFactor * double(n) * std::numeric_limits<TestType>::epsilon() *
                           double(w.norm()) * double(x.norm());
      INFO("B = " << b << ", transpose = " << transpose);
      CHECK(double((y - ref).norm()) <= bound);
      // accumulate: y += op(W) x (beta = 1)
      const Mat start = Mat::Random(n, b);
      Mat acc = start;
      detail::blas_product(transpose, n, b, w.data(), x.data(), acc.data(), /*accumulate=*/true);
      CHECK(double((acc - start - ref).norm()) <=
            bound + 2 * std::numeric_limits<TestType>::epsilon() * double(start.norm()));
    }
  }
}

TEST_CASE("choose_gemm: GEMV for B = 1; OpenBLAS's small-matrix kernels up to N^2 B = 10^6 where it has them, else W "
          "packed once for B >= 16 or N >= 256 and B >= 4 at any N and thread count, OpenBLAS otherwise",
          "[blas]") {
  if (!have_openblas() || std::getenv("GRADFLOW_GEMM") != nullptr) {
    CHECK(choose_gemm(64, 1, 8) == (have_openblas() && std::getenv("GRADFLOW_GEMM") &&
                                    std::string(std::getenv("GRADFLOW_GEMM")) == "openblas"
                                        ? GemmBackend::openblas
                                        : GemmBackend::eigen));
    return;
  }
  const int saved = set_gemm_threads(1);
  CHECK(choose_gemm(1024, 1, 8) == GemmBackend::eigen);     // GEMV
  if (openblas_small_kernels()) {
    for (int threads : {1, 2}) {
      INFO("threads " << threads);
      set_gemm_threads(threads);
      CHECK(choose_gemm(256, 8, 8) == GemmBackend::openblas);   // the default sweep's shape
      CHECK(choose_gemm(256, 8, 4) == GemmBackend::openblas);
      CHECK(choose_gemm(64, 244, 8) == GemmBackend::openblas);  // N^2 B = 999424
      CHECK(choose_gemm(64, 245, 8) == GemmBackend::eigen);     // N^2 B = 1003520
      CHECK(choose_gemm(200, 25, 8) == GemmBackend::openblas);  // exactly 10^6
      CHECK(choose_gemm(256, 16, 8) == GemmBackend::eigen);
      CHECK(choose_gemm(256, 32, 8) == GemmBackend::eigen);
      CHECK(choose_gemm(1024, 2, 8) == GemmBackend::eigen);
      CHECK(choose_gemm(2048, 16, 8) == GemmBackend::eigen);
    }
  } else {
    CHECK(choose_gemm(256, 32, 8) == GemmBackend::eigen);    // 512 KiB
    CHECK(choose_gemm(256, 32, 4) == GemmBackend::eigen);
    CHECK(choose_gemm(256, 8, 8) == GemmBackend::eigen);      // W packed once beats OpenBLAS from N = 256, B = 4
    CHECK(choose_gemm(256, 4, 8) == GemmBackend::eigen);
    CHECK(choose_gemm(256, 2, 8) == GemmBackend::openblas);   // narrowest B
    CHECK(choose_gemm(128, 8, 8) == GemmBackend::openblas);   // narrow B on a small W
    CHECK(choose_gemm(64, 2, 8) == GemmBackend::openblas);
    CHECK(choose_gemm(64, 16, 8) == GemmBackend::eigen);
    CHECK(choose_gemm(1024, 16, 8) == GemmBackend::eigen);
    CHECK(choose_gemm(2048, 16, 8) == GemmBackend::eigen);    // packed at any N (issue 18)
    CHECK(choose_gemm(2048, 2, 8) == GemmBackend::openblas);
  }
  set_gemm_threads(2);
  CHECK(gemm_threads() == 2);
  CHECK(choose_gemm(256, 32, 8) == GemmBackend::eigen);     // the packed product, rows split between threads
  CHECK(choose_gemm(1024, 16, 8) == GemmBackend::eigen);
  CHECK(choose_gemm(1024, 1, 8) == GemmBackend::openblas);  // GEMV on several threads
  set_gemm_threads(saved);
}

TEMPLATE_TEST_CASE("OpenBLAS's small-matrix products give the same bits on 1 and 2 threads (the shapes choose_gemm "
                   "gives them)", "[blas]", float, double) {
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  if (!openblas_small_kernels()) {
    WARN("this OpenBLAS has no small-matrix kernels: the engine does not use it for B > 1 on several threads");
    return;
  }
  std::srand(12);
  for (const auto& [n, b] : {std::pair<Eigen::Index, Eigen::Index>{256, 8}, {100, 100}, {64, 3}}) {
    const Mat w = Mat::Random(n, n), x = Mat::Random(n, b);
    Mat y1(n, b), y2(n, b);
    const int saved = set_gemm_threads(1);
    detail::blas_product(false, n, b, w.data(), x.data(), y1.data());
    set_gemm_threads(2);
    detail::blas_product(false, n, b, w.data(), x.data(), y2.data());
    set_gemm_threads(saved);
    INFO("N = " << n << ", B = " << b);
    CHECK(y1 == y2);
  }
}

TEMPLATE_TEST_CASE("PackedProduct (W packed once) equals Eigen's own product, across the cache blocking",
                   "[blas]", float, double) {
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  std::srand(5);
  // n = 1100 is beyond one kc x mc block for both precisions, so several panels (i2, k2) are packed and
  // the accumulation over k2 is exercised; b = 70 exceeds nr and is not a multiple of it.
  for (Eigen::Index n : {1, 7, 64, 300, 1100}) {
    const Mat w = Mat::Random(n, n);
    for (Eigen::Index b : {2, 5, 70}) {
      const Mat x = Mat::Random(n, b);
      for (bool transpose : {false, true}) {
        const detail::PackedProduct<TestType> product(w.data(), n, b, transpose);
        Mat y = Mat::Constant(n, b, TestType(7));  // apply() overwrites y
        product.apply(x.data(), y.data());
        product.apply(x.data(), y.data());  // reusable: the packed W is not consumed
        const Mat ref = transpose ? Mat(w.transpose() * x) : Mat(w * x);
        const double bound = kProductOrderFactor * double(n) * std::numeric_limits<TestType>::epsilon() *
                             double(w.norm()) * double(x.norm());
        INFO("N = " << n << ", B = " << b << ", transpose = " << transpose);
        CHECK(double((y - ref).norm()) <= bound);
        // accumulate: the kernel adds into y as it stands (how the engine starts from the bias)
        const Mat start = Mat::Random(n, b);
        Mat acc = start;
        product.apply(x.data(), acc.data(), /*accumulate=*/true);
        CHECK(double((acc - start - ref).norm()) <=
              bound + 2 * std::numeric_limits<TestType>::epsilon() * double(start.norm()));
      }
    }
  }
}

TEMPLATE_TEST_CASE("PackedProduct of a rectangular W (the gated cells' stacked blocks), strided operands",
                   "[blas]", float, double) {
  // Forward W (G N x N) times h, backward W^T (N x G N) times the stacked coefficients; the LSTM's h rows sit
  // in a (h, c) state, so x or y may have a leading dimension larger than their rows, and a pass may use fewer
  // columns than it was built for. Rows outside op(W)'s must not be touched.
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  std::srand(17);
  for (Eigen::Index n : {5, 64, 700}) {
    for (Eigen::Index g : {3, 4}) {
      const Mat w = Mat::Random(g * n, n);
      for (bool transpose : {false, true}) {
        const Eigen::Index rows = transpose ? n : g * n, depth = transpose ? g * n : n, b = 9;
        const Mat op = transpose ? Mat(w.transpose()) : w;
        for (int threads : {1, 2}) {
          const detail::PackedProduct<TestType> product(w.data(), rows, depth, b, transpose, threads);
          CHECK(product.rows() == rows);
          CHECK(product.depth() == depth);
          const Mat x = Mat::Random(depth + 3, b);  // leading dimension depth + 3
          Mat y = Mat::Constant(2 * rows, b, TestType(7));  // leading dimension 2 rows: the lower half is kept
          for (Eigen::Index cols : {b, Eigen::Index(4)}) {
            product.apply(x.data(), x.rows(), y.data(), y.rows(), cols, false);
            const Mat ref = op * x.topLeftCorner(depth, cols);
            const double bound = kProductOrderFactor * double(depth) * std::numeric_limits<TestType>::epsilon() *
                                 double(op.norm()) * double(x.norm());
            INFO("N = " << n << ", G = " << g << ", transpose = " << transpose << ", columns = " << cols);
            CHECK(double((y.topLeftCorner(rows, cols) - ref).norm()) <= bound);
            CHECK((y.bottomRows(rows).array() == TestType(7)).all());
            Mat acc = y;
            product.apply(x.data(), x.rows(), acc.data(), acc.rows(), cols, true);
            CHECK(double((acc.topLeftCorner(rows, cols) - 2 * ref).norm()) <= 3 * bound);
          }
        }
      }
    }
  }
  const Mat w = Mat::Random(12, 4);
  const detail::PackedProduct<TestType> product(w.data(), 12, 4, 3, false);
  Mat x(4, 5), y(12, 5);
  CHECK_THROWS_AS(product.apply(x.data(), 4, y.data(), 12, 5, false), std::logic_error);  // more columns than built for
}

TEMPLATE_TEST_CASE("PackedProduct on several threads gives the one-thread result to the bit", "[blas]", float, double) {
  // The threads split each block's rows at multiples of the kernel's row panel; every entry must go through
  // the same kernel calls in the same order. n = 1100 has several row and depth blocks; n = 37 has fewer
  // row panels than some thread counts (empty shares); b = 70 is not a multiple of nr.
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  std::srand(11);
  for (Eigen::Index n : {37, 300, 1100}) {
    const Mat w = Mat::Random(n, n);
    for (Eigen::Index b : {4, 70}) {
      const Mat x = Mat::Random(n, b);
      for (bool transpose : {false, true}) {
        const detail::PackedProduct<TestType> one(w.data(), n, b, transpose, 1);
        Mat y1(n, b);
        one.apply(x.data(), y1.data());
        for (int threads : {2, 3, 5}) {
          const detail::PackedProduct<TestType> many(w.data(), n, b, transpose, threads);
          Mat y(n, b);
          many.apply(x.data(), y.data());
          INFO("N = " << n << ", B = " << b << ", transpose = " << transpose << ", threads = " << threads);
          CHECK((y.array() == y1.array()).all());
          // and the product is right (not merely equal): against Eigen's own
          const Mat ref = transpose ? Mat(w.transpose() * x) : Mat(w * x);
          CHECK(double((y - ref).norm()) <= kProductOrderFactor * double(n) *
                                                 std::numeric_limits<TestType>::epsilon() * double(w.norm()) *
                                                 double(x.norm()));
        }
      }
    }
  }
}
