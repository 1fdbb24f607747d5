// rho(W) and ||W||_2 of a dense Ginibre W: gradflow's Spectra path (Arnoldi for rho, Lanczos on W^T W for
// ||W||_2, sim/spectrum.cpp) against Eigen's dense EigenSolver (eigenvalues only) and JacobiSVD (singular
// values only), with the relative differences, so speed is compared at the same accuracy.
//
//   spectra_bench --n 2000 --repeat 3 --dense-repeat 1
// prints {"n", "rho_spectra": [s...], "norm_spectra": [s...], "rho_dense": [s...], "norm_dense": [s...],
//         "rho", "norm", "rho_rel_diff", "norm_rel_diff", "rho_status", "norm_status"}.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include <CLI/CLI.hpp>
#include <Eigen/Eigenvalues>
#include <Eigen/SVD>
#include <nlohmann/json.hpp>

#include "gradflow/numerics/random.hpp"
#include "gradflow/model/spectrum.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Spectra vs dense Eigen solvers for rho(W) and ||W||_2 (Ginibre W)"};
  int n = 2000, repeat = 3, dense_repeat = 1;
  std::uint64_t seed = 1;
  app.add_option("--n", n, "N")->check(CLI::Range(20, 100000));
  app.add_option("--repeat", repeat, "timed Spectra runs")->check(CLI::PositiveNumber);
  app.add_option("--dense-repeat", dense_repeat, "timed dense runs (0: skip)")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", seed);
  CLI11_PARSE(app, argc, argv);

  using Clock = std::chrono::steady_clock;
  auto secs = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
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
