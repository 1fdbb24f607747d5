// Runs left unattended, through the real executable: one writer per output directory (its lock), signals
// that stop a run inside a cell, progress when stderr is not a terminal, a closed pipe on stderr.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "gradflow/run/output.hpp"
#include "run_helpers.hpp"

using namespace gradflow::test;

namespace {

// 48 cells of ~10-40 ms each with one thread: long enough to hold the lock while others try.
const char* kSweep = R"(title = "lock me"
seed = 7
[network]
units = 128
steps = 300
batch = 8
[analysis]
burn_in = 50
[sweep]
"spectrum.radius" = { start = 0.5, stop = 2.5, num = 12 }
"input.std" = [0.0, 0.5]
replicates = 2
)";

// One cell that takes many seconds (a 2048-unit dense W: its radius solve, then 20000 GEMV steps).
const char* kLongCell = R"(title = "one long cell"
[network]
units = 2048
steps = 20000
batch = 1
)";

/// Waits until `file` contains `text` (or 120 s pass); whether it does.
bool wait_for_text(const fs::path& file, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    if (read_file(file).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

/// The (cell, replicate) keys of a CSV's rows; fails the test on a duplicate.
std::set<std::string> row_keys(const fs::path& file) {
  std::set<std::string> keys;
  const auto lines = lines_of(file);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto f = split_csv(lines[i]);
    REQUIRE(f.size() >= 2);
    INFO(file.string() << " row " << i);
    CHECK(keys.insert(f[0] + "," + f[1]).second);
  }
  return keys;
}

}  // namespace

TEST_CASE("a second run, --resume, --force or merge into a directory in use is refused naming its holder",
          "[unattended][lock]") {
  TempDir tmp("gradflow_lock_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  const fs::path out = tmp.path / "out";
  const fs::path part = tmp.path / "part";  // a finished run of the same scenario, for merge
  REQUIRE(gradflow_run({"run", sc.string(), "-o", part.string(), "--quiet"}) == kExitOk);
  const pid_t first = spawn(GRADFLOW_CLI, {"run", sc.string(), "-o", out.string(), "--threads", "1", "--quiet"});
  wait_for_lines(out / "cells.csv", 3);
  const std::vector<std::vector<std::string>> intruders = {
      {"run", sc.string(), "-o", out.string(), "--quiet", "--resume"},
      {"run", sc.string(), "-o", out.string(), "--quiet", "--force"},
      {"run", sc.string(), "-o", out.string(), "--quiet"},
      {"merge", part.string(), "-o", out.string(), "--force", "--quiet"}};
  for (const auto& args : intruders) {
    INFO(args[0] << " " << args.back());
    const fs::path err = tmp.path / "err.txt";
    CHECK(gradflow_run(args, err) == kExitBadInput);
    const std::string text = read_file(err);
    INFO(text);
    CHECK(text.find("in use by another gradflow (pid " + std::to_string(first)) != std::string::npos);
    CHECK(text.find("started ") != std::string::npos);
  }
  REQUIRE(wait_exit(first) == kExitOk);
  const auto j = nlohmann::json::parse(read_file(out / "run.json"));
  CHECK(j["status"] == "complete");
  CHECK(row_keys(out / "cells.csv").size() == 48);
  CHECK(row_count(out / "series.csv") == 1 + 48 * 301);
  CHECK(!fs::exists(out / ".gradflow.lock"));  // released
}

TEST_CASE("two fresh runs into one directory at once: one runs, the other is refused", "[unattended][lock]") {
  TempDir tmp("gradflow_lock_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  const fs::path out = tmp.path / "out";
  const pid_t a = spawn(GRADFLOW_CLI, {"run", sc.string(), "-o", out.string(), "--threads", "1", "--quiet"});
  const pid_t b = spawn(GRADFLOW_CLI, {"run", sc.string(), "-o", out.string(), "--threads", "1", "--quiet"});
  const int ca = wait_exit(a), cb = wait_exit(b);
  INFO("exit codes " << ca << " " << cb);
  // Either the second start found the lock (exit 2), or it started after the first had finished and found
  // its complete results (exit 2 too): never two writers.
  CHECK(((ca == kExitOk && cb == kExitBadInput) || (ca == kExitBadInput && cb == kExitOk)));
  CHECK(row_keys(out / "cells.csv").size() == 48);
  CHECK(row_count(out / "cells.csv") == 49);
}

TEST_CASE("the lock of a killed run is taken over by --resume", "[unattended][lock]") {
  TempDir tmp("gradflow_lock_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  const fs::path out = tmp.path / "out";
  const pid_t pid = spawn(GRADFLOW_CLI, {"run", sc.string(), "-o", out.string(), "--threads", "1", "--quiet"});
  wait_for_lines(out / "cells.csv", 3);
  kill(pid, SIGKILL);
  REQUIRE(wait_exit(pid) == 128 + SIGKILL);
  REQUIRE(fs::exists(out / ".gradflow.lock"));  // left behind, naming a dead process
  CHECK(read_file(out / ".gradflow.lock").find("pid " + std::to_string(pid)) != std::string::npos);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet", "--resume"}) == kExitOk);
  CHECK(row_keys(out / "cells.csv").size() == 48);
  CHECK(!fs::exists(out / ".gradflow.lock"));
}

TEST_CASE("SIGINT, SIGTERM and SIGHUP stop a one-cell run inside its cell: exit 130, run.json interrupted",
          "[unattended][signal]") {
  TempDir tmp("gradflow_signal_");
  const fs::path sc = tmp.write("long.toml", kLongCell);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    INFO("signal " << sig);
    const fs::path out = tmp.path / ("out" + std::to_string(sig));
    const fs::path err = tmp.path / ("err" + std::to_string(sig));
    const pid_t pid =
        spawn(GRADFLOW_CLI, {"run", sc.string(), "-o", out.string(), "--progress-every", "0.2"}, err);
    // The heartbeat shows the cell is being computed (its solve or its passes) before the signal.
    REQUIRE(wait_for_text(err, " products]"));
    kill(pid, sig);
    CHECK(wait_exit(pid) == 130);
    const auto j = nlohmann::json::parse(read_file(out / "run.json"));
    CHECK(j["status"] == "interrupted");
    CHECK(j["cells_done"] == 0);
    CHECK(row_count(out / "cells.csv") == 1);  // the unfinished cell left no row
    const std::string text = read_file(err);
    INFO(text);
    CHECK(text.find("stopping; cells in progress are discarded") != std::string::npos);
    CHECK(text.find("complete with --resume") != std::string::npos);
  }
}

TEST_CASE("a second signal aborts at once, leaving a directory --resume completes", "[unattended][signal]") {
  TempDir tmp("gradflow_signal_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  const fs::path out = tmp.path / "out";
  const fs::path err = tmp.path / "err";
  const pid_t pid = spawn(GRADFLOW_CLI, {"run", sc.string(), "-o", out.string(), "--threads", "1"}, err);
  wait_for_lines(out / "cells.csv", 3);
  kill(pid, SIGINT);
  kill(pid, SIGINT);
  CHECK(wait_exit(pid) == 130);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet", "--resume"}) == kExitOk);
  CHECK(row_keys(out / "cells.csv").size() == 48);
}

TEST_CASE("without a terminal, progress comes as plain lines naming OUTDIR; --quiet silences them",
          "[unattended][progress]") {
  TempDir tmp("gradflow_progress_");
  const fs::path sc = tmp.write("s.toml", "[network]\nunits = 16\nsteps = 20\nbatch = 2\n[sweep]\n"
                                         "\"spectrum.radius\" = [0.5, 1.0, 1.5]\n");
  const fs::path err = tmp.path / "err";
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "a").string()}, err) == kExitOk);
  const std::string text = read_file(err);
  INFO(text);
  CHECK(text.find("gradflow: " + (tmp.path / "a").string() + ": cells 3/3") != std::string::npos);
  CHECK(text.find('\r') == std::string::npos);  // no terminal redraws in a log file
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "b").string(), "--quiet"}, err) == kExitOk);
  CHECK(read_file(err).empty());
}

TEST_CASE("a closed pipe on stderr does not change a complete run's exit code", "[unattended][signal]") {
  TempDir tmp("gradflow_pipe_");
  const fs::path sc = tmp.write("s.toml", "[network]\nunits = 16\nsteps = 20\nbatch = 2\n[sweep]\n"
                                         "\"spectrum.radius\" = [0.5, 1.0, 1.5]\n");
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  close(fds[0]);  // nobody reads: every write to stderr gets EPIPE (and SIGPIPE unless ignored)
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    const std::string out = (tmp.path / "o").string();
    execl(GRADFLOW_CLI, GRADFLOW_CLI, "run", sc.c_str(), "-o", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  CHECK(wait_exit(pid) == kExitOk);
  CHECK(nlohmann::json::parse(read_file(tmp.path / "o" / "run.json"))["status"] == "complete");
}

namespace {

/// A 4 x 4 W as a Matrix Market array (column-major), entries scaled by `scale`.
std::string w_mtx(double scale) {
  std::string text = "%%MatrixMarket matrix array real general\n4 4\n";
  for (int j = 0; j < 4; ++j)
    for (int i = 0; i < 4; ++i) text += std::to_string(scale * (0.1 * (i + 1) - 0.07 * j + (i == j))) + "\n";
  return text;
}

const char* kFileScenario = R"([network]
units = 4
steps = 30
batch = 2
[spectrum]
kind = "file"
file = "W.mtx"
[sweep]
"network.activation" = ["tanh", "relu", "identity"]
replicates = 2
)";

}  // namespace

TEST_CASE("run.json records the digest of every input file and the build; --resume refuses a changed file",
          "[unattended][inputs]") {
  TempDir tmp("gradflow_inputs_");
  const fs::path sc = tmp.write("s.toml", kFileScenario);
  tmp.write("W.mtx", w_mtx(1.0));
  const fs::path out = tmp.path / "out";
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet"}) == kExitOk);
  const auto j = nlohmann::json::parse(read_file(out / "run.json"));
  REQUIRE(j["inputs"].size() == 1);
  CHECK(j["inputs"][0]["key"] == "spectrum.file");
  CHECK(j["inputs"][0]["bytes"] == read_file(tmp.path / "W.mtx").size());
  CHECK(j["inputs"][0]["fnv1a64"].get<std::string>().size() == 16);
  CHECK(j["build"]["version"] == j["gradflow_version"]);
  CHECK(j["build"].contains("compiler"));
  CHECK(j["build"].contains("commit"));
  // The same content again: resumable (nothing to do).
  CHECK(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet", "--resume"}) == kExitOk);

  tmp.write("W.mtx", w_mtx(2.0));  // replaced between the run and its resume
  const std::string before = read_file(out / "cells.csv");
  const fs::path err = tmp.path / "err";
  CHECK(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet", "--resume"}, err) == kExitBadInput);
  INFO(read_file(err));
  CHECK(read_file(err).find("W.mtx (spectrum.file): content changed since the run in") != std::string::npos);
  CHECK(read_file(out / "cells.csv") == before);
}

TEST_CASE("resuming a directory written by another gradflow version is refused", "[unattended][inputs]") {
  TempDir tmp("gradflow_inputs_");
  const fs::path sc = tmp.write("s.toml", "[network]\nunits = 8\nsteps = 10\nbatch = 1\n");
  const fs::path out = tmp.path / "out";
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet"}) == kExitOk);
  auto j = nlohmann::json::parse(read_file(out / "run.json"));
  j["gradflow_version"] = "0.0.1";  // as that version would have written it: its own hash
  j["scenario_hash"] = "0123456789abcdef";
  std::ofstream(out / "run.json") << j.dump(2);
  const fs::path err = tmp.path / "err";
  CHECK(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet", "--resume"}, err) == kExitBadInput);
  INFO(read_file(err));
  CHECK(read_file(err).find("holds a run written by gradflow 0.0.1") != std::string::npos);
}

TEST_CASE("merge refuses shards that read different contents of the same file", "[unattended][inputs]") {
  TempDir tmp("gradflow_inputs_");
  const fs::path sc = tmp.write("s.toml", kFileScenario);
  tmp.write("W.mtx", w_mtx(1.0));
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "p0").string(), "--quiet", "--shard", "0/2"}) ==
          kExitOk);
  tmp.write("W.mtx", w_mtx(2.0));
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "p1").string(), "--quiet", "--shard", "1/2"}) ==
          kExitOk);
  const fs::path err = tmp.path / "err";
  CHECK(gradflow_run({"merge", (tmp.path / "p0").string(), (tmp.path / "p1").string(), "-o",
                      (tmp.path / "m").string(), "--quiet"},
                     err) == kExitBadInput);
  INFO(read_file(err));
  CHECK(read_file(err).find("spectrum.file") != std::string::npos);
  CHECK(read_file(err).find("read different files") != std::string::npos);
  CHECK(!fs::exists(tmp.path / "m" / "cells.csv"));
}

TEST_CASE("a FIFO as the scenario, and a symlink or FIFO planted in OUTDIR, are refused (exit 2)",
          "[unattended][hostile]") {
  TempDir tmp("gradflow_hostile_");
  const fs::path fifo = tmp.path / "s.toml";
  REQUIRE(mkfifo(fifo.c_str(), 0644) == 0);
  const fs::path err = tmp.path / "err";
  CHECK(gradflow_run({"run", fifo.string(), "-o", (tmp.path / "o").string(), "--quiet"}, err) == kExitBadInput);
  CHECK(read_file(err).find("is not a regular file") != std::string::npos);

  const fs::path sc = tmp.write("ok.toml", "[network]\nunits = 8\nsteps = 5\nbatch = 1\n");
  const fs::path victim = tmp.write("victim.txt", "precious\n");
  for (const char* name : {"cells.csv", "series.csv", "run.json"}) {
    INFO(name);
    const fs::path out = tmp.path / (std::string("sym_") + name);
    fs::create_directories(out);
    fs::create_symlink(victim, out / name);
    CHECK(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet", "--force"}, err) == kExitBadInput);
    CHECK(read_file(err).find("is a symbolic link") != std::string::npos);
    CHECK(read_file(victim) == "precious\n");
  }
  const fs::path out = tmp.path / "fifo_out";
  fs::create_directories(out);
  REQUIRE(mkfifo((out / "cells.csv").c_str(), 0644) == 0);
  CHECK(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet", "--resume"}, err) == kExitBadInput);
  CHECK(read_file(err).find("not a regular file") != std::string::npos);
}

TEST_CASE("a key without effect under the chosen kinds warns and still runs; --strict refuses it",
          "[unattended][keys]") {
  TempDir tmp("gradflow_keys_");
  const fs::path sc = tmp.write("s.toml", "[network]\nunits = 8\nsteps = 5\nbatch = 1\nactivation = \"tanh\"\n"
                                          "beta = 3\n");
  const fs::path err = tmp.path / "err";
  CHECK(gradflow_run({"run", sc.string(), "-o", (tmp.path / "a").string(), "--quiet"}, err) == kExitOk);
  CHECK(read_file(err).find("warning: " + sc.string() + ":6:1: network.beta = 3.0: has no effect") !=
        std::string::npos);
  CHECK(gradflow_run({"run", sc.string(), "-o", (tmp.path / "b").string(), "--quiet", "--strict"}, err) ==
        kExitBadInput);
  CHECK(!fs::exists(tmp.path / "b" / "cells.csv"));
  // Used by some cell of the sweep: no warning.
  const fs::path mixed = tmp.write("m.toml", "[network]\nunits = 8\nsteps = 5\nbatch = 1\nbeta = 3\n[sweep]\n"
                                             "\"network.activation\" = [\"tanh\", \"softplus\"]\n");
  CHECK(gradflow_run({"run", mixed.string(), "-o", (tmp.path / "c").string(), "--quiet", "--strict"}, err) ==
        kExitOk);
  CHECK(read_file(err).empty());
}

TEST_CASE("forcing (--force) removes exactly what gradflow wrote: the old run's heatmaps go, the user's files stay",
          "[unattended][hygiene]") {
  TempDir tmp("gradflow_force_");
  const fs::path two = tmp.write("two.toml", "[network]\nunits = 8\nsteps = 5\nbatch = 1\n[sweep]\n"
                                             "\"spectrum.radius\" = [0.5, 1.0]\n\"input.std\" = [0.0, 0.5]\n");
  const fs::path one = tmp.write("one.toml", "[network]\nunits = 8\nsteps = 5\nbatch = 1\n");
  const fs::path out = tmp.path / "out";
  REQUIRE(gradflow_run({"run", two.string(), "-o", out.string(), "--quiet"}) == kExitOk);
  REQUIRE(!heatmaps_of(out).empty());
  std::ofstream(out / "notes.txt") << "mine\n";
  REQUIRE(gradflow_run({"run", one.string(), "-o", out.string(), "--quiet", "--force"}) == kExitOk);
  CHECK(!fs::exists(out / "heatmaps"));  // the old run's heatmaps would be read as this run's
  CHECK(read_file(out / "notes.txt") == "mine\n");

  const fs::path out2 = tmp.path / "out2";
  REQUIRE(gradflow_run({"run", two.string(), "-o", out2.string(), "--quiet"}) == kExitOk);
  std::ofstream(out2 / "heatmaps" / "figure.png") << "not gradflow's\n";
  REQUIRE(gradflow_run({"run", one.string(), "-o", out2.string(), "--quiet", "--force"}) == kExitOk);
  CHECK(read_file(out2 / "heatmaps" / "figure.png") == "not gradflow's\n");
  CHECK(heatmaps_of(out2).size() == 1);
}

TEST_CASE("heatmap file names stay under 255 bytes with long facets; run.json keeps the full facet",
          "[unattended][hygiene]") {
  // Ten facet axes of long names and values: the plain names (metric + "_key=value" per facet) pass 255 bytes.
  TempDir tmp("gradflow_facets_");
  const fs::path sc = tmp.write("facets.toml", R"([network]
units = 4
steps = 6
batch = 1
activation = "leaky_relu"
[init]
state = "gaussian"
[analysis]
burn_in = 2
series = false
[sweep]
"spectrum.radius" = [0.5, 1.5]
"input.std" = [0.25, 0.5]
"bias.std" = [0.0123456789012345, 0.0223456789012345]
"bias.mean" = [0.0123456789012345]
"init.std" = [0.0123456789012345]
"network.alpha" = [0.0123456789012345]
"analysis.regime_tolerance" = [0.0123456789012345]
"network.activation" = ["leaky_relu"]
"network.slope_at_kink" = ["right"]
"network.precision" = ["double"]
"spectrum.kind" = ["ginibre"]
"network.cell" = ["vanilla"]
)");
  const fs::path out = tmp.path / "out";
  const fs::path err = tmp.path / "err";
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet"}, err) == kExitOk);
  INFO(read_file(err));
  const auto j = nlohmann::json::parse(read_file(out / "run.json"));
  CHECK(j["status"] == "complete");
  const auto& listed = j["files"]["heatmaps"];
  REQUIRE(listed.size() == 2 * 6);  // two facets (bias.std) x five metrics and growth_rate_sd
  std::set<std::string> names;
  std::size_t longest_plain = 0;
  for (const auto& h : listed) {
    const std::string file = h["file"], facet = h["facet"], metric = h["metric"];
    INFO(file);
    // What the name would be in full: the metric, then "_" and each "key=value" of the facet.
    std::string plain = metric;
    for (std::size_t at = 0; at <= facet.size();) {
      const std::size_t end = std::min(facet.find(", ", at), facet.size());
      plain += "_" + facet.substr(at, end - at);
      at = end + 2;
    }
    longest_plain = std::max(longest_plain, plain.size() + 4);
    CHECK(file.rfind("heatmaps/", 0) == 0);
    CHECK(fs::path(file).filename().string().size() <= 251);  // 255 less ".tmp" of the atomic write
    CHECK(fs::is_regular_file(out / file));
    CHECK(read_file(out / file).find("for " + facet + "\n") != std::string::npos);  // header keeps the full facet
    CHECK(facet.find("bias.std=") != std::string::npos);
    names.insert(file);
  }
  CHECK(longest_plain > 255);  // the premise: these facets would not fit in a file name
  CHECK(names.size() == listed.size());
  CHECK(heatmaps_of(out).size() == listed.size());  // nothing else under heatmaps/
  // --force with a scenario that writes no heatmaps removes exactly them.
  const fs::path one = tmp.write("one.toml", "[network]\nunits = 4\nsteps = 6\nbatch = 1\n");
  REQUIRE(gradflow_run({"run", one.string(), "-o", out.string(), "--quiet", "--force"}) == kExitOk);
  CHECK(!fs::exists(out / "heatmaps"));
}

TEST_CASE("heatmap_file_name keeps short names and shortens long ones deterministically and distinctly",
          "[unattended][hygiene]") {
  CHECK(gradflow::heatmap_file_name("growth_rate", "_network.activation=tanh") ==
        "growth_rate_network.activation=tanh.csv");
  CHECK(gradflow::heatmap_file_name("growth_rate", "").size() == std::string("growth_rate.csv").size());
  const std::string facet_a = "_" + std::string(300, 'a') + "=1", facet_b = "_" + std::string(300, 'a') + "=2";
  const std::string a = gradflow::heatmap_file_name("bound", facet_a), b = gradflow::heatmap_file_name("bound", facet_b);
  CHECK(a.size() <= 251);
  CHECK(a.rfind("bound_aaaa", 0) == 0);
  CHECK(a.size() > 4);
  CHECK(a.substr(a.size() - 4) == ".csv");
  CHECK(a != b);  // same prefix, different facets
  CHECK(a == gradflow::heatmap_file_name("bound", facet_a));
  // 251 bytes exactly is kept; one more is shortened.
  const std::string fits(251 - 4 - 5, 'x');
  CHECK(gradflow::heatmap_file_name("bound", fits).size() == 251);
  CHECK(gradflow::heatmap_file_name("bound", fits) == "bound" + fits + ".csv");
  CHECK(gradflow::heatmap_file_name("bound", fits + "x") != "bound" + fits + "x.csv");
  // A multi-byte character is never cut in half.
  std::string utf8;
  for (int i = 0; i < 200; ++i) utf8 += "\xc3\xa9";  // e-acute
  const std::string u = gradflow::heatmap_file_name("mm", "_" + utf8);  // byte 230 falls inside a character
  const std::size_t prefix = u.size() - 1 - 16 - 4;
  CHECK((static_cast<unsigned char>(u[prefix]) == '_'));
  CHECK((static_cast<unsigned char>(u[prefix - 1]) == 0xa9));
}

TEST_CASE("gradflow spectrum -o refuses to overwrite its scenario", "[unattended][hygiene]") {
  TempDir tmp("gradflow_spectrum_");
  const std::string text = "[network]\nunits = 8\nsteps = 5\nbatch = 1\n";
  const fs::path sc = tmp.write("s.toml", text);
  const fs::path err = tmp.path / "err";
  CHECK(gradflow_run({"spectrum", sc.string(), "-o", sc.string()}, err) == kExitBadInput);
  CHECK(read_file(err).find("would overwrite") != std::string::npos);
  CHECK(read_file(sc) == text);
}

TEST_CASE("resuming drops rows with the wrong number of fields with a warning and recomputes their cells",
          "[unattended][hygiene]") {
  TempDir tmp("gradflow_rows_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  const fs::path ref = tmp.path / "ref", out = tmp.path / "out";
  REQUIRE(gradflow_run({"run", sc.string(), "-o", ref.string(), "--quiet"}) == kExitOk);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet"}) == kExitOk);
  // Damage: one cells row cut short, one series row of another cell given a non-numeric extra field.
  auto cells = lines_of(out / "cells.csv");
  cells[5] = cells[5].substr(0, cells[5].find(',', cells[5].find(',') + 1));
  std::ofstream c(out / "cells.csv");
  for (const auto& l : cells) c << l << "\n";
  c.close();
  auto series = lines_of(out / "series.csv");
  series[1000] += ",oops";
  std::ofstream s(out / "series.csv");
  for (const auto& l : series) s << l << "\n";
  s.close();
  const fs::path err = tmp.path / "err";
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--resume", "--quiet"}, err) == kExitOk);
  INFO(read_file(err));
  CHECK(read_file(err).find("2 damaged rows (wrong number of fields) dropped") != std::string::npos);
  CHECK(cells_without_timing(out / "cells.csv") == cells_without_timing(ref / "cells.csv"));
  CHECK(read_file(out / "series.csv") == read_file(ref / "series.csv"));
}
