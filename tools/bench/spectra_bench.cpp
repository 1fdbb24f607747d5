// rho(W) and ||W||_2 of a dense Ginibre W: gradflow's Spectra path (Arnoldi for rho, Lanczos on W^T W for
// ||W||_2, sim/spectrum.cpp) against Eigen's dense EigenSolver (eigenvalues only) and JacobiSVD (singular
// values only), with the relative differences, so speed is compared at the same accuracy.
//
//   spectra_bench --n 2000 --repeat 3 --dense-repeat 1
// prints {"n", "rho_spectra": [s...], "norm_spectra": [s...], "rho_dense": [s...], "norm_dense": [s...],
//         "rho", "norm", "rho_rel_diff", "norm_rel_diff", "rho_status", "norm_status"}.
//
// Sparse mode: the W of [spectrum] kind = "sparse", in_degree = K (sparse_gaussian, as a scenario draws it),
// its radius solve alone (gradflow::spectral_radius on the compressed rows, sim/model/sparse.cpp), timed:
//   spectra_bench --sparse --in-degree 100 --n 10000 --repeat 1 [--threads T] [--export DIR]
// prints {"n", "in_degree", "nonzeros", "threads", "rho_sparse": [wall s...], "rho_sparse_cpu": [CPU s...], "rho",
//         "rho_status", "note"};
// --export writes W's compressed rows to DIR/outer.i32, DIR/inner.i32 and DIR/values.f64 (raw little-endian
// arrays: row pointers, column indices, values) for an independent solver to read (tools/bench/compare.py).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <Eigen/Eigenvalues>
#include <Eigen/SVD>
#include <nlohmann/json.hpp>

#include "gradflow/model/ensembles.hpp"
#include "gradflow/model/sparse.hpp"
#include "gradflow/model/spectrum.hpp"
#include "gradflow/numerics/blas.hpp"
#include "gradflow/numerics/random.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// User + system CPU seconds of the process so far (every thread).
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

template <class T>
void write_raw(const std::filesystem::path& file, const T* data, Eigen::Index count) {
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(T)));
  if (!out) throw std::runtime_error("spectra_bench: cannot write " + file.string());
}

int sparse_bench(int n, int in_degree, int repeat, int threads, std::uint64_t seed, const std::string& dir) {
  gradflow::Rng rng(seed);
  gradflow::SparseOptions options;
  options.in_degree = in_degree;
  const gradflow::SparseMatrix w = gradflow::sparse_gaussian(n, options, rng);
  if (!dir.empty()) {
    std::filesystem::create_directories(dir);
    write_raw(std::filesystem::path(dir) / "outer.i32", w.outerIndexPtr(), w.rows() + 1);
    write_raw(std::filesystem::path(dir) / "inner.i32", w.innerIndexPtr(), w.nonZeros());
    write_raw(std::filesystem::path(dir) / "values.f64", w.valuePtr(), w.nonZeros());
  }
  gradflow::set_gemm_threads(threads);  // Eigen's row-major sparse product uses Eigen::nbThreads()
  nlohmann::json j;
  j["n"] = n;
  j["in_degree"] = in_degree;
  j["nonzeros"] = w.nonZeros();
  j["threads"] = threads;
  std::vector<double> times, cpu;
  double rho = 0;
  gradflow::SolveStatus status{};
  std::string note;
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    rho = gradflow::spectral_radius(w, &status, &note);
    times.push_back(secs(t0));
    cpu.push_back(cpu_seconds() - c0);
  }
  j["rho_sparse"] = times;
  j["rho_sparse_cpu"] = cpu;
  j["rho"] = rho;
  j["rho_status"] = gradflow::to_string(status);
  j["note"] = note;
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Spectra vs dense Eigen solvers for rho(W) and ||W||_2 (Ginibre W), or a sparse W's radius solve"};
  int n = 2000, repeat = 3, dense_repeat = 1, in_degree = 100, threads = 1;
  bool sparse = false;
  std::string export_dir;
  std::uint64_t seed = 1;
  app.add_option("--n", n, "N")->check(CLI::Range(20, 1000000));
  app.add_option("--repeat", repeat, "timed Spectra runs")->check(CLI::PositiveNumber);
  app.add_option("--dense-repeat", dense_repeat, "timed dense runs (0: skip)")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", seed);
  app.add_flag("--sparse", sparse, "sparse W of in-degree K (kind = \"sparse\"): time its radius solve");
  app.add_option("--in-degree", in_degree, "K: nonzeros per row (--sparse)")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "Eigen threads for the sparse product (--sparse)")->check(CLI::PositiveNumber);
  app.add_option("--export", export_dir, "write W's compressed rows here (--sparse)");
  CLI11_PARSE(app, argc, argv);
  if (sparse) return sparse_bench(n, in_degree, repeat, threads, seed, export_dir);

  gradflow::Rng rng(seed);
  const Eigen::MatrixXd w = gradflow::gaussian_matrix(n, n, 1.0 / std::sqrt(double(n)), rng);

  nlohmann::json j;
  j["n"] = n;
  std::vector<double> rs, ns, rd, nd;
  double rho = 0, norm = 0;
  gradflow::SolveStatus rst{}, nst{};
  for (int r = 0; r < repeat; ++r) {
    auto t0 = Clock::now();
    rho = gradflow::spectral_radius(w, &rst);
    rs.push_back(secs(t0));
    t0 = Clock::now();
    norm = gradflow::spectral_norm(w, &nst);
    ns.push_back(secs(t0));
  }
  j["rho_spectra"] = rs;
  j["norm_spectra"] = ns;
  j["rho"] = rho;
  j["norm"] = norm;
  j["rho_status"] = gradflow::to_string(rst);
  j["norm_status"] = gradflow::to_string(nst);
  double rho_dense = 0, norm_dense = 0;
  for (int r = 0; r < dense_repeat; ++r) {
    auto t0 = Clock::now();
    Eigen::EigenSolver<Eigen::MatrixXd> es(w, /*computeEigenvectors=*/false);
    rho_dense = es.eigenvalues().cwiseAbs().maxCoeff();
    rd.push_back(secs(t0));
    t0 = Clock::now();
    Eigen::JacobiSVD<Eigen::MatrixXd> svd(w);  // singular values only
    norm_dense = svd.singularValues()(0);
    nd.push_back(secs(t0));
  }
  j["rho_dense"] = rd;
  j["norm_dense"] = nd;
  if (dense_repeat > 0) {
    j["rho_rel_diff"] = std::abs(rho - rho_dense) / rho_dense;
    j["norm_rel_diff"] = std::abs(norm - norm_dense) / norm_dense;
  }
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
