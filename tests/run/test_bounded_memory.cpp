// Memory at the end of a run (issue 15): completion, --resume and merge stream the files through a buffer
// the tests make tiny, and give what the in-memory passes gave; the memory check counts the cells running at
// once against the smallest of RAM, the cgroup limit and RLIMIT_AS (injected, never the machine's).
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/run/memory.hpp"
#include "gradflow/run/merge.hpp"
#include "gradflow/run/output.hpp"
#include "gradflow/run/scenario.hpp"
#include "run_helpers.hpp"

using namespace gradflow;
using namespace gradflow::test;

namespace {

/// (cell, replicate) of a row as std::stable_sort by row_key ordered it before: the leading integers it
/// could read, 0 for the rest.
std::pair<std::int64_t, std::int64_t> key_of(const std::string& line) {
  std::int64_t cell = 0, rep = 0;
  const char* end = line.data() + line.size();
  auto r1 = std::from_chars(line.data(), end, cell);
  if (r1.ec != std::errc()) return {0, 0};
  if (r1.ptr == end || *r1.ptr != ',') return {cell, 0};
  std::from_chars(r1.ptr + 1, end, rep);
  return {cell, rep};
}

/// The in-memory sort the streaming one replaces: whole lines, header first, the rest stably by key.
std::string sorted_in_memory(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t at = 0;
  for (std::size_t nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
    lines.push_back(text.substr(at, nl - at));
  if (lines.size() >= 2)
    std::stable_sort(lines.begin() + 1, lines.end(),
                     [](const std::string& a, const std::string& b) { return key_of(a) < key_of(b); });
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

void write_text(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

const char* kSmall = R"(title = "streamed"
seed = 7
[network]
units = 6
steps = 30
batch = 2
[analysis]
burn_in = 5
series = true
[sweep]
"spectrum.radius" = [0.5, 1.0, 1.5]
"network.activation" = ["tanh", "relu"]
replicates = 2
)";

struct Computed {
  Scenario scenario;
  std::vector<std::pair<std::int64_t, std::int64_t>> keys;  // (cell, replicate) in order
  std::vector<CellRows> rows;                               // formatted rows of each
};

Computed compute_all(const std::string& text) {
  Computed c{parse_scenario(text, "streamed.toml"), {}, {}};
  for (std::int64_t cell = 0; cell < c.scenario.cell_count(); ++cell)
    for (std::int64_t rep = 0; rep < c.scenario.replicates; ++rep) {
      c.keys.emplace_back(cell, rep);
      c.rows.push_back(format_cell_rows(c.scenario, cell, rep,
                                        simulate_cell(c.scenario.cell_config(cell), cell, rep)));
    }
  return c;
}

std::string header_line(const std::vector<std::string>& columns) {
  std::string h;
  for (const auto& c : columns) h += (h.empty() ? "" : ",") + c;
  return h + "\n";
}

}  // namespace

TEST_CASE("sort_rows gives the in-memory stable sort at any buffer size, and leaves a sorted file alone",
          "[bounded][sort]") {
  TempDir tmp("gradflow_sort_");
  std::mt19937_64 rng(20261204);
  for (int trial = 0; trial < 40; ++trial) {
    // Runs of successive keys (a cell's series block, cells finishing in order), keys repeated far apart,
    // rows that do not start with two integers, and sometimes a last line cut short.
    std::string text = "cell,replicate,x\n";
    const int rows = 1 + static_cast<int>(rng() % 300);
    for (int r = 0; r < rows; ++r) {
      const auto kind = rng() % 20;
      if (kind == 0) {
        text += "not a row\n";
      } else if (kind == 1) {
        text += std::to_string(rng() % 9) + "\n";
      } else if (kind == 2) {
        text += std::to_string(rng() % 9) + ",x" + std::to_string(r) + "\n";
      } else {
        const std::int64_t cell = static_cast<std::int64_t>(rng() % 12) - (kind == 3 ? 3 : 0);
        const auto block = 1 + rng() % 4;
        for (std::uint64_t t = 0; t < block; ++t)
          text += std::to_string(cell) + "," + std::to_string(rng() % 3) + "," + std::to_string(r) + "_" +
                  std::string(rng() % 30, 'a' + static_cast<char>(t)) + "\n";
      }
    }
    if (trial % 4 == 3) text += "5,1,cut short";
    const std::string expected = sorted_in_memory(text);
    for (const std::size_t buffer : {std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{1} << 20}) {
      INFO("trial " << trial << ", buffer " << buffer);
      const fs::path file = tmp.path / "rows.csv";
      write_text(file, text);
      sort_rows(file, 3, buffer);
      REQUIRE(read_file(file) == expected);
      CHECK_FALSE(fs::exists(tmp.path / "rows.csv.tmp"));
    }
  }
  // A sorted, whole file is not rewritten (same inode): completion needs no room for a copy then.
  const fs::path file = tmp.path / "sorted.csv";
  write_text(file, "cell,replicate\n0,0\n0,1\n1,0\n1,1\n");
  struct stat before {}, after {};
  REQUIRE(::stat(file.c_str(), &before) == 0);
  sort_rows(file, 2, 3);
  REQUIRE(::stat(file.c_str(), &after) == 0);
  CHECK(before.st_ino == after.st_ino);
  CHECK(read_file(file) == "cell,replicate\n0,0\n0,1\n1,0\n1,1\n");
}

TEST_CASE("a run whose rows arrive out of order completes, through a 5-byte buffer, in (cell, replicate) order",
          "[bounded][sort]") {
  TempDir tmp("gradflow_outoforder_");
  const Computed c = compute_all(kSmall);
  std::vector<std::size_t> order(c.keys.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(3));
  OutputOptions options;
  options.stream_buffer = 5;
  {
    RunWriter writer(c.scenario, tmp.path / "out", options, 1);
    for (const std::size_t i : order) writer.write_rows(c.keys[i].first, c.keys[i].second, c.rows[i]);
    writer.finish("complete");
  }
  std::string cells = header_line(cell_columns(c.scenario)), series = header_line(series_columns(c.scenario));
  for (const auto& r : c.rows) {
    cells += r.cells;
    series += r.series;
  }
  CHECK(read_file(tmp.path / "out" / "cells.csv") == cells);
  CHECK(read_file(tmp.path / "out" / "series.csv") == series);
  CHECK(nlohmann::json::parse(read_file(tmp.path / "out" / "run.json"))["status"] == "complete");
}

TEST_CASE("resuming through a 3-byte buffer keeps what the in-memory pass kept and completes the run exactly",
          "[bounded][resume]") {
  TempDir tmp("gradflow_resume_stream_");
  const Computed c = compute_all(kSmall);
  const fs::path out = tmp.path / "out";
  const std::size_t n = c.keys.size();
  // Finished before the "kill": every other pair, in reverse; the pair `damaged` with one series row
  // given an extra field (the resume recomputes its cell).
  std::vector<std::size_t> finished;
  for (std::size_t i = n; i-- > 0;)
    if (i % 2 == 0) finished.push_back(i);
  const std::size_t damaged = finished[2];
  {
    RunWriter writer(c.scenario, out, OutputOptions{}, 1);
    for (const std::size_t i : finished) {
      CellRows rows = c.rows[i];
      if (i == damaged) rows.series.insert(rows.series.find('\n'), ",oops");
      writer.write_rows(c.keys[i].first, c.keys[i].second, rows);
    }
  }
  // Killed while writing: the series block of pair 1 without its cells row, a cells row cut short.
  std::ofstream(out / "series.csv", std::ios::app) << c.rows[1].series;
  std::ofstream(out / "cells.csv", std::ios::app) << c.rows[3].cells.substr(0, 12);

  OutputOptions resume;
  resume.resume = true;
  resume.stream_buffer = 3;
  RunWriter writer(c.scenario, out, resume, 1);
  CHECK(writer.dropped_rows() == 1);
  CHECK(writer.done_count() == static_cast<std::int64_t>(finished.size()) - 1);
  std::string cells = header_line(cell_columns(c.scenario)), series = header_line(series_columns(c.scenario));
  for (const std::size_t i : finished)
    if (i != damaged) {
      cells += c.rows[i].cells;
      series += c.rows[i].series;
    }
  CHECK(read_file(out / "cells.csv") == cells);
  CHECK(read_file(out / "series.csv") == series);
  for (std::size_t i = 0; i < n; ++i)
    if (!writer.is_done(c.keys[i].first, c.keys[i].second))
      writer.write_rows(c.keys[i].first, c.keys[i].second, c.rows[i]);
  writer.finish("complete");
  cells = header_line(cell_columns(c.scenario));
  series = header_line(series_columns(c.scenario));
  for (const auto& r : c.rows) {
    cells += r.cells;
    series += r.series;
  }
  CHECK(read_file(out / "cells.csv") == cells);
  CHECK(read_file(out / "series.csv") == series);
}

TEST_CASE("merge through a 5-byte buffer writes the same files as merge through the default one",
          "[bounded][merge]") {
  TempDir tmp("gradflow_merge_stream_");
  const fs::path sc = tmp.write("streamed.toml", kSmall);
  std::vector<fs::path> parts;
  for (int i = 0; i < 3; ++i) {
    parts.push_back(tmp.path / ("part" + std::to_string(i)));
    REQUIRE(gradflow_run({"run", sc.string(), "-o", parts.back().string(), "--shard", std::to_string(i) + "/3",
                          "--quiet"}) == kExitOk);
  }
  merge_runs({parts[1], parts[2], parts[0]}, tmp.path / "default");
  MergeOptions tiny;
  tiny.stream_buffer = 5;
  merge_runs({parts[2], parts[0], parts[1]}, tmp.path / "tiny", tiny);
  for (const char* file : {"cells.csv", "series.csv"}) {
    INFO(file);
    CHECK(read_file(tmp.path / "tiny" / file) == read_file(tmp.path / "default" / file));
    CHECK(read_file(tmp.path / "tiny" / file) == sorted_in_memory(read_file(tmp.path / "tiny" / file)));
  }
  CHECK(heatmaps_of(tmp.path / "tiny") == heatmaps_of(tmp.path / "default"));
}

TEST_CASE("the memory limit is the smallest of RAM, every visible cgroup level and RLIMIT_AS",
          "[bounded][memory]") {
  TempDir tmp("gradflow_limit_");
  const fs::path root = tmp.path / "sys";
  auto put = [&](const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    write_text(file, text + "\n");
  };
  MemorySources src;
  src.cgroup_root = root;
  src.proc_cgroup = tmp.path / "cgroup";
  src.physical = 16e9;
  src.address_space = INFINITY;

  SECTION("cgroup v2: the parent's memory.max binds, the group's own is max") {
    write_text(src.proc_cgroup, "0::/user.slice/job.scope\n");
    put(root / "user.slice" / "memory.max", "2147483648");
    put(root / "user.slice" / "job.scope" / "memory.max", "max");
    const MemoryLimit limit = memory_limit(src);
    CHECK(limit.bytes == 2147483648.0);
    CHECK(limit.source.find("user.slice/memory.max") != std::string::npos);
  }
  SECTION("cgroup v1 in a namespace: the group's limit is at the mount's root") {
    write_text(src.proc_cgroup, "5:cpu:/\n4:memory:/process_api/abc\n0::/\n");
    put(root / "memory" / "memory.limit_in_bytes", "1000000000");
    const MemoryLimit limit = memory_limit(src);
    CHECK(limit.bytes == 1e9);
    CHECK(limit.source.find("memory.limit_in_bytes") != std::string::npos);
  }
  SECTION("no cgroup limit (v1's unlimited is a huge number): physical memory") {
    write_text(src.proc_cgroup, "4:memory:/\n");
    put(root / "memory" / "memory.limit_in_bytes", "9223372036854771712");
    const MemoryLimit limit = memory_limit(src);
    CHECK(limit.bytes == 16e9);
    CHECK(limit.source == "physical memory");
  }
  SECTION("RLIMIT_AS less what the process maps already") {
    src.address_space = 3e9;
    src.mapped = 1e9;
    const MemoryLimit limit = memory_limit(src);
    CHECK(limit.bytes == 2e9);
    CHECK(limit.source.find("RLIMIT_AS") != std::string::npos);
  }
}

TEST_CASE("the memory check counts one cell per thread: threads are reduced, or the run refused, with the limit named",
          "[bounded][memory]") {
  const Scenario sc = parse_scenario(R"(
[network]
units = 512
steps = 1000
batch = 16
[sweep]
"spectrum.radius" = { start = 0.5, stop = 1.5, num = 20 }
)", "mem.toml");
  const double cell = cell_memory_bytes(sc.cell_config(0));
  CHECK(sc.peak_cell_bytes == cell);
  const MemoryPlan one = memory_plan(sc, 1), eight = memory_plan(sc, 8);
  // Seven more cells and seven more cached bases (8 N^2 each).
  CHECK(eight.peak() - one.peak() == Approx(7.0 * (cell + 8.0 * 512.0 * 512.0)).epsilon(1e-12));
  // A limit that holds three threads' cells but not four.
  const double three = memory_plan(sc, 3).peak(), four = memory_plan(sc, 4).peak();
  const MemoryLimit limit{(three + four) / 2.0 / kMemoryShare, "the cgroup limit /fake/memory.max"};
  std::string note;
  CHECK(fit_threads(sc, 8, limit, &note) == 3);
  CHECK(note.find("8 threads") != std::string::npos);
  CHECK(note.find("running 3 threads") != std::string::npos);
  CHECK(note.find("/fake/memory.max") != std::string::npos);
  note.clear();
  CHECK(fit_threads(sc, 2, limit, &note) == 2);
  CHECK(note.empty());
  // Not even one cell: refused, naming the size and the limit's source.
  const MemoryLimit tiny{one.peak() / 2.0, "RLIMIT_AS (ulimit -v)"};
  CHECK_THROWS_AS(fit_threads(sc, 1, tiny), InputError);
  CHECK_THROWS_WITH(fit_threads(sc, 1, tiny), Catch::Contains("RLIMIT_AS") && Catch::Contains("largest cell"));
}

TEST_CASE("cell_memory_bytes counts 32 N^2 for W and the tape in 2 MiB pages, as README's Memory and time says",
          "[bounded][memory]") {
  Config c;
  c.network.units = 1024;
  c.network.batch = 16;
  c.network.steps = 500;
  c.input.dim = 16;
  const double n = 1024, b = 16, s = 8, dim = 16;
  const double tape = std::ceil(n * b * 500 * s / (2.0 * 1024 * 1024)) * 2.0 * 1024 * 1024;
  CHECK(cell_memory_bytes(c) == tape + 32.0 * n * n + 8.0 * n * b * s + n * dim * (8.0 + s));
  // README's example: 65.5 MB of tape (67.1 MB in 2 MiB pages) and 33.6 MB for W.
  CHECK(tape == 67108864.0);
  CHECK(32.0 * n * n == Approx(33.55e6).epsilon(1e-3));
}

TEST_CASE("run.json streamed cell by cell is nlohmann's dump(2) of it, byte for byte", "[bounded][bookkeeping]") {
  TempDir tmp("gradflow_runjson_");
  const Computed c = compute_all(kSmall);
  {
    OutputOptions options;
    options.stream_buffer = 4;
    RunWriter writer(c.scenario, tmp.path / "out", options, 1);
    writer.write_rows(c.keys[3].first, c.keys[3].second, c.rows[3]);
    writer.write_rows(c.keys[0].first, c.keys[0].second, c.rows[0]);
    writer.record_failure(c.keys[5].first, c.keys[5].second, "bad \"cell\"\n\tat step 3 (\xc3\xa9t\xc3\xa9)");
    writer.finish("interrupted");
  }
  const std::string text = read_file(tmp.path / "out" / "run.json");
  const auto j = nlohmann::json::parse(text);
  CHECK(text == j.dump(2) + "\n");
  REQUIRE(j["cells"].size() == c.keys.size());
  CHECK(j["cells"][3]["status"] == "done");
  CHECK(j["cells"][5]["error"] == "bad \"cell\"\n\tat step 3 (\xc3\xa9t\xc3\xa9)");
  CHECK(j["cells_failed"] == 1);
  // A shard with no cells: an empty array.
  OutputOptions empty;
  empty.shard = Shard{20, 30};
  {
    RunWriter writer(c.scenario, tmp.path / "empty", empty, 1);
    writer.finish("complete");
  }
  const std::string none = read_file(tmp.path / "empty" / "run.json");
  CHECK(none == nlohmann::json::parse(none).dump(2) + "\n");
  CHECK(nlohmann::json::parse(none)["cells"].empty());
}

namespace {

/// Runs `command` in a shell: its exit code and stdout.
std::pair<int, std::string> shell(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

/// N of "LABEL ... (N bytes)" in --dry-run's output; -1 when missing.
double bytes_after(const std::string& text, const std::string& label) {
  const auto at = text.find(label);
  if (at == std::string::npos) return -1;
  const auto open = text.find('(', at), close = text.find(" bytes)", at);
  if (open == std::string::npos || close == std::string::npos || close < open) return -1;
  return std::stod(text.substr(open + 1, close - open - 1));
}

}  // namespace

TEST_CASE("run --dry-run prints cells, memory, output size and time, writes nothing, and its sizes hold",
          "[bounded][dryrun]") {
  TempDir tmp("gradflow_dryrun_");
  const fs::path sc = tmp.write("streamed.toml", std::string(kSmall));
  const fs::path out = tmp.path / "out" / "nested";
  const auto [code, printed] = shell(std::string(GRADFLOW_CLI) + " run " + sc.string() + " -o " + out.string() +
                                     " --threads 2 --dry-run 2>/dev/null");
  INFO(printed);
  REQUIRE(code == kExitOk);
  CHECK_FALSE(fs::exists(tmp.path / "out"));
  CHECK(printed.find("6 cells x 2 replicates = 12 runs") != std::string::npos);
  CHECK(printed.find("time:") != std::string::npos);
  const Scenario s = parse_scenario(kSmall, "streamed.toml");
  CHECK(bytes_after(printed, "per cell") == Approx(cell_memory_bytes(s.cell_config(0))).epsilon(1e-6));
  CHECK(bytes_after(printed, "peak") > 2 * bytes_after(printed, "per cell"));
  // The estimated sizes within a factor 2 of a real run's.
  REQUIRE(gradflow_run({"run", sc.string(), "-o", out.string(), "--quiet", "--no-report"}) == kExitOk);
  for (const char* file : {"cells.csv", "series.csv", "run.json"}) {
    INFO(file);
    const double estimated = bytes_after(printed, file), actual = double(fs::file_size(out / file));
    CHECK(estimated > actual / 2);
    CHECK(estimated < actual * 2);
  }
  // Bad input is still refused with exit 2, and nothing is written.
  const auto [bad, ignored] = shell(std::string(GRADFLOW_CLI) + " run " + sc.string() + " -o " +
                                    (tmp.path / "bad").string() + " --set network.units=0 --dry-run 2>/dev/null");
  CHECK(bad == kExitBadInput);
  CHECK_FALSE(fs::exists(tmp.path / "bad"));
}
