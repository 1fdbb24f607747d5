// MPI sweeps through mpirun and the real executable: files identical to a single-process run (row for row,
// bit for bit except the `seconds` column), shards under MPI, interrupts, a dying rank, --resume, and
// start-up errors. Built only with GRADFLOW_WITH_MPI.
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "run_helpers.hpp"

using namespace gradflow::test;

namespace {

// 2 x 4 x 2 x 2 = 32 runs of a few ms.
const char* kSweep = R"(title = "mpi"
seed = 21
[network]
units = 64
steps = 150
batch = 4
[analysis]
burn_in = 10
[sweep]
"network.activation" = ["tanh", "relu"]
"spectrum.radius" = { start = 0.6, stop = 1.8, num = 4 }
"input.std" = [0.0, 0.5]
replicates = 2
)";

/// The 32-cell scenario of the interrupt tests and its single-process run (written by the CTest fixture
/// mpi_reference_run, or here when the test runs on its own).
const fs::path kLong = fs::path(GRADFLOW_TEST_DATA) / "data" / "mpi_interrupt.toml";
constexpr std::size_t kLongPairs = 32;

/// The single-process run of kLong the MPI runs are compared with, kept in the build tree between the test
/// processes; redone when the gradflow binary is newer than it (a reference left by an earlier build of the
/// same tree names that build's commit in run.json, which the comparison includes).
fs::path long_reference() {
  const fs::path dir = GRADFLOW_MPI_REFERENCE;
  if (!fs::exists(dir / "run.json") ||
      fs::last_write_time(GRADFLOW_CLI) > fs::last_write_time(dir / "run.json") ||
      nlohmann::json::parse(read_file(dir / "run.json")).value("status", "") != "complete") {
    const int code =
        wait_exit(spawn(GRADFLOW_CLI, {"run", kLong.string(), "-o", dir.string(), "--force", "--quiet"}));
    if (code != 0) throw std::runtime_error("reference run failed");
  }
  return dir;
}

/// mpirun -n RANKS [flags] gradflow ARGS...
std::vector<std::string> mpirun_args(int ranks, const std::vector<std::string>& args) {
  std::vector<std::string> a{GRADFLOW_MPIEXEC_NUMPROC_FLAG, std::to_string(ranks)};
  std::stringstream flags(GRADFLOW_MPIEXEC_FLAGS);
  for (std::string f; flags >> f;) a.push_back(f);
  a.push_back(GRADFLOW_CLI);
  a.insert(a.end(), args.begin(), args.end());
  return a;
}

pid_t spawn_mpi(int ranks, const std::vector<std::string>& args, const fs::path& err = {}) {
  return spawn(GRADFLOW_MPIEXEC, mpirun_args(ranks, args), err);
}

int run_mpi(int ranks, const std::vector<std::string>& args, const fs::path& err = {}) {
  return wait_exit(spawn_mpi(ranks, args, err));
}

/// The processes started under `pid` (mpirun's ranks, at any depth), with their MPI rank.
std::vector<std::pair<pid_t, int>> ranks_under(pid_t pid) {
  std::vector<std::pair<pid_t, int>> found;
  std::vector<pid_t> todo{pid};
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    const fs::path task = fs::path("/proc") / std::to_string(p) / "task";
    std::error_code ec;
    for (const auto& t : fs::directory_iterator(task, ec)) {
      std::stringstream kids(read_file(t.path() / "children"));
      for (pid_t k; kids >> k;) {
        todo.push_back(k);
        const std::string env = read_file(fs::path("/proc") / std::to_string(k) / "environ");
        for (const std::string var : {"OMPI_COMM_WORLD_RANK=", "PMI_RANK="}) {
          const auto at = env.find(var);
          if (at != std::string::npos && (at == 0 || env[at - 1] == '\0')) {
            found.emplace_back(k, std::stoi(env.substr(at + var.size())));
            break;
          }
        }
      }
    }
  }
  return found;
}

/// Waits until all `ranks` rank processes exist under mpirun.
std::vector<std::pair<pid_t, int>> wait_for_ranks(pid_t mpirun, std::size_t ranks) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto found = ranks_under(mpirun);
  while (found.size() < ranks && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    found = ranks_under(mpirun);
  }
  return found;
}

void require_same_run(const fs::path& reference, const fs::path& other) {
  CHECK(cells_without_timing(other / "cells.csv") == cells_without_timing(reference / "cells.csv"));
  CHECK(read_file(other / "series.csv") == read_file(reference / "series.csv"));
  CHECK(heatmaps_of(other) == heatmaps_of(reference));
  CHECK(run_json_without_volatile(other) == run_json_without_volatile(reference));
}

}  // namespace

TEST_CASE("mpirun -n 2 and -n 3 give the files of a single-process run", "[mpi]") {
  TempDir tmp("gradflow_mpi_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "single").string(), "--quiet"}) == 0);
  CHECK(heatmaps_of(tmp.path / "single").size() == 12);  // (5 metrics + growth_rate_sd) x 2 facets

  for (auto [ranks, threads] : {std::pair{2, 1}, std::pair{3, 2}}) {
    INFO(ranks << " ranks x " << threads << " threads");
    const fs::path out = tmp.path / ("mpi" + std::to_string(ranks));
    REQUIRE(run_mpi(ranks, {"run", sc.string(), "-o", out.string(), "--threads", std::to_string(threads),
                            "--quiet"}) == 0);
    require_same_run(tmp.path / "single", out);
    const auto mpi = nlohmann::json::parse(read_file(out / "run.json"))["mpi"];
    CHECK(mpi["ranks"] == ranks);
    CHECK(mpi["threads"].size() == static_cast<std::size_t>(ranks));
    std::int64_t sum = 0;
    for (const auto& c : mpi["cells_per_rank"]) sum += c.get<std::int64_t>();
    CHECK(sum == 32);
    CHECK(mpi["cells_per_rank"][1].get<std::int64_t>() > 0);  // a worker computed cells
  }
}

TEST_CASE("shards run under mpirun merge into the single-process run", "[mpi][merge]") {
  TempDir tmp("gradflow_mpi_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "single").string(), "--quiet"}) == 0);
  for (const char* shard : {"0/2", "1/2"})
    REQUIRE(run_mpi(2, {"run", sc.string(), "--shard", shard, "-o",
                        (tmp.path / ("part" + std::string(1, shard[0]))).string(), "--quiet"}) == 0);
  REQUIRE(gradflow_run({"merge", (tmp.path / "part0").string(), (tmp.path / "part1").string(), "-o",
                        (tmp.path / "merged").string(), "--quiet"}) == 0);
  require_same_run(tmp.path / "single", tmp.path / "merged");
}

TEST_CASE(
    "SIGTERM to every rank (as a scheduler sends it): exit 130, finished cells kept, --resume completes",
    "[mpi][resume]") {
  TempDir tmp("gradflow_mpi_");
  const fs::path sc = kLong;
  const fs::path reference = long_reference();
  const fs::path out = tmp.path / "mpi";
  const pid_t mpirun = spawn_mpi(2, {"run", sc.string(), "-o", out.string(), "--quiet"});
  const auto ranks = wait_for_ranks(mpirun, 2);
  REQUIRE(ranks.size() == 2);
  wait_for_lines(out / "cells.csv", 1 + 4);
  for (const auto& [pid, rank] : ranks) kill(pid, SIGTERM);
  CHECK(wait_exit(mpirun) == 130);
  const std::size_t kept = row_count(out / "cells.csv") - 1;
  CHECK(kept >= 4);
  CHECK(kept < kLongPairs);
  const auto j = nlohmann::json::parse(read_file(out / "run.json"));
  CHECK(j["status"] == "interrupted");
  CHECK(j["cells_done"].get<std::size_t>() == kept);

  REQUIRE(run_mpi(2, {"run", sc.string(), "-o", out.string(), "--resume", "--quiet"}) == 0);
  require_same_run(reference, out);
}

TEST_CASE("a worker rank that dies fails the run loudly, keeps finished cells, and --resume completes it",
          "[mpi][resume]") {
  TempDir tmp("gradflow_mpi_");
  const fs::path sc = kLong;
  const fs::path reference = long_reference();
  const fs::path out = tmp.path / "mpi";
  const fs::path err = tmp.path / "mpirun.err";
  const pid_t mpirun = spawn_mpi(2, {"run", sc.string(), "-o", out.string(), "--quiet"}, err);
  const auto ranks = wait_for_ranks(mpirun, 2);
  REQUIRE(ranks.size() == 2);
  wait_for_lines(out / "cells.csv", 1 + 4);
  for (const auto& [pid, rank] : ranks)
    if (rank == 1) kill(pid, SIGKILL);
  CHECK(wait_exit(mpirun) != 0);
  INFO(read_file(err));
  CHECK(read_file(err).find("signal 9") != std::string::npos);  // mpirun names the rank that died
  const std::size_t kept = row_count(out / "cells.csv") - 1;
  CHECK(kept >= 4);
  CHECK(kept < kLongPairs);
  CHECK(nlohmann::json::parse(read_file(out / "run.json"))["status"] == "interrupted");
  REQUIRE(run_mpi(2, {"run", sc.string(), "-o", out.string(), "--resume", "--quiet"}) == 0);
  require_same_run(reference, out);
}

TEST_CASE("a worker told to stop alone hands its cells back and the run completes without it", "[mpi]") {
  TempDir tmp("gradflow_mpi_");
  const fs::path reference = long_reference();
  const fs::path out = tmp.path / "mpi";
  const pid_t mpirun = spawn_mpi(3, {"run", kLong.string(), "-o", out.string(), "--threads", "1", "--quiet"});
  const auto ranks = wait_for_ranks(mpirun, 3);
  REQUIRE(ranks.size() == 3);
  wait_for_lines(out / "cells.csv", 1 + 4);
  for (const auto& [pid, rank] : ranks)
    if (rank == 2) kill(pid, SIGTERM);
  CHECK(wait_exit(mpirun) == 0);
  require_same_run(reference, out);
  CHECK(nlohmann::json::parse(read_file(out / "run.json"))["status"] == "complete");
}

TEST_CASE("Ctrl-C on mpirun: run.json says interrupted and the finished cells are kept", "[mpi]") {
  TempDir tmp("gradflow_mpi_");
  const fs::path sc = kLong;
  const fs::path out = tmp.path / "mpi";
  // ~17x longer cells (0.3-2 s): mpirun passes SIGINT on as SIGTERM only after ~1 s, and the run must still
  // be going then, even on a machine several times faster than this one.
  const pid_t mpirun =
      spawn_mpi(2, {"run", sc.string(), "-o", out.string(), "--quiet", "--set", "network.steps=5000"});
  REQUIRE(wait_for_ranks(mpirun, 2).size() == 2);
  wait_for_lines(out / "cells.csv", 1 + 2);
  kill(mpirun, SIGINT);
  CHECK(wait_exit(mpirun) != 0);  // Open MPI's mpirun exits with 1 after it stopped the job
  const std::size_t kept = row_count(out / "cells.csv") - 1;
  CHECK(kept >= 2);
  CHECK(kept < kLongPairs);
  const auto j = nlohmann::json::parse(read_file(out / "run.json"));
  CHECK(j["status"] == "interrupted");
  CHECK(j["cells_done"].get<std::size_t>() <= kept);  // cells landing after the announcement are in cells.csv
}

TEST_CASE("start-up errors under mpirun: exit 2 on every rank, one message, nothing written", "[mpi]") {
  TempDir tmp("gradflow_mpi_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  const fs::path err = tmp.path / "err";
  CHECK(run_mpi(2, {"run", sc.string(), "-o", (tmp.path / "x").string(), "--set", "network.units=-3"}, err) ==
        2);
  const std::string message = read_file(err);
  INFO(message);
  const auto at = message.find("gradflow: --set network.units=-3: network.units = -3: must be >= 1");
  CHECK(at != std::string::npos);
  CHECK(message.find("gradflow:", at + 1) == std::string::npos);  // printed once, not once per rank
  CHECK_FALSE(fs::exists(tmp.path / "x"));

  REQUIRE(run_mpi(2, {"run", sc.string(), "-o", (tmp.path / "done").string(), "--quiet"}) == 0);
  CHECK(run_mpi(2, {"run", sc.string(), "-o", (tmp.path / "done").string()}, err) == 2);
  CHECK(read_file(err).find("already holds this run") != std::string::npos);
}

TEST_CASE("a disk that fills up under mpirun: exit 74, whole rows kept, --resume under mpirun completes it",
          "[mpi][diskfull]") {
  TempDir tmp("gradflow_mpi_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "single").string(), "--quiet"}) == 0);
  Tmpfs disk(tmp.path / "mnt");  // after tmp: unmounted first
  if (!disk.mounted()) {
    WARN("skipped: cannot mount tmpfs (" << disk.error() << ")");
    return;
  }
  // series.csv takes ~14 kB per cell: 128 kB stop the run after a few cells.
  REQUIRE(disk.resize(128 * 1024));
  const fs::path out = tmp.path / "mnt" / "out", err = tmp.path / "mpirun.err";
  CHECK(run_mpi(3, {"run", sc.string(), "-o", out.string(), "--threads", "1", "--quiet"}, err) ==
        kExitWriteFailed);
  const std::string text = read_file(err);
  INFO(text);
  CHECK(text.find("gradflow: cannot write " + out.string() + "/series.csv: No space left on device") !=
        std::string::npos);
  const std::string cells = read_file(out / "cells.csv");
  CHECK(cells.back() == '\n');
  const auto rows = cells_without_timing(out / "cells.csv");
  const auto reference = cells_without_timing(tmp.path / "single" / "cells.csv");
  CHECK(rows.size() > 1);
  CHECK(rows.size() < reference.size());
  for (std::size_t i = 1; i < rows.size(); ++i)
    CHECK(std::find(reference.begin(), reference.end(), rows[i]) != reference.end());
  REQUIRE(disk.resize(8 << 20));
  REQUIRE(run_mpi(2, {"run", sc.string(), "-o", out.string(), "--resume", "--quiet"}) == 0);
  require_same_run(tmp.path / "single", out);
}
