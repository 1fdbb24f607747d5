#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gradflow/run/scenario.hpp"

namespace gradflow {

/// The scenario of a run directory, rebuilt from its run.json ("scenario": resolved keys, sweep axes,
/// replicates; plus scenario_name, scenario_file, overrides) for writing outputs: cell columns, axis values,
/// run.json. It is checked to hash to run.json's scenario_hash. It is not meant for simulating: files named
/// by the scenario (spectrum.file) are not read. `where` names the file in messages. Throws InputError.
Scenario scenario_from_run_json(const nlohmann::json& run, const std::string& where);

struct MergeOptions {
  bool force = false;  // replace an OUTDIR that holds another run
  /// Bytes read or written at a time: the parts are streamed, memory is this plus O(cells) and one cell's
  /// series, whatever the size of the parts' series.csv (tests set it tiny).
  std::size_t stream_buffer = std::size_t{1} << 20;
};

struct MergeSummary {
  std::int64_t parts = 0;        // directories merged
  std::int64_t shard_count = 1;  // n of their --shard i/n
  std::int64_t rows = 0;         // cells x replicates written
};

/// Merges the directories of `gradflow run --shard i/n` (i = 0..n-1, each complete) into `outdir`, which
/// then holds the same cells.csv, series.csv, heatmaps/ and run.json as an unsharded run of the scenario
/// (rows in (cell, replicate) order; run.json adds "merged_from"). Checks, before writing anything, that
/// every part is a complete run of the same scenario (scenario hash, seed, gradflow version), that the parts
/// are shards i/n of the same n with no index missing or given twice, and that every (cell, replicate)
/// is in exactly one part. Throws InputError naming the directory and the problem.
MergeSummary merge_runs(const std::vector<std::filesystem::path>& parts, const std::filesystem::path& outdir,
                        const MergeOptions& options = {});

}  // namespace gradflow
