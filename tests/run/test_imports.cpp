// Imported weights (W, U, b, h_0, inputs from .npy / .mtx files): a deterministic run checked against an
// independent BPTT written here, file errors, and the model-space CLI (gradflow spectrum).
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/model/recurrent.hpp"
#include "gradflow/model/matrix_io.hpp"
#include "gradflow/run/scenario.hpp"
#include "reference.hpp"
#include "tolerances.hpp"

namespace fs = std::filesystem;
using namespace gradflow;

namespace {

// Per-step gradient norms of the imported run match the reference to this relative accuracy (issue 5).
constexpr double kImportCrossCheckTol = 1e-10;

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("gradflow_imports_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return path / name;
  }
};

/// A float32, C-order .npy file, as numpy.save writes a float32 array from torch's .numpy(): the format
/// PyTorch weights arrive in. 1-D when cols == 0.
void save_npy_f32(const fs::path& file, const Eigen::MatrixXd& m, bool one_d = false) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(m.rows()) +
                     (one_d ? ",)" : ", " + std::to_string(m.cols()) + ")") + ", }";
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>(dict.size() >> 8));
  out += dict;
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      const float f = static_cast<float>(m(i, j));
      char b[4];
      std::memcpy(b, &f, 4);  // little-endian host (x86-64, as the tests run)
      out.append(b, 4);
    }
  std::ofstream(file, std::ios::binary) << out;
}

/// Rounds to float32, as the files store the values.
Eigen::MatrixXd as_f32(const Eigen::MatrixXd& m) { return m.cast<float>().cast<double>(); }

/// Independent reference: forward h_s = c h_{s-1} + s_ tanh(W h_{s-1} + U x_s + b) for s = 1..burn+T from h_0,
/// loss L = ||h_T||^2 / 2 per trajectory, BPTT g_{t-1} = c g_t + s_ W^T (tanh'(a_t) .* g_t). Returns
/// mean over trajectories of log10 ||g_t||, t = 0..T. Plain loops, no gradflow code.
std::vector<double> reference_log10_norms(const Eigen::MatrixXd& w, const Eigen::MatrixXd& u, const Eigen::VectorXd& b,
                                          const Eigen::MatrixXd& h0, const Eigen::MatrixXd& x, int burn, int steps,
                                          double c, double s) {
  const int n = int(w.rows()), batch = int(h0.cols()), dim = int(u.cols());
  std::vector<double> mean(steps + 1, 0.0);
  for (int traj = 0; traj < batch; ++traj) {
    std::vector<double> h(n), a(n);
    for (int i = 0; i < n; ++i) h[i] = h0(i, traj);
    std::vector<std::vector<double>> deriv;  // tanh'(a_t), t = 1..T
    for (int step = 1; step <= burn + steps; ++step) {
      for (int i = 0; i < n; ++i) {
        double acc = b[i];
        for (int j = 0; j < n; ++j) acc += w(i, j) * h[j];
        for (int k = 0; k < dim; ++k) acc += u(i, k) * x(step - 1, k);
        a[i] = acc;
      }
      std::vector<double> d(n);
      for (int i = 0; i < n; ++i) {
        const double th = std::tanh(a[i]);
        d[i] = 1.0 - th * th;
        h[i] = c * h[i] + s * th;
      }
      if (step > burn) deriv.push_back(d);
    }
    std::vector<double> g = h, next(n);  // g_T = dL/dh_T = h_T
    auto log10_norm = [&] {
      double sq = 0.0;
      for (double v : g) sq += v * v;
      return 0.5 * std::log10(sq);
    };
    mean[steps] += log10_norm() / batch;
    for (int t = steps; t >= 1; --t) {
      const std::vector<double>& d = deriv[t - 1];
      for (int j = 0; j < n; ++j) {
        double acc = 0.0;
        for (int i = 0; i < n; ++i) acc += w(i, j) * d[i] * g[i];
        next[j] = c * g[j] + s * acc;
      }
      g.swap(next);
      mean[t - 1] += log10_norm() / batch;
    }
  }
  return mean;
}

struct Outcome {
  int code = -1;
  std::string out, err;
};

Outcome gradflow_cli(const std::string& args) {
  static int counter = 0;
  const fs::path err = fs::temp_directory_path() / ("gradflow_imports_err_" + std::to_string(::getpid()) + "_" +
                                                    std::to_string(counter++));
  const std::string cmd = std::string("\"") + GRADFLOW_CLI + "\" " + args + " 2>\"" + err.string() + "\"";
  Outcome o;
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe);
  std::array<char, 4096> buf{};
  std::size_t got;
  while ((got = fread(buf.data(), 1, buf.size(), pipe)) > 0) o.out.append(buf.data(), got);
  const int status = pclose(pipe);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err);
  std::stringstream ss;
  ss << in.rdbuf();
  o.err = ss.str();
  fs::remove(err);
  return o;
}

/// The imported network of the cross-check: N = 12, dim = 3, B = 2, burn-in 5, T = 40.
struct Imported {
  Eigen::MatrixXd w, u, h0, x;
  Eigen::VectorXd b;
};

Imported write_imported(const TempDir& dir) {
  Rng rng(2024);
  Imported m;
  m.w = as_f32(gaussian_matrix(12, 12, 1.3 / std::sqrt(12.0), rng));
  m.u = as_f32(gaussian_matrix(12, 3, 0.5, rng));
  m.b = as_f32(gaussian_matrix(12, 1, 0.2, rng)).col(0);
  m.h0 = as_f32(gaussian_matrix(12, 2, 0.7, rng));
  m.x = as_f32(gaussian_matrix(45, 3, 1.0, rng));
  fs::create_directories(dir.path / "data");
  save_npy_f32(dir.path / "data" / "W.npy", m.w);
  save_npy_f32(dir.path / "data" / "U.npy", m.u);
  save_npy_f32(dir.path / "data" / "b.npy", m.b, /*one_d=*/true);
  save_npy_f32(dir.path / "data" / "h0.npy", m.h0);
  save_npy_f32(dir.path / "data" / "x.npy", m.x);
  return m;
}

const char* kImportedScenario = R"(title = "imported"
[network]
units = 12
steps = 40
batch = 2
activation = "tanh"
[spectrum]
kind = "file"
file = "data/W.npy"
[input]
kind = "file"
file = "data/x.npy"
weights = "data/U.npy"
dim = 3
[bias]
file = "data/b.npy"
[init]
state = "file"
file = "data/h0.npy"
[loss]
kind = "final_state"
[analysis]
burn_in = 5
)";

}  // namespace

TEST_CASE("imported W, U, b, h0 and inputs: per-step gradient norms equal an independent BPTT to 1e-10 for every cell",
          "[imports][crosscheck]") {
  TempDir dir;
  const Imported m = write_imported(dir);
  const fs::path sc = dir.write("imported.toml", kImportedScenario);
  for (const auto& [cell, leak] : {std::pair<std::string, double>{"vanilla", 1.0}, {"residual", 1.0}, {"leaky", 0.25}}) {
    const Scenario s = load_scenario(sc, {"network.cell=" + cell, "network.leak=" + std::to_string(leak)});
    const Config cfg = s.cell_config(0);
    const CellResult r = simulate_cell(cfg, 0, 0);
    const double c = cell == "vanilla" ? 0.0 : cell == "residual" ? 1.0 : 1.0 - leak;
    const double sc_ = cell == "leaky" ? leak : 1.0;
    const std::vector<double> ref = reference_log10_norms(m.w, m.u, m.b, m.h0, m.x, 5, 40, c, sc_);
    REQUIRE(r.trace.horizon == 40);
    for (Eigen::Index t = 0; t <= 40; ++t) {
      INFO(cell << " t = " << t << " engine " << r.trace.log10_norm_mean[t] << " reference " << ref[t]);
      CHECK(std::abs(std::pow(10.0, r.trace.log10_norm_mean[t] - ref[t]) - 1.0) <= kImportCrossCheckTol);
    }
    // Deterministic: nothing is drawn, so another replicate gives the same numbers.
    const CellResult again = simulate_cell(cfg, 0, 7);
    CHECK(again.trace.log10_norm_mean == r.trace.log10_norm_mean);
  }
}

TEST_CASE("imported W is analysed as read, and rescaled only when a radius is given", "[imports]") {
  TempDir dir;
  const Imported m = write_imported(dir);
  const fs::path sc = dir.write("imported.toml", kImportedScenario);
  SpectralInfo info;
  const Eigen::MatrixXd w = build_recurrent_matrix(load_scenario(sc).cell_config(0), 0, 0, &info).to_dense();
  CHECK(w == m.w);
  CHECK(info.rho == Approx(gradflow::test::dense_rho(m.w)).epsilon(1e-10));
  const Eigen::MatrixXd w2 = build_recurrent_matrix(load_scenario(sc, {"spectrum.radius=0.5"}).cell_config(0), 0, 0, &info).to_dense();
  CHECK(gradflow::test::dense_rho(w2) == Approx(0.5).epsilon(gradflow::test::kRadiusTol));
}

TEST_CASE("wrongly sized, non-square, NaN, truncated and missing files name the key, the file and the problem",
          "[imports][bad_input]") {
  TempDir dir;
  write_imported(dir);
  const fs::path sc = dir.write("imported.toml", kImportedScenario);
  Rng rng(1);
  save_npy_f32(dir.path / "data" / "U_bad.npy", gaussian_matrix(12, 2, 1.0, rng));
  save_npy_f32(dir.path / "data" / "x_short.npy", gaussian_matrix(40, 3, 1.0, rng));
  save_npy_f32(dir.path / "data" / "h0_bad.npy", gaussian_matrix(12, 3, 1.0, rng));
  save_npy_f32(dir.path / "data" / "b_bad.npy", gaussian_matrix(11, 1, 1.0, rng), true);
  save_npy_f32(dir.path / "data" / "W_rect.npy", gaussian_matrix(12, 11, 1.0, rng));
  Eigen::MatrixXd nan = gaussian_matrix(12, 12, 1.0, rng);
  nan(3, 4) = std::nan("");
  save_npy_f32(dir.path / "data" / "W_nan.npy", nan);
  {
    std::ifstream in(dir.path / "data" / "W.npy", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir.path / "data" / "W_cut.npy", std::ios::binary) << bytes.substr(0, bytes.size() - 10);
  }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"input.weights=data/U_bad.npy",
       "input.weights = \"data/U_bad.npy\": holds 12 x 2, expected network.units x input.dim = 12 x 3"},
      {"input.file=data/x_short.npy", "input.file = \"data/x_short.npy\": holds 40 x 3, expected (analysis.burn_in + "
                                      "network.steps) x input.dim = 45 x 3 (one row per forward step)"},
      {"init.file=data/h0_bad.npy", "init.file = \"data/h0_bad.npy\": holds 12 x 3, expected network.units = 12 values"},
      {"bias.file=data/b_bad.npy", "bias.file = \"data/b_bad.npy\": holds 11 x 1, expected network.units = 12 values"},
      {"spectrum.file=data/W_rect.npy", "W must be a non-empty square matrix, got 12 x 11"},
      {"spectrum.file=data/W_nan.npy", "entry (row 4, col 5) is NaN"},
      {"spectrum.file=data/W_cut.npy", "truncated data"},
      {"spectrum.file=data/none.npy", "spectrum.file = \"data/none.npy\": "},
      {"network.units=10", "network.units = 10: but data/W.npy holds a 12 x 12 matrix"},
      {"input.kind=gaussian", "input.file: only used with input.kind = \"file\""},
      {"bias.mean=0.5", "bias.file: replaces the random bias"},
  };
  for (const auto& [set, expect] : cases) {
    INFO("--set " << set);
    if (expect.empty()) {
      CHECK_NOTHROW(load_scenario(sc, {set}));
      continue;
    }
    try {
      load_scenario(sc, {set});
      FAIL("expected an InputError");
    } catch (const InputError& e) {
      const std::string what = e.what();
      INFO(what);
      CHECK(what.find(expect) != std::string::npos);
      CHECK((what.find("imported.toml") != std::string::npos || what.find("--set") != std::string::npos));
    }
  }
  // U from a file with random inputs is valid; a file key its kind does not read is not.
  std::string gaussian = kImportedScenario;
  gaussian.replace(gaussian.find("kind = \"file\"\nfile = \"data/x.npy\"\n"), 34, "kind = \"gaussian\"\n");
  CHECK_NOTHROW(load_scenario(dir.write("gaussian.toml", gaussian)));
  CHECK_THROWS_WITH(load_scenario(dir.write("none.toml", gaussian), {"input.kind=none"}),
                    Catch::Contains("input.weights: only used with input.kind"));
  // In the file itself, the message points at the key.
  std::string text = kImportedScenario;
  text.replace(text.find("data/U.npy"), 10, "data/U_bad.npy");
  const fs::path in_file = dir.write("in_file.toml", text);
  CHECK_THROWS_WITH(load_scenario(in_file), Catch::Contains("in_file.toml:13:1: input.weights = \"data/U_bad.npy\": holds"));
  // Files are loaded once per scenario: they cannot be sweep axes.
  const fs::path swept = dir.write("swept.toml", std::string(kImportedScenario) + "[sweep]\n\"init.file\" = [\"a.npy\", \"b.npy\"]\n");
  CHECK_THROWS_WITH(load_scenario(swept), Catch::Contains("init.file: files cannot be swept"));
}

TEST_CASE("a coordinate .mtx connectome is read sparse and run in sparse storage", "[imports][sparse]") {
  TempDir dir;
  // A ring with skip connections, N = 600: 1200 entries, 0.3 % fill.
  std::ostringstream text;
  text << "%%MatrixMarket matrix coordinate real general\n600 600 1200\n";
  for (int i = 1; i <= 600; ++i)
    text << (i % 600) + 1 << " " << i << " 0.9\n" << ((i + 6) % 600) + 1 << " " << i << " -0.3\n";
  dir.write("ring.mtx", text.str());
  const fs::path sc = dir.write("ring.toml", "[network]\nunits = 600\nsteps = 20\nbatch = 2\n[spectrum]\nkind = \"file\"\n"
                                             "file = \"ring.mtx\"\n[analysis]\nburn_in = 0\n");
  const Config cfg = load_scenario(sc).cell_config(0);
  REQUIRE(cfg.spectrum.sparse_matrix);
  CHECK_FALSE(cfg.spectrum.matrix);
  const CellResult r = simulate_cell(cfg, 0, 0);
  CHECK(r.storage == Storage::sparse);
  CHECK(r.nonzeros == 1200.0);
  CHECK(r.trace.horizon == 20);
}

TEST_CASE("gradflow spectrum writes eigenvalues with a JSON sidecar and refuses -o above N = 5000", "[imports][cli]") {
  TempDir dir;
  const fs::path sc = dir.write("dale.toml", "[network]\nunits = 200\n[spectrum]\nkind = \"dale\"\nradius = 0.9\n"
                                             "balance = true\n");
  const fs::path ev = dir.path / "ev.csv";
  const Outcome o = gradflow_cli("spectrum \"" + sc.string() + "\" --json -o \"" + ev.string() + "\"");
  REQUIRE(o.code == 0);
  const auto j = nlohmann::json::parse(o.out);
  CHECK(j["rho"].get<double>() == Approx(0.9).epsilon(1e-8));
  CHECK(j["radius"].get<double>() == 0.9);
  CHECK(j.contains("bulk_radius"));
  CHECK(j["outlier"].get<double>() == 0.0);
  std::ifstream side(ev.string() + ".json");
  REQUIRE(side);
  const auto js = nlohmann::json::parse(side);
  CHECK(js["kind"] == "dale");
  CHECK(js["spectral_norm"].get<double>() > 0.9);

  const fs::path big = dir.write("big.toml", "[network]\nunits = 100000\n[spectrum]\nkind = \"chain\"\n");
  const Outcome refused = gradflow_cli("spectrum \"" + big.string() + "\" -o \"" + (dir.path / "x.csv").string() + "\"");
  CHECK(refused.code == 2);
  CHECK(refused.err.find("network.units = 100000 > 5000") != std::string::npos);
  const Outcome chain = gradflow_cli("spectrum \"" + big.string() + "\" --json");
  REQUIRE(chain.code == 0);
  const auto jc = nlohmann::json::parse(chain.out);
  CHECK(jc["rho"].get<double>() == 0.0);
  CHECK(jc["spectral_norm"].get<double>() == Approx(1.0).epsilon(1e-12));
  CHECK(jc["storage"] == "sparse");
}
