// The summary of a sweep (issue 16): where each factor crosses 1, with bootstrap intervals; on synthetic
// cells.csv files whose crossing is known, and on real sweeps with a known critical radius.
#include <cmath>
#include <cstdio>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "gradflow/run/scenario.hpp"
#include "gradflow/run/summary.hpp"
#include "run_helpers.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using namespace gradflow::test;

namespace {

/// A cells.csv with one axis "spectrum.radius" (and optionally "input.std"), growth_rate = f(radius,
/// replicate), and the columns the summary reads.
std::string synthetic_cells(const std::vector<double>& radii, int replicates,
                            const std::function<double(double, int)>& growth) {
  std::string t = "cell,replicate,spectrum.radius,rho,predictor,growth_rate,regime\n";
  int cell = 0;
  for (double r : radii) {
    for (int k = 0; k < replicates; ++k) {
      const double g = growth(r, k);
      t += std::to_string(cell) + "," + std::to_string(k) + "," + format_value(r) + "," + format_value(r) + "," +
           format_value(0.3 * r) + "," + format_value(g) + ",critical\n";
    }
    ++cell;
  }
  return t;
}

const Crossing& find(const Summary& s, const std::string& quantity) {
  for (const auto& c : s.crossings)
    if (c.quantity == quantity) return c;
  FAIL("no quantity " << quantity);
  throw;
}

std::string capture(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  pclose(p);
  return out;
}

}  // namespace

TEST_CASE("summary: a curve linear in the axis crosses 1 where the line does", "[summary]") {
  TempDir tmp("gradflow_summary_");
  // growth = 0.25 + 0.5 r + noise per replicate: the replicate mean crosses at r = 1.5 exactly (noise sums to 0).
  const double noise[3] = {-0.02, 0.0, 0.02};
  const auto file = tmp.write("cells.csv", synthetic_cells({0.5, 1.0, 2.0, 2.5}, 3, [&](double r, int k) {
                                return 0.25 + 0.5 * r + noise[k];
                              }));
  const Summary s = compute_summary(file);
  CHECK(s.along == "spectrum.radius");
  const auto& g = find(s, "growth_rate");
  REQUIRE(g.critical);
  CHECK(*g.critical == Approx(1.5).margin(1e-12));
  REQUIRE(g.lo);
  REQUIRE(g.hi);
  // Every resample's mean lies within +-0.02 of the line: its crossing within 0.02 / 0.5 of 1.5.
  CHECK(*g.lo >= 1.5 - 0.04 - 1e-12);
  CHECK(*g.hi <= 1.5 + 0.04 + 1e-12);
  CHECK(*g.lo < *g.hi);
  CHECK(g.interval == "bootstrap");
  CHECK(g.replicates == 3);
  CHECK(g.crossings == 1);
  // predictor = 0.3 r <= 0.75 on the grid: no crossing, and the reason says where it got closest.
  const auto& p = find(s, "predictor");
  CHECK_FALSE(p.critical);
  CHECK(p.reason.find("stays below 1") != std::string::npos);
  CHECK(p.reason.find("0.75") != std::string::npos);
  // The CSV: one row per quantity, the reason column never holds a comma.
  const auto csv = summary_csv(s);
  CHECK(csv.rfind("along,quantity,critical,critical_lo,critical_hi,replicates,crossings,interval,reason\n", 0) == 0);
  // The same file gives the same summary (the bootstrap has its own fixed stream).
  CHECK(summary_csv(compute_summary(file)) == csv);
}

TEST_CASE("summary: an interval that reaches past the grid is left empty with the reason", "[summary]") {
  TempDir tmp("gradflow_summary_");
  // Replicate 0 stays below 1 everywhere, replicate 1 crosses: resamples of {0, 0} never cross.
  const auto file = tmp.write("cells.csv", synthetic_cells({1.0, 2.0}, 2, [](double r, int k) {
                                return k == 0 ? 0.9 : 0.6 * r;  // mean at r = 2: (0.9 + 1.2) / 2 = 1.05
                              }));
  const Summary s = compute_summary(file);
  const auto& g = find(s, "growth_rate");
  REQUIRE(g.critical);
  CHECK_FALSE(g.hi);
  CHECK(g.reason.find("reaches past the grid") != std::string::npos);
}

TEST_CASE("summary: --along names an axis of the run or is bad input", "[summary]") {
  TempDir tmp("gradflow_summary_");
  const auto file = tmp.write("cells.csv", synthetic_cells({1.0, 2.0}, 1, [](double r, int) { return r; }));
  SummaryOptions opt;
  opt.along = "network.units";
  CHECK_THROWS_AS(compute_summary(file, opt), InputError);
  // One replicate and no growth_rate_se column: the crossing without an interval, and why.
  const Summary s = compute_summary(file);
  const auto& g = find(s, "growth_rate");
  REQUIRE(g.critical);
  CHECK(*g.critical == 1.0);
  CHECK_FALSE(g.lo);
  CHECK(g.reason.find("one replicate") != std::string::npos);
}

namespace {

/// Runs a radius sweep and returns the summary.csv growth_rate crossing of the (only) row.
Summary run_sweep_summary(const TempDir& tmp, const std::string& name, const std::string& body) {
  const auto sc = tmp.write(name + ".toml", body);
  const auto out = tmp.path / name;
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--threads", "2", "--quiet"}) == kExitOk);
  REQUIRE(fs::exists(out / "summary.csv"));
  const Summary s = compute_summary(out / "cells.csv");
  // The file the run wrote is the summary of its cells.csv.
  CHECK(read_file(out / "summary.csv") == summary_csv(s));
  return s;
}

}  // namespace

TEST_CASE("summary of real sweeps: linear crosses at radius 1 exactly, tanh near 1, ReLU near sqrt 2",
          "[summary][sweep]") {
  TempDir tmp("gradflow_summary_");
  SECTION("identity activation, orthogonal W: growth_rate = radius, crossing at 1") {
    const Summary s = run_sweep_summary(tmp, "linear", R"(seed = 3
[network]
units = 48
steps = 120
batch = 2
activation = "identity"
[spectrum]
kind = "orthogonal"
[analysis]
burn_in = 10
series = false
[sweep]
"spectrum.radius" = [0.7, 0.9, 1.1, 1.3]
replicates = 2
)");
    const auto& g = find(s, "growth_rate");
    REQUIRE(g.critical);
    CHECK(*g.critical == Approx(1.0).margin(kLinearCrossingTol));
    REQUIRE(g.lo);
    REQUIRE(g.hi);
    CHECK(*g.lo == Approx(1.0).margin(kLinearCrossingTol));
    CHECK(*g.hi == Approx(1.0).margin(kLinearCrossingTol));
    for (const char* q : {"predictor", "predictor_rms", "bound"}) {
      INFO(q);
      REQUIRE(find(s, q).critical);
      CHECK(*find(s, q).critical == Approx(1.0).margin(kLinearCrossingTol));
    }
  }
  SECTION("tanh without input from the zero state: crossing near radius 1") {
    const Summary s = run_sweep_summary(tmp, "tanh", R"(seed = 4
[network]
units = 96
steps = 300
batch = 4
activation = "tanh"
[input]
kind = "none"
[analysis]
burn_in = 20
series = false
[sweep]
"spectrum.radius" = { start = 0.6, stop = 1.4, num = 9 }
replicates = 3
)");
    const auto& g = find(s, "growth_rate");
    REQUIRE(g.critical);
    CHECK(std::abs(*g.critical - 1.0) < kTanhCrossingTol);
    REQUIRE(g.lo);
    REQUIRE(g.hi);
    CHECK(*g.lo <= *g.critical);
    CHECK(*g.critical <= *g.hi);
  }
  SECTION("ReLU from a Gaussian state: crossing near sqrt 2") {
    const Summary s = run_sweep_summary(tmp, "relu", R"(seed = 5
[network]
units = 128
steps = 200
batch = 4
activation = "relu"
[init]
state = "gaussian"
[analysis]
burn_in = 20
series = false
[sweep]
"spectrum.radius" = { start = 1.0, stop = 2.0, num = 11 }
replicates = 3
)");
    const auto& g = find(s, "growth_rate");
    REQUIRE(g.critical);
    CHECK(std::abs(*g.critical - std::sqrt(2.0)) < kReluCrossingTol);
    // The textbook predictor rho E|f'| ~ rho / 2 never reaches 1 on this grid.
    CHECK_FALSE(find(s, "predictor").critical);
  }
}

TEST_CASE("gradflow summary OUTDIR: the table, --json and --along", "[summary][cli]") {
  TempDir tmp("gradflow_summary_");
  const auto sc = tmp.write("two.toml", R"(seed = 2
[network]
units = 32
steps = 80
batch = 2
activation = "identity"
[spectrum]
kind = "orthogonal"
[analysis]
series = false
burn_in = 5
[sweep]
"spectrum.radius" = [0.5, 1.5]
"network.units" = [16, 32]
replicates = 2
)");
  const auto out = tmp.path / "two";
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet"}) == kExitOk);
  const std::string cli = GRADFLOW_CLI;
  const auto j = nlohmann::json::parse(capture(cli + " summary " + out.string() + " --json 2>/dev/null"));
  CHECK(j["along"] == "spectrum.radius");
  CHECK(j["crossings"].size() == 2 * 5);  // 2 rows (units) x growth_rate, predictor, predictor_rms, mf_growth, bound
  for (const auto& c : j["crossings"])
    if (c["quantity"] == "growth_rate") CHECK(c["critical"].get<double>() == Approx(1.0).margin(kLinearCrossingTol));
  const std::string table = capture(cli + " summary " + out.string() + " 2>/dev/null");
  CHECK(table.find("network.units=16") != std::string::npos);
  CHECK(table.find("verdicts:") != std::string::npos);
  // Along the other axis nothing crosses (growth_rate = radius does not depend on units).
  const auto k = nlohmann::json::parse(
      capture(cli + " summary " + out.string() + " --along network.units --json 2>/dev/null"));
  CHECK(k["along"] == "network.units");
  // Bad input: an axis the run does not have.
  CHECK(gradflow_run({"summary", out.string(), "--along", "spectrum.kind"}) == kExitBadInput);
  CHECK(gradflow_run({"summary", (tmp.path / "nowhere").string()}) == kExitBadInput);
}

TEST_CASE("a one-cell run prints growth_rate with its uncertainty, the regime and every predictor",
          "[summary][cli]") {
  TempDir tmp("gradflow_summary_");
  const auto sc = tmp.write("one.toml", R"(seed = 9
[network]
units = 32
steps = 100
batch = 2
[analysis]
series = false
burn_in = 10
[sweep]
replicates = 3
)");
  const auto out = tmp.path / "one";
  const auto err = tmp.path / "stderr.txt";
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string()}, err) == kExitOk);
  const std::string text = read_file(err);
  INFO(text);
  CHECK(text.find("summary (one cell)") != std::string::npos);
  CHECK(text.find("growth_rate") != std::string::npos);
  CHECK(text.find("+-") != std::string::npos);
  CHECK(text.find("regime: ") != std::string::npos);
  for (const char* q : {"predictor ", "predictor_rms", "mf_growth", "bound"}) CHECK(text.find(q) != std::string::npos);
  // The standard error printed is sd / sqrt(3) of the three replicates' growth rates.
  const Summary s = compute_summary(out / "cells.csv");
  REQUIRE(!s.values.empty());
  const auto lines = lines_of(out / "cells.csv");
  const auto header = split_csv(lines[0]);
  const auto col = std::find(header.begin(), header.end(), "growth_rate") - header.begin();
  std::vector<double> g;
  for (std::size_t i = 1; i < lines.size(); ++i) g.push_back(std::stod(split_csv(lines[i])[col]));
  REQUIRE(g.size() == 3);
  const double m = (g[0] + g[1] + g[2]) / 3;
  const double sd = std::sqrt(((g[0] - m) * (g[0] - m) + (g[1] - m) * (g[1] - m) + (g[2] - m) * (g[2] - m)) / 2);
  CHECK(s.values[0].quantity == "growth_rate");
  CHECK(s.values[0].mean == Approx(m).epsilon(1e-14));
  REQUIRE(s.values[0].se);
  CHECK(*s.values[0].se == Approx(sd / std::sqrt(3.0)).epsilon(1e-12));
}

TEST_CASE("range axis values are written as the user would write them: 0.8 not 0.7999999999999999",
          "[summary][output]") {
  TempDir tmp("gradflow_summary_");
  const auto sc = tmp.write("range.toml", R"(seed = 1
[network]
units = 8
steps = 20
batch = 1
[analysis]
series = false
burn_in = 0
[sweep]
"spectrum.radius" = { start = 0.6, stop = 1.4, num = 9 }
)");
  const auto out = tmp.path / "range";
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet"}) == kExitOk);
  const auto lines = lines_of(out / "cells.csv");
  REQUIRE(lines.size() == 10);
  std::vector<std::string> radii;
  for (std::size_t i = 1; i < lines.size(); ++i) radii.push_back(split_csv(lines[i])[2]);
  CHECK(radii == std::vector<std::string>{"0.6", "0.7", "0.8", "0.9", "1", "1.1", "1.2", "1.3", "1.4"});
  // The rho column keeps the value actually used, in round-trip form: within 1e-13 of the printed radius.
  const auto header = split_csv(lines[0]);
  const auto rho = std::find(header.begin(), header.end(), "rho") - header.begin();
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto f = split_csv(lines[i]);
    CHECK(std::stod(f[rho]) == Approx(std::stod(f[2])).epsilon(1e-8));
  }
}
