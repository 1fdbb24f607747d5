// Output that does not fit: a disk that fills up mid-run (a small tmpfs), a file size limit (RLIMIT_FSIZE)
// and /dev/full. The run stops at once with exit code 74 and one message naming the file and the OS error;
// cells.csv and series.csv keep exactly the whole rows of finished cells; once there is room, --resume
// completes the run and equals an uninterrupted one.
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "run_helpers.hpp"

using namespace gradflow::test;

namespace {

// 2 activations x 8 radii x 2 replicates = 32 runs of a few ms. With series.csv the directory holds
// ~310 kB (series ~240 kB, run.json ~30 kB, cells.csv ~13 kB), without it ~60 kB.
const char* kSweep = R"(title = "disk full"
seed = 7
[network]
units = 24
steps = 60
batch = 2
[analysis]
burn_in = 10
[sweep]
"spectrum.radius" = { start = 0.5, stop = 2.0, num = 8 }
"network.activation" = ["tanh", "relu"]
replicates = 2
)";
constexpr std::size_t kPairs = 32;

/// Rows keyed by their first two fields: "cell,replicate".
std::map<std::string, std::string> rows_by_key(const std::vector<std::string>& lines) {
  std::map<std::string, std::string> rows;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto f = split_csv(lines[i]);
    rows[f.at(0) + "," + f.at(1)] = lines[i];
  }
  return rows;
}

/// What a stopped run may leave: only whole lines (the file ends in '\n'), a header equal to the reference's,
/// and rows each equal to the reference's row of the same cell and replicate (timing columns aside); series
/// rows only of cells whose cells.csv row is there. Returns the number of finished cells.
std::size_t check_whole_rows(const fs::path& out, const fs::path& ref) {
  std::size_t done = 0;
  if (fs::exists(out / "cells.csv")) {
    const std::string text = read_file(out / "cells.csv");
    CHECK((text.empty() || text.back() == '\n'));
    const auto lines = cells_without_timing(out / "cells.csv");
    const auto reference = cells_without_timing(ref / "cells.csv");
    if (!lines.empty()) {
      CHECK(lines[0] == reference[0]);
      const auto expected = rows_by_key(reference);
      for (std::size_t i = 1; i < lines.size(); ++i) {
        INFO("cells.csv line " << i + 1 << ": " << lines[i]);
        const auto f = split_csv(lines[i]);
        REQUIRE(f.size() >= 2);
        const auto it = expected.find(f[0] + "," + f[1]);
        REQUIRE(it != expected.end());
        CHECK(lines[i] == it->second);
      }
      done = lines.size() - 1;
      CHECK(rows_by_key(lines).size() == done);  // no cell twice
    }
  }
  if (fs::exists(out / "series.csv")) {
    const std::string text = read_file(out / "series.csv");
    CHECK((text.empty() || text.back() == '\n'));
    const auto ref_lines = lines_of(ref / "series.csv");
    const std::set<std::string> expected(ref_lines.begin(), ref_lines.end());
    std::set<std::string> finished;
    for (const auto& [key, row] : rows_by_key(lines_of(out / "cells.csv"))) finished.insert(key);
    const auto lines = lines_of(out / "series.csv");
    for (std::size_t i = 0; i < lines.size(); ++i) {
      INFO("series.csv line " << i + 1 << ": " << lines[i]);
      CHECK(expected.count(lines[i]) == 1);
      if (i > 0) {
        const auto f = split_csv(lines[i]);
        CHECK(finished.count(f.at(0) + "," + f.at(1)) == 1);
      }
    }
  }
  // run.json is replaced atomically: whatever is there parses.
  if (fs::exists(out / "run.json")) CHECK_NOTHROW(nlohmann::json::parse(read_file(out / "run.json")));
  CHECK_FALSE(fs::exists(out / "run.json.tmp"));
  CHECK_FALSE(fs::exists(out / "cells.csv.tmp"));
  return done;
}

/// One message line on stderr naming a file in `out` and the OS error.
void check_message(const fs::path& err, const fs::path& out, const std::string& os_error) {
  const std::string text = read_file(err);
  INFO("stderr: " << text);
  CHECK(lines_of(err).size() == 1);
  CHECK(text.rfind("gradflow: cannot write " + out.string() + "/", 0) == 0);
  CHECK(text.find(": " + os_error) != std::string::npos);
}

void check_same_as_reference(const fs::path& out, const fs::path& ref, bool series) {
  CHECK(cells_without_timing(out / "cells.csv") == cells_without_timing(ref / "cells.csv"));
  if (series) CHECK(read_file(out / "series.csv") == read_file(ref / "series.csv"));
  CHECK(heatmaps_of(out) == heatmaps_of(ref));
  const auto j = nlohmann::json::parse(read_file(out / "run.json"));
  CHECK(j["status"] == "complete");
  CHECK(j["cells_done"] == kPairs);
  CHECK_FALSE(j.contains("write_error"));
}

}  // namespace

TEST_CASE(
    "a tmpfs that fills up at any point of a run: exit 74, one message, whole rows; --resume completes it",
    "[output][diskfull]") {
  TempDir tmp("gradflow_diskfull_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  Tmpfs disk(tmp.path / "mnt");  // declared after tmp: unmounted before tmp is removed
  if (!disk.mounted()) {
    WARN("skipped: cannot mount tmpfs (" << disk.error()
                                         << "); the RLIMIT_FSIZE and /dev/full cases still run");
    return;
  }
  const fs::path out = tmp.path / "mnt" / "out";
  const fs::path err = tmp.path / "stderr.txt";
  for (const bool series : {true, false}) {
    const std::string series_set = std::string("analysis.series=") + (series ? "true" : "false");
    const fs::path ref = tmp.path / (series ? "ref_series" : "ref");
    REQUIRE(gradflow_run({"run", sc.string(), "-o", ref.string(), "--set", series_set, "--quiet"}) == 0);
    // From "not even run.json fits" through rows, sorting, heatmaps to the final run.json, in 4 kB pages.
    // (+ 4 kB: the page of OUTDIR's lock file, .gradflow.lock.)
    const std::size_t largest = series ? 324 : 68, step = series ? 40 : 8;
    int stopped = 0, mid_run = 0;
    for (std::size_t kb = 8; kb <= largest; kb += step) {
      INFO("series " << series << ", tmpfs of " << kb << " kB");
      fs::remove_all(out);
      REQUIRE(disk.resize(kb * 1024));
      const int code = gradflow_run(
          {"run", sc.string(), "-o", out.string(), "--set", series_set, "--threads", "2", "--quiet"}, err);
      if (code == 0) {  // it fitted
        check_same_as_reference(out, ref, series);
        continue;
      }
      REQUIRE(code == kExitWriteFailed);
      ++stopped;
      check_message(err, out, "No space left on device");
      const std::size_t done = check_whole_rows(out, ref);
      if (done > 0 && done < kPairs) ++mid_run;
      if (fs::exists(out / "run.json")) {
        const auto j = nlohmann::json::parse(read_file(out / "run.json"));
        CHECK((j["status"] == "running" || j["status"] == "write_error"));
        if (j["status"] == "write_error")
          CHECK(j["write_error"].get<std::string>().find("No space left") != std::string::npos);
      }
      // Still full: a resume fails the same way and loses nothing.
      const std::string before = fs::exists(out / "cells.csv") ? read_file(out / "cells.csv") : "";
      const int again = gradflow_run(
          {"run", sc.string(), "-o", out.string(), "--set", series_set, "--resume", "--quiet"}, err);
      CHECK((again == kExitWriteFailed || again == 0));
      if (again == kExitWriteFailed) {
        check_message(err, out, "No space left on device");
        const std::string after = fs::exists(out / "cells.csv") ? read_file(out / "cells.csv") : "";
        CHECK(after.compare(0, before.size(), before) == 0);  // rows are only ever added
        check_whole_rows(out, ref);
      }
      // Room again: --resume completes the run, equal to the uninterrupted one.
      REQUIRE(disk.resize(8 << 20));
      REQUIRE(
          gradflow_run({"run", sc.string(), "-o", out.string(), "--set", series_set, "--resume", "--quiet"},
                       err) == 0);
      check_same_as_reference(out, ref, series);
    }
    CHECK(stopped >= 5);
    CHECK(mid_run >= 2);  // some sizes stop the run between cells, not only before or after them
  }
  // A read-only file system is the user's choice of -o: bad input (exit 2), like a directory without write
  // permission, not a failing disk.
  fs::remove_all(out);
  fs::create_directories(out);
  REQUIRE(disk.read_only(true));
  CHECK(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet"}, err) == 2);
  CHECK(read_file(err) == "gradflow: " + out.string() +
                              ": cannot be written (Read-only file system); choose another -o\n");
  CHECK(gradflow_run({"run", sc.string(), "-o", (out / "sub").string(), "--quiet"}, err) == 2);
  CHECK(read_file(err).find("cannot create the output directory (Read-only file system)") !=
        std::string::npos);
  REQUIRE(disk.read_only(false));
}

TEST_CASE("a file size limit (RLIMIT_FSIZE) stops a run like a full disk, without SIGXFSZ",
          "[output][diskfull]") {
  TempDir tmp("gradflow_fsize_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  const fs::path ref = tmp.path / "ref", out = tmp.path / "out", err = tmp.path / "stderr.txt";
  REQUIRE(gradflow_run({"run", sc.string(), "-o", ref.string(), "--quiet"}) == 0);
  // series.csv grows ~7.5 kB per cell: a 64 kB limit stops the run after a few cells, mid-run.
  const pid_t pid = fork();
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_DFL);  // gradflow must ignore it itself
    const rlimit limit{64 * 1024, 64 * 1024};
    setrlimit(RLIMIT_FSIZE, &limit);
    const int errfd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(errfd, STDERR_FILENO);
    execl(GRADFLOW_CLI, GRADFLOW_CLI, "run", sc.c_str(), "-o", out.c_str(), "--threads", "2", "--quiet",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  REQUIRE(wait_exit(pid) == kExitWriteFailed);
  check_message(err, out, std::strerror(EFBIG));
  CHECK(read_file(err).find("series.csv") != std::string::npos);
  const std::size_t done = check_whole_rows(out, ref);
  CHECK(done >= 1);
  CHECK(done < kPairs);
  const auto j = nlohmann::json::parse(read_file(out / "run.json"));
  CHECK(j["status"] == "write_error");
  CHECK(j["cells_done"] == done);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--resume", "--quiet"}) == 0);
  check_same_as_reference(out, ref, true);
}

TEST_CASE("/dev/full as an output file: exit 74 naming it (a link to it in OUTDIR: exit 2), nothing else touched", "[output][diskfull]") {
  TempDir tmp("gradflow_devfull_");
  if (!fs::exists("/dev/full")) {
    WARN("skipped: no /dev/full");
    return;
  }
  const fs::path sc = tmp.write("one.toml", "[network]\nunits = 8\nsteps = 10\nbatch = 1\n");
  const fs::path err = tmp.path / "stderr.txt";
  SECTION("gradflow spectrum -o /dev/full") {
    CHECK(gradflow_run({"spectrum", sc.string(), "-o", "/dev/full"}, err) == kExitWriteFailed);
    CHECK(read_file(err) == "gradflow: cannot write /dev/full: No space left on device\n");
    CHECK_FALSE(fs::exists("/dev/full.json"));  // the sidecar is written only after the eigenvalues
  }
  SECTION(
      "series.csv a symlink to /dev/full: refused before any write (output never follows links), then runs") {
    const fs::path ref = tmp.path / "ref", out = tmp.path / "out";
    REQUIRE(gradflow_run({"run", sc.string(), "-o", ref.string(), "--quiet"}) == 0);
    fs::create_directories(out);
    fs::create_symlink("/dev/full", out / "series.csv");
    CHECK(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet"}, err) == kExitBadInput);
    CHECK(read_file(err).find("/series.csv: is a symbolic link") != std::string::npos);
    CHECK(fs::is_symlink(out / "series.csv"));
    CHECK(!fs::exists(out / "run.json"));
    fs::remove(out / "series.csv");
    REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet"}) == 0);
    CHECK(cells_without_timing(out / "cells.csv") == cells_without_timing(ref / "cells.csv"));
    CHECK(read_file(out / "series.csv") == read_file(ref / "series.csv"));
  }
}
