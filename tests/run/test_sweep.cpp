// Sweeps through the real executable: thread-count determinism, interrupt (SIGINT, SIGKILL) and resume.
#include <chrono>
#include <csignal>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "run_helpers.hpp"

using namespace gradflow::test;

namespace {

// 2 x 12 x 2 x 2 = 96 cell runs of ~10-40 ms each: long enough to interrupt in the middle.
const char* kSweep = R"(title = "interrupt me"
seed = 42
[network]
units = 128
steps = 300
batch = 8
[analysis]
burn_in = 50
[sweep]
"network.activation" = ["tanh", "relu"]
"spectrum.radius" = { start = 0.5, stop = 2.5, num = 12 }
"input.std" = [0.0, 0.5]
replicates = 2
)";

fs::path write_scenario(const TempDir& tmp) { return tmp.write("sweep.toml", kSweep); }

/// Starts a sweep, waits until at least `rows` cells are written, sends `sig`, returns the exit code.
int interrupt_after(const fs::path& scenario, const fs::path& out, std::size_t rows, int sig) {
  const pid_t pid =
      spawn(GRADFLOW_CLI, {"run", scenario.string(), "-o", out.string(), "--threads", "2", "--quiet"});
  wait_for_lines(out / "cells.csv", rows + 1);
  kill(pid, sig);
  return wait_exit(pid);
}

}  // namespace

TEST_CASE("a sweep gives identical numbers with 1 and 2 threads", "[sweep][determinism]") {
  TempDir tmp("gradflow_sweep_");
  const fs::path sc = write_scenario(tmp);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "t1").string(), "--threads", "1", "--quiet"}) ==
          0);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "t2").string(), "--threads", "2", "--quiet"}) ==
          0);
  const auto a = cells_without_timing(tmp.path / "t1" / "cells.csv");
  CHECK(a.size() == 97);
  CHECK(a == cells_without_timing(tmp.path / "t2" / "cells.csv"));
  CHECK(read_file(tmp.path / "t1" / "series.csv") == read_file(tmp.path / "t2" / "series.csv"));
  for (const char* f : {"growth_rate", "predictor"})
    CHECK(read_file(tmp.path / "t1" / "heatmaps" / (std::string(f) + "_network.activation=tanh.csv")) ==
          read_file(tmp.path / "t2" / "heatmaps" / (std::string(f) + "_network.activation=tanh.csv")));
}

TEST_CASE("an interrupted sweep keeps its finished cells and --resume completes it exactly", "[sweep][resume]") {
  TempDir tmp("gradflow_sweep_");
  const fs::path sc = write_scenario(tmp);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "ref").string(), "--quiet"}) == 0);
  const auto reference = cells_without_timing(tmp.path / "ref" / "cells.csv");
  const std::string reference_series = read_file(tmp.path / "ref" / "series.csv");

  for (int sig : {SIGINT, SIGTERM, SIGKILL}) {
    INFO("signal " << sig);
    const fs::path out = tmp.path / ("int" + std::to_string(sig));
    const int code = interrupt_after(sc, out, 10, sig);
    const std::size_t kept = row_count(out / "cells.csv") - 1;
    CHECK(kept >= 10);
    CHECK(kept < 96);
    if (sig == SIGKILL) {
      CHECK(code == 128 + SIGKILL);
    } else {
      CHECK(code == kExitInterrupted);
      const auto j = nlohmann::json::parse(read_file(out / "run.json"));
      CHECK(j["status"] == "interrupted");
      CHECK(j["cells_done"].get<std::size_t>() == kept);
    }
    // Without --resume the directory is refused, untouched.
    const std::string before = read_file(out / "cells.csv");
    CHECK(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet"}) == kExitBadInput);
    CHECK(read_file(out / "cells.csv") == before);
    REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--resume", "--quiet"}) == 0);
    CHECK(cells_without_timing(out / "cells.csv") == reference);
    CHECK(read_file(out / "series.csv") == reference_series);
    const auto j = nlohmann::json::parse(read_file(out / "run.json"));
    CHECK(j["status"] == "complete");
  }
}

TEST_CASE("resuming (--resume) refuses a directory holding a different scenario", "[sweep][resume]") {
  TempDir tmp("gradflow_sweep_");
  const fs::path sc = write_scenario(tmp);
  const fs::path out = tmp.path / "o";
  interrupt_after(sc, out, 3, SIGINT);
  const std::string before = read_file(out / "cells.csv");
  CHECK(gradflow_run({"run", sc.string(), "-o", out.string(), "--resume", "--quiet", "--set", "seed=43"}) ==
        kExitBadInput);
  CHECK(read_file(out / "cells.csv") == before);
}

TEST_CASE("SIGKILL at 20 random moments always leaves a directory that --resume completes exactly",
          "[sweep][resume][kill]") {
  TempDir tmp("gradflow_sweep_");
  const fs::path sc = tmp.path / "small.toml";
  std::ofstream(sc) << R"(seed = 9
[network]
units = 48
steps = 120
batch = 4
[analysis]
burn_in = 20
[sweep]
"spectrum.radius" = { start = 0.5, stop = 2.0, num = 8 }
"network.activation" = ["tanh", "relu", "gelu"]
replicates = 2
)";
  const fs::path ref = tmp.path / "ref";
  REQUIRE(gradflow_run({"run", sc.string(), "-o", ref.string(), "--quiet"}) == 0);
  const auto reference = cells_without_timing(ref / "cells.csv");
  const std::string reference_series = read_file(ref / "series.csv");
  const int rows = static_cast<int>(reference.size()) - 1;  // 48

  // Kill moments by progress, not by the clock: the run is killed a random 0-3 ms after its cells.csv reaches
  // a random number of lines (-1: no wait, during start-up; rows + 1: all rows written, during completion).
  // A delay drawn against one reference run's wall time assumed the trials would run as fast as it did: under
  // a load that changes between the reference and the trials most kills could land after the end.
  std::mt19937 rng(20261127);  // fixed: the same kill moments on every run of the test
  std::uniform_int_distribution<int> lines(-1, rows + 1), delay_ms(0, 3);
  int interrupted = 0, mid_run = 0;
  for (int trial = 0; trial < 20; ++trial) {
    const fs::path out = tmp.path / ("k" + std::to_string(trial));
    const int at_lines = lines(rng), delay = delay_ms(rng);
    const pid_t pid =
        spawn(GRADFLOW_CLI, {"run", sc.string(), "-o", out.string(), "--threads", "2", "--quiet"});
    if (at_lines >= 0) wait_for_lines(out / "cells.csv", static_cast<std::size_t>(at_lines));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    kill(pid, SIGKILL);
    if (wait_exit(pid) == 128 + SIGKILL) ++interrupted;
    if (at_lines <= rows) ++mid_run;  // at most rows - 1 rows written: the run cannot have ended yet
    INFO("trial " << trial << ": killed " << delay << " ms after " << at_lines << " lines of cells.csv");
    // Resume (twice when the first resume is killed too is not needed: one clean resume must finish it).
    REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--resume", "--quiet"}) == 0);
    CHECK(cells_without_timing(out / "cells.csv") == reference);
    CHECK(read_file(out / "series.csv") == reference_series);
  }
  // Kills meant to land before the last row do (a run that ended first would need the test to sleep through
  // its remaining cells after seeing the line count, and a one-line poll is 5 ms).
  CHECK(interrupted >= mid_run / 2);
  CHECK(mid_run >= 10);
}
