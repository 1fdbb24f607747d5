// Shards and merge through the real executable: `gradflow run --shard i/n` parts merged by `gradflow merge`
// give the files of an unsharded run; every inconsistent set of parts is refused with exit code 2.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "run_helpers.hpp"

using namespace gradflow::test;

namespace {

// 2 activations x 4 radii x 2 input stds x 2 replicates = 32 runs of a few ms: strings, floats and
// replicates in the keys, three axes (heatmaps with facets) and series.csv.
const char* kSweep = R"(title = "shard me"
seed = 11
[network]
units = 48
steps = 120
batch = 4
[analysis]
burn_in = 10
[sweep]
"network.activation" = ["tanh", "relu"]
"spectrum.radius" = { start = 0.6, stop = 1.8, num = 4 }
"input.std" = [0.0, 0.5]
replicates = 2
)";
constexpr int kPairs = 32;

/// Runs the shards i/n of the scenario into dir/part-i.
std::vector<std::string> run_shards(const fs::path& scenario, const fs::path& dir, int n,
                                    const std::vector<std::string>& extra = {}) {
  std::vector<std::string> parts;
  for (int i = 0; i < n; ++i) {
    const fs::path out = dir / ("part-" + std::to_string(i));
    std::vector<std::string> args{
        "run",    scenario.string(), "--shard",   std::to_string(i) + "/" + std::to_string(n),
        "-o",     out.string(),      "--threads", "1",
        "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    REQUIRE(gradflow_run(args) == 0);
    parts.push_back(out.string());
  }
  return parts;
}

void require_same_run(const fs::path& reference, const fs::path& other) {
  CHECK(cells_without_timing(other / "cells.csv") == cells_without_timing(reference / "cells.csv"));
  CHECK(read_file(other / "series.csv") == read_file(reference / "series.csv"));
  const auto heatmaps = heatmaps_of(reference);
  CHECK(heatmaps.size() == 12);  // (5 metrics + growth_rate_sd) x 2 activations
  CHECK(heatmaps_of(other) == heatmaps);
  CHECK(run_json_without_volatile(other) == run_json_without_volatile(reference));
}

/// `gradflow merge parts... -o out`: exit code and stderr.
std::pair<int, std::string> merge(const std::vector<std::string>& parts, const fs::path& out,
                                  const fs::path& tmp) {
  std::vector<std::string> args{"merge"};
  args.insert(args.end(), parts.begin(), parts.end());
  args.insert(args.end(), {"-o", out.string()});
  const fs::path err = tmp / "merge.err";
  const int code = gradflow_run(args, err);
  return {code, read_file(err)};
}

}  // namespace

TEST_CASE("3 shards merged give the files of an unsharded run", "[merge][shard]") {
  TempDir tmp("gradflow_merge_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "whole").string(), "--quiet"}) == 0);
  const auto parts = run_shards(sc, tmp.path, 3);

  std::int64_t total = 0;
  for (int i = 0; i < 3; ++i) {
    INFO("shard " << i);
    const auto j = nlohmann::json::parse(read_file(fs::path(parts[i]) / "run.json"));
    CHECK(j["status"] == "complete");
    CHECK(j["shard"]["index"] == i);
    CHECK(j["shard"]["count"] == 3);
    CHECK(j["cells"].size() == j["cells_total"].get<std::size_t>());
    total += j["cells_total"].get<std::int64_t>();
    CHECK_FALSE(fs::exists(fs::path(parts[i]) / "heatmaps"));
    // Exactly the pairs (cell, replicate) with (cell * replicates + replicate) % 3 == i, in order.
    const auto rows = lines_of(fs::path(parts[i]) / "cells.csv");
    REQUIRE(rows.size() == j["cells_total"].get<std::size_t>() + 1);
    std::int64_t expected = i;
    for (std::size_t r = 1; r < rows.size(); ++r, expected += 3) {
      const auto f = split_csv(rows[r]);
      CHECK(std::stoll(f[0]) * 2 + std::stoll(f[1]) == expected);
    }
  }
  CHECK(total == kPairs);

  const fs::path merged = tmp.path / "merged";
  const auto [code, err] = merge({parts[2], parts[0], parts[1]}, merged, tmp.path);  // any order
  INFO(err);
  REQUIRE(code == 0);
  require_same_run(tmp.path / "whole", merged);
  const auto j = nlohmann::json::parse(read_file(merged / "run.json"));
  CHECK(j["status"] == "complete");
  CHECK_FALSE(j.contains("shard"));
  CHECK(j["merged_from"].size() == 3);
}

TEST_CASE("more shards than cells: empty shards complete at once and still merge", "[merge][shard]") {
  TempDir tmp("gradflow_merge_");
  const fs::path sc = tmp.write("small.toml", R"(seed = 3
[network]
units = 16
steps = 40
batch = 2
[analysis]
burn_in = 5
[sweep]
"spectrum.radius" = [0.9, 1.1]
replicates = 2
)");
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "whole").string(), "--quiet"}) == 0);
  const auto parts = run_shards(sc, tmp.path, 6);
  for (int i = 4; i < 6; ++i) CHECK(row_count(fs::path(parts[i]) / "cells.csv") == 1);  // header only
  const fs::path merged = tmp.path / "merged";
  REQUIRE(merge(parts, merged, tmp.path).first == 0);
  CHECK(cells_without_timing(merged / "cells.csv") == cells_without_timing(tmp.path / "whole" / "cells.csv"));
  CHECK(read_file(merged / "series.csv") == read_file(tmp.path / "whole" / "series.csv"));
  CHECK(run_json_without_volatile(merged) == run_json_without_volatile(tmp.path / "whole"));
}

TEST_CASE("merge refuses missing, duplicated, foreign or incomplete parts (exit 2, nothing written)",
          "[merge]") {
  TempDir tmp("gradflow_merge_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  const auto parts = run_shards(sc, tmp.path, 3);
  const fs::path out = tmp.path / "merged";
  auto refused = [&](const std::vector<std::string>& given, const std::string& message) {
    INFO("expected: " << message);
    const auto [code, err] = merge(given, out, tmp.path);
    INFO("stderr: " << err);
    CHECK(code == 2);
    CHECK(err.find(message) != std::string::npos);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);  // one clear line
    CHECK_FALSE(fs::exists(out / "cells.csv"));
  };

  SECTION("a missing part") { refused({parts[0], parts[2]}, "missing shard 1/3"); }
  SECTION("a part given twice") {
    refused({parts[0], parts[1], parts[1], parts[2]}, "shard 1/3 is given twice");
  }
  SECTION("a part of another seed") {
    REQUIRE(gradflow_run({"run", sc.string(), "--shard", "1/3", "-o", (tmp.path / "seed").string(), "--quiet",
                          "--set", "seed=12"}) == 0);
    refused({parts[0], (tmp.path / "seed").string(), parts[2]}, "seed 12, but");
  }
  SECTION("a part of another scenario") {
    REQUIRE(gradflow_run({"run", sc.string(), "--shard", "1/3", "-o", (tmp.path / "other").string(),
                          "--quiet", "--set", "network.steps=121"}) == 0);
    refused({parts[0], (tmp.path / "other").string(), parts[2]}, "scenario hash");
  }
  SECTION("parts of different splits") {
    const auto halves = run_shards(sc, tmp.path / "halves", 2);
    refused({parts[0], parts[1], halves[1]}, "same n");
  }
  SECTION("an interrupted part") {
    auto j = nlohmann::json::parse(read_file(fs::path(parts[1]) / "run.json"));
    j["status"] = "interrupted";
    std::ofstream(fs::path(parts[1]) / "run.json") << j.dump(2);
    refused(parts, "is interrupted");
  }
  SECTION("a part that lost a row") {
    auto rows = lines_of(fs::path(parts[1]) / "cells.csv");
    const auto f = split_csv(rows[3]);
    rows.erase(rows.begin() + 3);
    std::ofstream o(fs::path(parts[1]) / "cells.csv");
    for (const auto& r : rows) o << r << "\n";
    o.close();
    refused(parts, "cell " + f[0] + " replicate " + f[1] + " is in no part");
  }
  SECTION("a row in two parts") {
    const auto extra = lines_of(fs::path(parts[0]) / "cells.csv")[1];
    std::ofstream(fs::path(parts[1]) / "cells.csv", std::ios::app) << extra << "\n";
    refused(parts, "does not belong to shard 1/3");
  }
  SECTION("a directory that is not a run") {
    fs::create_directories(tmp.path / "empty");
    refused({parts[0], (tmp.path / "empty").string(), parts[2]}, "no run.json");
  }
  SECTION("the output is one of the parts") {
    const auto [code, err] = merge(parts, parts[0], tmp.path);
    CHECK(code == 2);
    CHECK(err.find("is one of the parts") != std::string::npos);
  }
}

TEST_CASE("the shard flag is validated, and a shard directory resumes only that shard", "[shard]") {
  TempDir tmp("gradflow_merge_");
  const fs::path sc = tmp.write("sweep.toml", kSweep);
  const fs::path err = tmp.path / "err";
  for (const char* bad : {"3/3", "1", "x/2", "0/0"}) {
    INFO(bad);
    CHECK(gradflow_run({"run", sc.string(), "--shard", bad, "-o", (tmp.path / "bad").string()}, err) == 2);
    CHECK(read_file(err).find("--shard") != std::string::npos);
  }
  const auto parts = run_shards(sc, tmp.path, 2);
  const std::string before = read_file(fs::path(parts[0]) / "cells.csv");
  CHECK(gradflow_run({"run", sc.string(), "--shard", "1/2", "-o", parts[0], "--resume"}, err) == 2);
  CHECK(read_file(err).find("holds shard 0/2 of this run, not shard 1/2") != std::string::npos);
  CHECK(gradflow_run({"run", sc.string(), "-o", parts[0], "--resume"}, err) == 2);
  CHECK(read_file(fs::path(parts[0]) / "cells.csv") == before);
  // Resuming a complete shard has nothing to do and keeps it identical.
  CHECK(gradflow_run({"run", sc.string(), "--shard", "0/2", "-o", parts[0], "--resume", "--quiet"}) == 0);
  CHECK(read_file(fs::path(parts[0]) / "cells.csv") == before);
}

TEST_CASE("gated cells: shards merged, and any thread count, give the files of an unsharded run",
          "[merge][shard][gated]") {
  TempDir tmp("gradflow_merge_gated_");
  const fs::path sc = tmp.write("gated.toml", R"(title = "gated shards"
seed = 5
[network]
units = 24
steps = 60
batch = 2
[analysis]
burn_in = 5
lyapunov = 3
[sweep]
"network.cell" = ["vanilla", "gru", "lstm", "minimalrnn"]
"gates.bias" = [0.0, 2.0]
"spectrum.radius" = [0.8, 1.6]
replicates = 2
)");
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "whole").string(), "--threads", "1", "--quiet"}) == 0);
  REQUIRE(gradflow_run({"run", sc.string(), "-o", (tmp.path / "two").string(), "--threads", "2", "--quiet"}) == 0);
  CHECK(cells_without_timing(tmp.path / "two" / "cells.csv") == cells_without_timing(tmp.path / "whole" / "cells.csv"));
  CHECK(read_file(tmp.path / "two" / "series.csv") == read_file(tmp.path / "whole" / "series.csv"));
  const auto parts = run_shards(sc, tmp.path, 2);
  const fs::path merged = tmp.path / "merged";
  const auto [code, err] = merge(parts, merged, tmp.path);
  INFO(err);
  REQUIRE(code == 0);
  CHECK(cells_without_timing(merged / "cells.csv") == cells_without_timing(tmp.path / "whole" / "cells.csv"));
  CHECK(read_file(merged / "series.csv") == read_file(tmp.path / "whole" / "series.csv"));
  // The gated columns are there and filled for the gated cells only.
  const std::string header = read_file(tmp.path / "whole" / "cells.csv").substr(0, 4096);
  CHECK(header.find("memory_time") != std::string::npos);
  CHECK(read_file(tmp.path / "whole" / "series.csv").find("log10_grad_norm_h") != std::string::npos);
}
