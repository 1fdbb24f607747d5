// The GEMM limit of a BPTT run: the recurrent products alone, with nothing else, for the same shapes as
// gradflow's engine. Per step: A = W H (forward, N x N times N x B) and G = W^T D (backward), T steps each,
// i.e. 4 N^2 B T flops. Times Eigen's own kernel and OpenBLAS (called directly, through the library's
// detail::blas_product: dgemm_ / sgemm_, or dgemv_ / sgemv_ when B = 1, as Eigen does with EIGEN_USE_BLAS)
// and Eigen's kernels with W prepared once as gradflow's engine runs them (B > 1: W packed once,
// detail::PackedProduct, rows split between the threads; B = 1, one thread: GEMV on a column-major copy of
// W^T), so that "fraction of the GEMM limit" is against the fastest of them. Eigen products here are Eigen's own (no EIGEN_USE_BLAS).
// --blocks G: the gated cells' stacked product instead, W of G N x N (GRU 3, LSTM 4): A = W H is G N x B and
// G = W^T D is N x B, 4 G N^2 B T flops; OpenBLAS is not timed there (the engine's square wrapper only).
//
//   gemm_limit --n 256 --b 32 --t 1000 --dtype float64 --threads 1 --repeat 5 [--blocks 3]
// prints {"n", "b", "t", "dtype", "threads", "flops", "eigen": [seconds...], "openblas": [seconds...],
// "eigen_prepared": [seconds...] (empty for B = 1 on several threads)}.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include "gradflow/numerics/blas.hpp"

namespace {

using Clock = std::chrono::steady_clock;

template <class Scalar>
nlohmann::json measure(int n, int b, int t, int threads, int repeat, int blocks) {
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  const int m = blocks * n;  // rows of W: n, or the stacked blocks of a gated cell
  const Mat w = Mat::Random(m, n) / Scalar(std::sqrt(double(n)));
  // Fixed tanh-like operands in [-1, 1]: every product reads the same operand and overwrites the same result,
  // as the engine's products read h_{t-1} (or f' .* g_t) just written and overwrite one scratch block. Fixed
  // operands cannot underflow into subnormals (an earlier version chained x <- 0.5 W^T W x across steps and
  // repetitions, which reaches them in float32 after ~200 steps) nor overflow.
  const Mat x = Mat::Random(n, b), d = Mat::Random(m, b);
  Mat y(m, b), g(n, b);
  std::vector<double> eigen, blas, prepared;
  gradflow::set_gemm_threads(threads);  // Eigen's and OpenBLAS's thread counts
  // Each variant runs like the engine's two passes: T forward products W H, then T backward products W^T D
  // (not interleaved: at N = 1024 interleaving streams two 8 MB copies of W per step through the caches, the
  // engine one per pass).
  const auto seconds = [](Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  for (int r = 0; r <= repeat; ++r) {  // r = 0: warm-up (thread start-up, page faults)
    auto start = Clock::now();
    for (int s = 0; s < t; ++s) y.noalias() = w * x;
    for (int s = 0; s < t; ++s) g.noalias() = w.transpose() * d;
    const double e = seconds(start);
    start = Clock::now();
    if (blocks == 1) {
      // As the engine runs OpenBLAS: B > 1 backward on a copy of W^T (its small-matrix kernels run only the
      // untransposed product), copy included; B = 1 dgemv_ with W^T.
      for (int s = 0; s < t; ++s) gradflow::detail::blas_product(false, n, b, w.data(), x.data(), y.data());
      if (b > 1) {
        const Mat wt = w.transpose();
        for (int s = 0; s < t; ++s) gradflow::detail::blas_product(false, n, b, wt.data(), d.data(), g.data());
      } else {
        for (int s = 0; s < t; ++s) gradflow::detail::blas_product(true, n, b, w.data(), d.data(), g.data());
      }
    }
    const double o = seconds(start);
    if (threads == 1 || b > 1) {
      // Eigen's kernels with W prepared once per pass, as gradflow's engine runs them: B > 1, the GEMM with W
      // packed once (detail::PackedProduct, its rows split between the threads); B = 1 (one thread), the
      // column-major GEMV on a copy of W^T. Preparation included.
      start = Clock::now();
      if (b > 1) {
        {
          const gradflow::detail::PackedProduct<Scalar> forward(w.data(), m, n, b, false, threads);
          for (int s = 0; s < t; ++s) forward.apply(x.data(), y.data());
        }
        const gradflow::detail::PackedProduct<Scalar> backward(w.data(), n, m, b, true, threads);
        for (int s = 0; s < t; ++s) backward.apply(d.data(), g.data());
      } else {
        for (int s = 0; s < t; ++s) y.noalias() = w * x;
        const Mat wt = w.transpose();
        for (int s = 0; s < t; ++s) g.noalias() = wt * d;
      }
      if (r > 0) prepared.push_back(seconds(start));
    }
    if (r > 0) {
      eigen.push_back(e);
      if (blocks == 1) blas.push_back(o);
    }
  }
  if (!y.allFinite() || !g.allFinite()) throw std::runtime_error("gemm_limit: non-finite product");
  return {{"eigen", eigen}, {"openblas", blas}, {"eigen_prepared", prepared}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time the recurrent GEMMs of BPTT alone (Eigen's kernel, OpenBLAS, Eigen with W prepared once)"};
  int n = 256, b = 32, t = 1000, threads = 1, repeat = 5, blocks = 1;
  std::string dtype = "float64";
  app.add_option("--n", n, "N")->check(CLI::PositiveNumber);
  app.add_option("--b", b, "B")->check(CLI::PositiveNumber);
  app.add_option("--t", t, "T")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads)->check(CLI::PositiveNumber);
  app.add_option("--repeat", repeat)->check(CLI::PositiveNumber);
  app.add_option("--blocks", blocks, "stacked blocks of W (G N x N): 3 for a GRU, 4 for an LSTM")
      ->check(CLI::Range(1, 4));
  app.add_option("--dtype", dtype)->check(CLI::IsMember({"float32", "float64"}));
  CLI11_PARSE(app, argc, argv);
  nlohmann::json j = dtype == "float32" ? measure<float>(n, b, t, threads, repeat, blocks)
                                        : measure<double>(n, b, t, threads, repeat, blocks);
  j["n"] = n;
  j["b"] = b;
  j["t"] = t;
  j["dtype"] = dtype;
  j["threads"] = threads;
  j["blocks"] = blocks;
  j["flops"] = 4.0 * double(blocks) * double(n) * double(n) * double(b) * double(t);
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
