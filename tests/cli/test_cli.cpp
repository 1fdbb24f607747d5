// End-to-end tests of the gradflow executable: exit codes, messages and the output contract.
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

struct Outcome {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
  long peak_rss_kb = 0;  // peak resident memory of the command (wait4's ru_maxrss: the largest process in it)
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Runs `gradflow ARGS` through the shell, capturing stdout and stderr separately.
Outcome gradflow(const std::string& args) {
  static int counter = 0;
  const std::string stem = (fs::temp_directory_path() / ("gradflow_cli_" + std::to_string(::getpid()) + "_" +
                                                         std::to_string(counter++))).string();
  const fs::path out = stem + "_out", err = stem + "_err";
  const std::string cmd = std::string("\"") + GRADFLOW_CLI + "\" " + args + " >\"" + out.string() + "\" 2>\"" +
                          err.string() + "\"";
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  struct rusage usage {};
  REQUIRE(wait4(pid, &status, 0, &usage) == pid);
  Outcome o;
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.peak_rss_kb = usage.ru_maxrss;  // the shell's, or that of the largest process it waited for
  o.out = read_file(out);
  o.err = read_file(err);
  fs::remove(out);
  fs::remove(err);
  return o;
}

/// A fresh temporary directory, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("gradflow_cli_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return path / name;
  }
};

std::vector<std::string> csv_header(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> cols;
  std::stringstream s(line);
  for (std::string c; std::getline(s, c, ',');) cols.push_back(c);
  return cols;
}

std::size_t count_lines(const fs::path& file) {
  const std::string text = read_file(file);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

const char* kSmall = R"(title = "small"
seed = 3
[network]
units = 24
steps = 60
batch = 2
[analysis]
burn_in = 10
)";

}  // namespace

/// Every file in `dir` with its contents, for byte-for-byte comparisons.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_file(e.path());
  return files;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

// The catalogue: tests/bad_inputs/*.toml. Each file starts with
//   # expect: FRAGMENT          (required) a fragment of the one-line error message
//   # args: ARGS                (optional) the command, default `run {scenario} -o {out} --quiet`;
//                               placeholders {scenario}, {out} (a prepared output dir), {dir} (bad_inputs/)
//   # outdir: other-run         (optional) {out} holds a finished run of another scenario
// Every case must exit 2, name the scenario file when it is the culprit, leave {out} byte-for-byte as it was
// (it holds a sentinel file, or another run), and refuse in little memory (peak RSS < kRefusalPeakKb).
// gradflow's own footprint when it refuses an input is a few MB (tens under sanitizers); a declared size that
// were allocated would show as hundreds of MB at least (the smallest such case, symmetric_15000.mtx, 1.8 GB).
constexpr long kRefusalPeakKb = 256 * 1024;

TEST_CASE("every input in the bad-input catalogue exits 2 with its message and touches no output",
          "[cli][bad_input]") {
  const fs::path dir = fs::path(GRADFLOW_TEST_DATA) / "bad_inputs";
  int cases = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    const std::string text = read_file(entry.path());
    auto header = [&](const std::string& tag) {
      const std::string key = "# " + tag + ": ";
      const auto at = text.find(key);
      if (at == std::string::npos) return std::string();
      return text.substr(at + key.size(), text.find('\n', at) - at - key.size());
    };
    const std::string expect = header("expect");
    REQUIRE(!expect.empty());
    TempDir tmp;
    const fs::path out = tmp.path / "out";
    fs::create_directories(out);
    if (header("outdir") == "other-run") {
      const fs::path other = tmp.write("other.toml", "[network]\nunits = 8\nsteps = 5\nbatch = 1\n");
      REQUIRE(gradflow("run \"" + other.string() + "\" --quiet --force -o \"" + out.string() + "\"").code == 0);
    } else {
      std::ofstream(out / "keep.txt") << "results of an earlier run\n";
    }
    const auto before = snapshot(out);
    std::string args = header("args");
    const bool default_args = args.empty();
    if (default_args) args = "run {scenario} -o {out} --quiet";
    args = replace_all(args, "{scenario}", "\"" + entry.path().string() + "\"");
    args = replace_all(args, "{out}", out.string());
    args = replace_all(args, "{dir}", dir.string());
    const Outcome o = gradflow(args);
    INFO(entry.path().filename().string() << "\nstderr: " << o.err);
    CHECK(o.code == 2);
    CHECK(o.err.find(expect) != std::string::npos);
    if (default_args) CHECK(o.err.find(entry.path().filename().string()) != std::string::npos);
    CHECK(std::count(o.err.begin(), o.err.end(), '\n') <= 2);  // one clear line (+ a usage hint)
    CHECK(snapshot(out) == before);
    // Refused before allocating what the input declares: a few tiny files declare 1.8 GB to 8 TB.
    CHECK(o.peak_rss_kb < kRefusalPeakKb);
    ++cases;
  }
  CHECK(cases >= 40);
}

TEST_CASE("type and range errors name file, line and column", "[cli][bad_input]") {
  TempDir tmp;
  const fs::path sc = tmp.write("s.toml", "[network]\nunits = 8\n\n[spectrum]\n  radius = -1\n");
  const Outcome o = gradflow("run \"" + sc.string() + "\" --quiet -o \"" + (tmp.path / "o").string() + "\"");
  CHECK(o.code == 2);
  CHECK(o.err.find("s.toml:5:12: spectrum.radius = -1: must be >= 0") != std::string::npos);
}

TEST_CASE("bad flags and bad --set overrides exit 2", "[cli][bad_input]") {
  TempDir tmp;
  const fs::path sc = tmp.write("s.toml", kSmall);
  const std::string base = "run \"" + sc.string() + "\" --quiet -o \"" + (tmp.path / "o").string() + "\" ";
  Outcome o = gradflow(base + "--set spectrum.radus=2");
  CHECK(o.code == 2);
  CHECK(o.err.find("unknown key spectrum.radus (did you mean spectrum.radius?)") != std::string::npos);
  o = gradflow(base + "--set network.units=zero");
  CHECK(o.code == 2);
  CHECK(o.err.find("--set network.units=zero: network.units = \"zero\": expected an integer") != std::string::npos);
  o = gradflow(base + "--set noequals");
  CHECK(o.code == 2);
  o = gradflow(base + "--threads -3");
  CHECK(o.code == 2);
  o = gradflow("run \"" + (tmp.path / "missing.toml").string() + "\"");
  CHECK(o.code == 2);
  CHECK(o.err.find("missing.toml: no such scenario file") != std::string::npos);
  o = gradflow("frobnicate");
  CHECK(o.code == 2);
}

TEST_CASE("a single-cell run writes cells.csv, series.csv and run.json as the output contract says",
          "[cli][output]") {
  TempDir tmp;
  const fs::path sc = tmp.write("small.toml", kSmall);
  const fs::path out = tmp.path / "out";
  const Outcome o = gradflow("run \"" + sc.string() + "\" --quiet -o \"" + out.string() + "\" --set spectrum.radius=1.2");
  INFO(o.err);
  REQUIRE(o.code == 0);
  const auto cols = csv_header(out / "cells.csv");
  for (const char* c : {"cell", "replicate", "rho", "spectral_norm", "mean_abs_dact", "mean_sq_dact", "sup_dact",
                        "predictor", "predictor_rms", "bound", "growth_rate", "log10_grad_ratio", "regime",
                        "forward_diverged_at", "dead_fraction", "saturated_fraction", "seconds"})
    CHECK(std::find(cols.begin(), cols.end(), c) != cols.end());
  CHECK(count_lines(out / "cells.csv") == 2);
  const auto scols = csv_header(out / "series.csv");
  CHECK(scols == std::vector<std::string>{"cell", "replicate", "t", "log10_grad_norm", "log10_grad_norm_min",
                                          "log10_grad_norm_max", "mean_abs_dact_t", "zero_trajectories",
                                          "cum_log10_predictor", "cum_log10_predictor_rms"});
  for (const char* c : {"gain_rms", "mf_q", "mf_growth", "mf_lyapunov", "mf_status"})
    CHECK(std::find(cols.begin(), cols.end(), c) != cols.end());
  CHECK(std::find(cols.begin(), cols.end(), "lyapunov_max") == cols.end());  // analysis.lyapunov = 0
  CHECK(count_lines(out / "series.csv") == 1 + 61);
  const auto j = nlohmann::json::parse(read_file(out / "run.json"));
  CHECK(j["status"] == "complete");
  CHECK(j["scenario"]["resolved"]["spectrum.radius"] == 1.2);
  CHECK(j["scenario"]["resolved"]["network.units"] == 24);
  CHECK(j["cells"].size() == 1);
  CHECK(j["cells"][0]["status"] == "done");
  CHECK(j.contains("gradflow_version"));
  CHECK(j.contains("wall_seconds"));
}

TEST_CASE("an existing OUTDIR is never overwritten without --resume or --force", "[cli][output]") {
  TempDir tmp;
  const fs::path sc = tmp.write("small.toml", kSmall);
  const std::string out = (tmp.path / "out").string();
  REQUIRE(gradflow("run \"" + sc.string() + "\" --quiet -o \"" + out + "\"").code == 0);
  const std::string before = read_file(tmp.path / "out" / "cells.csv");
  Outcome o = gradflow("run \"" + sc.string() + "\" --quiet -o \"" + out + "\" --set spectrum.radius=2");
  CHECK(o.code == 2);
  CHECK(o.err.find("holds the results of a different run") != std::string::npos);
  o = gradflow("run \"" + sc.string() + "\" --quiet -o \"" + out + "\"");
  CHECK(o.code == 2);
  CHECK(o.err.find("already holds this run") != std::string::npos);
  CHECK(read_file(tmp.path / "out" / "cells.csv") == before);
  o = gradflow("run \"" + sc.string() + "\" --quiet -o \"" + out + "\" --resume");
  CHECK(o.code == 0);
  CHECK(read_file(tmp.path / "out" / "cells.csv") == before);
  o = gradflow("run \"" + sc.string() + "\" --quiet -o \"" + out + "\" --set spectrum.radius=2 --force");
  CHECK(o.code == 0);
  CHECK(read_file(tmp.path / "out" / "cells.csv") != before);
  const fs::path file_out = tmp.write("not_a_dir", "x");
  o = gradflow("run \"" + sc.string() + "\" --quiet -o \"" + file_out.string() + "\"");
  CHECK(o.code == 2);
  CHECK(o.err.find("is a file") != std::string::npos);
}

TEST_CASE("ReLU at radius 3 in float over 2000 steps exits 0 with the divergence as data", "[cli][divergence]") {
  TempDir tmp;
  const fs::path sc = tmp.write("relu.toml",
                                "[network]\nunits = 64\nsteps = 2000\nbatch = 4\nactivation = \"relu\"\n"
                                "precision = \"float\"\n[spectrum]\nradius = 3.0\n");
  const fs::path out = tmp.path / "out";
  const Outcome o = gradflow("run \"" + sc.string() + "\" --quiet -o \"" + out.string() + "\"");
  REQUIRE(o.code == 0);
  std::ifstream in(out / "cells.csv");
  std::string header, row;
  std::getline(in, header);
  std::getline(in, row);
  const auto cols = csv_header(out / "cells.csv");
  std::vector<std::string> fields;
  std::stringstream s(row);
  for (std::string f; std::getline(s, f, ',');) fields.push_back(f);
  fields.resize(cols.size());
  auto field = [&](const std::string& name) {
    return fields[std::find(cols.begin(), cols.end(), name) - cols.begin()];
  };
  CHECK(!field("forward_diverged_at").empty());
  CHECK(field("regime") == "exploding");
  // Every log norm in series.csv is a finite number.
  std::ifstream series(out / "series.csv");
  std::string line;
  std::getline(series, line);
  int rows = 0;
  while (std::getline(series, line)) {
    std::stringstream ls(line);
    std::vector<std::string> f;
    for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
    REQUIRE(f.size() >= 4);
    const double v = std::stod(f[3]);
    CHECK(std::isfinite(v));
    ++rows;
  }
  CHECK(rows > 2);
}

TEST_CASE("gradflow activations --json prints the moment table of every activation", "[cli][activations]") {
  const Outcome o = gradflow("activations --json");
  REQUIRE(o.code == 0);
  const auto j = nlohmann::json::parse(o.out);
  REQUIRE(j.is_array());
  CHECK(j.size() == 11);
  for (const auto& row : j) {
    for (const char* k : {"name", "mean", "second_moment", "mean_abs_deriv", "mean_sq_deriv", "zero_prob",
                          "sup_abs_deriv"})
      CHECK(row.contains(k));
    if (row["name"] == "relu") {
      CHECK(row["mean"].get<double>() == Approx(1.0 / std::sqrt(2.0 * M_PI)).epsilon(1e-10));
      CHECK(row["zero_prob"].get<double>() == Approx(0.5).epsilon(1e-12));
    }
  }
  CHECK(gradflow("activations --sigma -1").code == 2);
}

TEST_CASE("gradflow spectrum reports rho = radius and writes the eigenvalues", "[cli][spectrum]") {
  TempDir tmp;
  const fs::path sc = tmp.write("s.toml", "[network]\nunits = 60\n[spectrum]\nkind = \"ginibre\"\nradius = 1.7\n");
  const fs::path ev = tmp.path / "ev.csv";
  const Outcome o = gradflow("spectrum \"" + sc.string() + "\" --json -o \"" + ev.string() + "\"");
  REQUIRE(o.code == 0);
  const auto j = nlohmann::json::parse(o.out);
  CHECK(j["rho"].get<double>() == Approx(1.7).epsilon(1e-8));
  CHECK(j["spectral_norm"].get<double>() > 1.7);
  CHECK(count_lines(ev) == 61);
}

TEST_CASE("help and version flags exit 0 on every subcommand", "[cli]") {
  for (const char* sub : {"", "run", "spectrum", "activations", "critical", "keys"}) {
    INFO(sub);
    CHECK(gradflow(std::string(sub) + " --help").code == 0);
  }
  const Outcome v = gradflow("--version");
  CHECK(v.code == 0);
  CHECK(v.out.find("gradflow") != std::string::npos);
}

TEST_CASE("README's scenario key table is the one gradflow keys generates", "[cli][docs]") {
  const Outcome o = gradflow("keys");
  REQUIRE(o.code == 0);
  const std::string readme = read_file(fs::path(GRADFLOW_SOURCE_DIR) / "README.md");
  std::stringstream lines(o.out);
  int rows = 0;
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    CHECK(readme.find(line) != std::string::npos);
    ++rows;
  }
  CHECK(rows > 20);
}

namespace {

/// Rows of a CSV file as name -> field maps.
std::vector<std::map<std::string, std::string>> csv_rows(const fs::path& file) {
  const auto cols = csv_header(file);
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream s(line);
    for (std::string x; std::getline(s, x, ',');) f.push_back(x);
    f.resize(cols.size());
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < cols.size(); ++i) row[cols[i]] = f[i];
    rows.push_back(row);
  }
  return rows;
}

}  // namespace

TEST_CASE("gradflow critical prints the mean-field critical gain (ReLU sqrt 2, tanh 1) and rejects bad flags",
          "[cli][critical]") {
  Outcome o = gradflow("critical --activation relu --json");
  REQUIRE(o.code == 0);
  auto j = nlohmann::json::parse(o.out);
  CHECK(std::abs(j["critical_gain"].get<double>() - std::sqrt(2.0)) <= 1e-8);
  CHECK(j["activation"] == "relu");
  o = gradflow("critical --activation tanh --input-std 0.5 --json");
  REQUIRE(o.code == 0);
  j = nlohmann::json::parse(o.out);
  CHECK(j["critical_gain"].get<double>() > 1.0);
  CHECK(j["q_star"].get<double>() > 0.0);
  o = gradflow("critical --activation tanh");
  REQUIRE(o.code == 0);
  CHECK(o.out.find("critical gain   1.0000000000") != std::string::npos);
  o = gradflow("critical --activation tanh --range 0.01 0.5 --json");
  REQUIRE(o.code == 0);
  CHECK(nlohmann::json::parse(o.out)["critical_gain"].is_null());
  o = gradflow("critical --activation tanhh");
  CHECK(o.code == 2);
  CHECK(o.err.find("--activation tanhh") != std::string::npos);
  CHECK(gradflow("critical --activation tanh --input-std -1").code == 2);
  CHECK(gradflow("critical --activation softplus --beta 0").code == 2);
  CHECK(gradflow("critical").code == 2);
}

TEST_CASE("gradflow critical starts from the scenarios' zero state and reports a diverging q* as such",
          "[cli][critical]") {
  // ReLU with input at its edge sqrt 2: F(q) = q + input_std^2 has no fixed point.
  Outcome o = gradflow("critical --activation relu --input-std 0.5 --json");
  REQUIRE(o.code == 0);
  auto j = nlohmann::json::parse(o.out);
  CHECK(std::abs(j["critical_gain"].get<double>() - std::sqrt(2.0)) <= 1e-8);
  CHECK(j["mf_status"] == "q_diverges");
  CHECK(j["q_star"].is_null());
  CHECK(j["init_std"].get<double>() == 0.0);  // init.state = "zero" of a scenario
  o = gradflow("critical --activation relu --input-std 0.5");
  CHECK(o.out.find("q* there        diverges") != std::string::npos);
}

TEST_CASE("gradflow critical --cell minimalrnn prints the critical line: chi = 1 at each gate bias's gain",
          "[cli][critical][minimalrnn]") {
  Outcome o = gradflow("critical --activation tanh --cell minimalrnn --input-std 1 --gate-bias 0 2 5 --json");
  INFO(o.err);
  REQUIRE(o.code == 0);
  const auto j = nlohmann::json::parse(o.out);
  CHECK(j["cell"] == "minimalrnn");
  REQUIRE(j["line"].size() == 3);
  double previous = 0.0;
  for (const auto& point : j["line"]) {
    const double b = point["gate_bias"].get<double>(), g = point["critical_gain"].get<double>();
    INFO("gate bias " << b << " critical gain " << g);
    CHECK(point["q_star"].get<double>() > 0.0);
    CHECK(g != previous);
    previous = g;
    // The gain is where chi first reaches 1 (chi = 1 there is checked in test_meanfield_minimalrnn): a range
    // that ends just below it has no point, one that starts just above it starts past it.
    char range[96];
    std::snprintf(range, sizeof range, " --range 0.1 %.12g --json", 0.999 * g);
    const std::string base = "critical --activation tanh --cell minimalrnn --input-std 1 --gate-bias " + std::to_string(b);
    Outcome below = gradflow(base + range);
    REQUIRE(below.code == 0);
    CHECK(nlohmann::json::parse(below.out)["line"][0]["critical_gain"].is_null());
    std::snprintf(range, sizeof range, " --range %.12g 100 --json", 0.9 * g);
    Outcome around = gradflow(base + range);
    REQUIRE(around.code == 0);
    CHECK(nlohmann::json::parse(around.out)["line"][0]["critical_gain"].get<double>() == Approx(g).epsilon(1e-8));
  }
  // No drive: chi = sigmoid(b_u)^2 < 1 at every gain, so the line has no point.
  o = gradflow("critical --activation tanh --cell minimalrnn --gate-bias 1 --json");
  REQUIRE(o.code == 0);
  CHECK(nlohmann::json::parse(o.out)["line"][0]["critical_gain"].is_null());
  o = gradflow("critical --activation tanh --cell minimalrnn --input-std 1");
  REQUIRE(o.code == 0);
  CHECK(o.out.find("gate bias") != std::string::npos);
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') >= 5 + 13);  // the default line: -4, -3, ..., 8
}

// kSmall followed by `extra`, run with --quiet and `flags` into tmp/out (returned); the test stops unless it
// exits 0.
fs::path run_small(TempDir& tmp, const std::string& extra, const std::string& flags = "") {
  const fs::path sc = tmp.write("small.toml", std::string(kSmall) + extra);
  const fs::path out = tmp.path / "out";
  const Outcome o = gradflow("run \"" + sc.string() + "\" -o \"" + out.string() + "\" --quiet " + flags);
  INFO(o.err);
  REQUIRE(o.code == 0);
  return out;
}

TEST_CASE("a minimalrnn sweep fills the mean-field columns and its verdicts judge mf_growth; gru stays n/a",
          "[cli][minimalrnn]") {
  TempDir tmp;
  const fs::path out = run_small(tmp, "[input]\nstd = 1.0\n[sweep]\n\"network.cell\" = [\"minimalrnn\", \"gru\"]\n"
                                      "\"gates.bias\" = [0.0, 2.0]\n");
  int minimal = 0;
  for (const auto& row : csv_rows(out / "cells.csv")) {
    const bool is_minimal = row.at("network.cell") == "minimalrnn";
    minimal += is_minimal;
    CHECK(row.at("mf_status") == (is_minimal ? "ok" : "not_applicable"));
    CHECK(row.at("mf_growth").empty() == !is_minimal);
    CHECK(row.at("mf_q").empty() == !is_minimal);
  }
  CHECK(minimal == 2);
  const auto j = nlohmann::json::parse(read_file(out / "run.json"));
  for (const auto& p : j["verdicts"]["predictors"])
    if (p["name"] == "mf_growth") {
      CHECK(p["compared"] == 2);
      CHECK(p["unavailable"] == 2);
    }
}

TEST_CASE("every cell kind writes the contract's predictor, predictor_rms and bound, and its own beside them",
          "[cli][output][cells]") {
  // DESIGN.md's output contract: predictor = rho mean_abs_dact, predictor_rms = rho sqrt(mean_sq_dact),
  // bound = spectral_norm sup_dact on every row. A cell with a Jacobian of its own adds *_cell columns.
  TempDir tmp;
  const fs::path out = run_small(tmp,
                                 "[input]\nstd = 0.5\n[sweep]\n\"network.cell\" = [\"vanilla\", \"residual\", "
                                 "\"leaky\", \"gru\", \"lstm\", \"minimalrnn\"]\n",
                                 "--set network.leak=0.5");
  const auto rows = csv_rows(out / "cells.csv");
  REQUIRE(rows.size() == 6);
  auto num = [](const std::map<std::string, std::string>& row, const char* col) { return std::stod(row.at(col)); };
  int differ = 0;
  for (const auto& row : rows) {
    const std::string cell = row.at("network.cell");
    INFO(cell);
    const double rho = num(row, "rho");
    CHECK(num(row, "predictor") == Approx(rho * num(row, "mean_abs_dact")).epsilon(1e-12));
    CHECK(num(row, "predictor_rms") == Approx(rho * std::sqrt(num(row, "mean_sq_dact"))).epsilon(1e-12));
    CHECK(num(row, "bound") == Approx(num(row, "spectral_norm") * num(row, "sup_dact")).epsilon(1e-12));
    if (cell == "vanilla") {
      for (const char* c : {"predictor", "predictor_rms", "bound"})
        CHECK(row.at(std::string(c) + "_cell") == row.at(c));
    } else if (cell == "residual") {  // J = I + D W: c + s rho E|f'| with c = s = 1
      CHECK(num(row, "predictor_cell") == Approx(1.0 + num(row, "predictor")).epsilon(1e-12));
      CHECK(num(row, "bound_cell") == Approx(1.0 + num(row, "bound")).epsilon(1e-12));
    } else if (cell == "leaky") {  // c = 1 - leak, s = leak
      CHECK(num(row, "predictor_cell") == Approx(0.5 + 0.5 * num(row, "predictor")).epsilon(1e-12));
      CHECK(num(row, "bound_cell") == Approx(0.5 + 0.5 * num(row, "bound")).epsilon(1e-12));
    }
    differ += cell != "vanilla" && row.at("predictor_cell") != row.at("predictor");
  }
  CHECK(differ == 5);
  const auto j = nlohmann::json::parse(read_file(out / "run.json"));
  std::vector<std::string> names;
  for (const auto& p : j["verdicts"]["predictors"]) names.push_back(p["name"]);
  CHECK(names == std::vector<std::string>{"predictor", "predictor_cell", "predictor_rms", "predictor_rms_cell",
                                          "mf_growth", "bound", "bound_cell"});
}

TEST_CASE("a sweep writes verdicts to run.json and a summary to stderr (none with --quiet)", "[cli][verdict]") {
  TempDir tmp;
  const fs::path sc = tmp.write("v.toml", std::string(kSmall) +
                                              "lyapunov = 2\n[sweep]\n\"spectrum.radius\" = [0.5, 2.0]\n");
  const fs::path out = tmp.path / "out";
  Outcome o = gradflow("run \"" + sc.string() + "\" -o \"" + out.string() + "\"");
  REQUIRE(o.code == 0);
  CHECK(o.err.find("verdicts:") != std::string::npos);
  CHECK(o.err.find("lyapunov_max") != std::string::npos);
  const auto j = nlohmann::json::parse(read_file(out / "run.json"));
  REQUIRE(j.contains("verdicts"));
  CHECK(j["verdicts"]["rows"] == 2);
  std::vector<std::string> names;
  for (const auto& p : j["verdicts"]["predictors"]) names.push_back(p["name"]);
  CHECK(names == std::vector<std::string>{"predictor", "predictor_rms", "mf_growth", "bound", "lyapunov_max"});
  const auto cols = csv_header(out / "cells.csv");
  for (const char* c : {"lyapunov_max", "lyapunov_max_std", "lyapunov_status", "lyapunov_1", "lyapunov_2"})
    CHECK(std::find(cols.begin(), cols.end(), c) != cols.end());
  CHECK(std::find(cols.begin(), cols.end(), "lyapunov_3") == cols.end());
  for (const auto& row : csv_rows(out / "cells.csv")) {
    CHECK(row.at("lyapunov_status") == "ok");
    CHECK(row.at("lyapunov_max") == row.at("lyapunov_1"));
    CHECK(row.at("mf_status") == "ok");
  }
  // Resuming a complete run recomputes the same verdicts; --quiet prints nothing.
  o = gradflow("run \"" + sc.string() + "\" -o \"" + out.string() + "\" --resume --quiet");
  REQUIRE(o.code == 0);
  CHECK(o.err.empty());
  CHECK(nlohmann::json::parse(read_file(out / "run.json"))["verdicts"] == j["verdicts"]);
}

TEST_CASE("series.csv carries the cumulative predictions: 0 at the seed, exact for a scaled orthogonal linear RNN",
          "[cli][series]") {
  // Identity activation, orthogonal W of radius r: every step scales ||g|| by r = rho * mean|f'| exactly,
  // so cum_log10_predictor(t) = (T - t) log10 r = log10 ||g_t|| - log10 ||g_T||.
  TempDir tmp;
  const fs::path sc = tmp.write("lin.toml",
                                "[network]\nunits = 16\nsteps = 40\nbatch = 2\nactivation = \"identity\"\n"
                                "[spectrum]\nkind = \"orthogonal\"\nradius = 0.8\n[analysis]\nburn_in = 5\n");
  const fs::path out = tmp.path / "out";
  REQUIRE(gradflow("run \"" + sc.string() + "\" --quiet -o \"" + out.string() + "\"").code == 0);
  const auto rows = csv_rows(out / "series.csv");
  REQUIRE(rows.size() == 41);
  const double seed = std::stod(rows.back().at("log10_grad_norm"));
  for (const auto& row : rows) {
    const double t = std::stod(row.at("t"));
    INFO("t = " << t);
    const double predicted = std::stod(row.at("cum_log10_predictor"));
    CHECK(predicted == Approx((40 - t) * std::log10(0.8)).margin(1e-12));
    CHECK(std::stod(row.at("cum_log10_predictor_rms")) == Approx(predicted).margin(1e-12));
    CHECK(std::stod(row.at("log10_grad_norm")) - seed == Approx(predicted).margin(1e-12));
  }
  CHECK(rows.back().at("cum_log10_predictor") == "0");
}

TEST_CASE("gradflow spectrum --cell I --replicate R shows the W that cell of the sweep built", "[cli][spectrum]") {
  TempDir tmp;
  const fs::path sc = tmp.write("cells.toml", "seed = 4\n[network]\nsteps = 20\nbatch = 1\n[analysis]\nseries = false\n"
                                              "burn_in = 0\n[sweep]\n\"network.units\" = [8, 16]\n"
                                              "\"spectrum.radius\" = [0.5, 1.5]\nreplicates = 2\n");
  const fs::path out = tmp.path / "out";
  REQUIRE(gradflow("run \"" + sc.string() + "\" --quiet -o \"" + out.string() + "\"").code == 0);
  // cells.csv row of cell 3 (units 16, radius 1.5), replicate 1.
  std::ifstream in(out / "cells.csv");
  std::string line, header;
  std::getline(in, header);
  std::vector<std::string> names, row;
  for (std::stringstream h(header); std::getline(h, line, ',');) names.push_back(line);
  while (std::getline(in, line))
    if (line.rfind("3,1,", 0) == 0)
      for (std::stringstream r(line); std::getline(r, header, ',');) row.push_back(header);
  REQUIRE(row.size() >= names.size() - 1);
  const auto col = [&](const std::string& n) { return std::stod(row[std::find(names.begin(), names.end(), n) - names.begin()]); };
  const Outcome o = gradflow("spectrum \"" + sc.string() + "\" --cell 3 --replicate 1 --json");
  REQUIRE(o.code == 0);
  const auto j = nlohmann::json::parse(o.out);
  CHECK(j["units"] == 16);
  CHECK(j["cell"] == 3);
  CHECK(j["rho"].get<double>() == Approx(col("rho")).epsilon(1e-10));
  CHECK(j["spectral_norm"].get<double>() == Approx(col("spectral_norm")).epsilon(1e-10));
  // Replicate 0 of the same cell is another draw.
  const auto j0 = nlohmann::json::parse(gradflow("spectrum \"" + sc.string() + "\" --cell 3 --json").out);
  CHECK(j0["spectral_norm"].get<double>() != j["spectral_norm"].get<double>());
  CHECK(gradflow("spectrum \"" + sc.string() + "\" --cell 4").code == 2);
  CHECK(gradflow("spectrum \"" + sc.string() + "\" --replicate 2").code == 2);
}
