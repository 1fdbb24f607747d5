#include "gradflow/run/merge.hpp"

#include <algorithm>
#include <fstream>

#include "gradflow/run/output.hpp"
#include "gradflow/run/shard.hpp"
#include "csv_util.hpp"
#include "stream_csv.hpp"

namespace gradflow {

namespace fs = std::filesystem;
using nlohmann::json;
using detail::join_fields;
using detail::row_key;

namespace {

/// A JSON scalar as a scenario Value, keeping its type (integer, float, bool, string).
Value value_of(const json& j, const std::string& where) {
  if (j.is_null()) return std::monostate{};
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_integer()) return j.get<std::int64_t>();
  if (j.is_number_float()) return j.get<double>();
  if (j.is_string()) return j.get<std::string>();
  throw InputError(where + ": expected a boolean, number or string, found " + j.dump());
}

struct Part {
  fs::path dir;
  json run;
  Shard shard;
};

Part read_part(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError(dir.string() + ": no such directory");
  const fs::path file = dir / "run.json";
  if (!fs::exists(file, ec)) throw InputError(dir.string() + ": no run.json (not a gradflow run directory)");
  Part p{dir, json(), Shard{}};
  try {
    std::ifstream in(file);
    p.run = json::parse(in);
    if (!p.run.is_object()) throw std::runtime_error("not a JSON object");
    for (const char* key : {"scenario_hash", "scenario", "status", "seed"})
      if (!p.run.contains(key)) throw std::runtime_error(std::string("no \"") + key + "\" field");
    if (p.run.contains("shard")) {
      const auto& s = p.run["shard"];
      p.shard = Shard{s.at("index").get<std::int64_t>(), s.at("count").get<std::int64_t>()};
      if (p.shard.count < 1 || p.shard.index < 0 || p.shard.index >= p.shard.count)
        throw std::runtime_error("shard " + p.shard.str() + " is not i/n with 0 <= i < n");
    }
  } catch (const std::exception& e) {
    throw InputError(file.string() + ": not a gradflow run.json (" + e.what() + ")");
  }
  return p;
}

std::string text_of(const json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); }

}  // namespace

Scenario scenario_from_run_json(const json& run, const std::string& where) {
  if (!run.contains("scenario") || !run["scenario"].contains("resolved") ||
      !run["scenario"].contains("sweep"))
    throw InputError(where + ": no \"scenario\" with \"resolved\" and \"sweep\" (not a gradflow run.json?)");
  const json& scen = run["scenario"];
  const std::string version = run.value("gradflow_version", std::string("unknown"));
  Scenario sc;
  sc.name = run.value("scenario_name", std::string());
  sc.path = run.value("scenario_file", std::string());
  if (run.contains("overrides") && run["overrides"].is_array())
    for (const auto& o : run["overrides"]) sc.overrides.push_back(text_of(o));
  for (const auto& [name, value] : scen["resolved"].items()) {
    const KeySpec* key = find_key(name);
    if (!key)
      throw InputError(where + ": scenario key " + name + " is unknown to gradflow " + GRADFLOW_VERSION +
                       " (the run was written by gradflow " + version + ")");
    const Value v = value_of(value, where + ": scenario." + name);
    if (std::holds_alternative<std::monostate>(v)) continue;
    try {
      key->set(sc.base, v);
    } catch (const std::exception& e) {
      throw InputError(where + ": scenario." + name + " = " + value.dump() + ": " + e.what());
    }
  }
  const json& sweep = scen["sweep"];
  if (sweep.contains("axes"))
    for (const auto& a : sweep["axes"]) {
      SweepAxis axis;
      axis.key = a.value("key", std::string());
      if (!find_key(axis.key))
        throw InputError(where + ": sweep axis \"" + axis.key + "\" is not a scenario key");
      for (const auto& v : a.value("values", json::array()))
        axis.values.push_back(value_of(v, where + ": " + axis.key));
      if (axis.values.empty()) throw InputError(where + ": sweep axis " + axis.key + " has no values");
      sc.axes.push_back(std::move(axis));
    }
  sc.replicates = sweep.value("replicates", std::int64_t{1});
  if (sc.replicates < 1)
    throw InputError(where + ": sweep.replicates = " + std::to_string(sc.replicates) + ": must be >= 1");
  if (run.contains("inputs") && run["inputs"].is_array())
    for (const auto& f : run["inputs"])
      sc.inputs.push_back(InputFile{f.value("key", ""), f.value("file", ""), f.value("fnv1a64", ""),
                                    f.value("bytes", std::uint64_t{0})});
  const std::string expected = run.value("scenario_hash", std::string());
  const std::string rebuilt = scenario_hash(sc);
  if (rebuilt != expected)
    throw InputError(where + ": the scenario rebuilt from run.json hashes to " + rebuilt +
                     ", not to its scenario_hash " + expected + " (edited by hand, or written by gradflow " +
                     version + " while this is " + GRADFLOW_VERSION + ")");
  return sc;
}

MergeSummary merge_runs(const std::vector<fs::path>& dirs, const fs::path& outdir,
                        const MergeOptions& options) {
  if (dirs.empty()) throw InputError("merge: no part directories given");
  std::vector<Part> parts;
  for (const auto& d : dirs) parts.push_back(read_part(d));

  std::error_code ec;
  const std::string out = outdir.string();
  for (const auto& p : parts)
    if (fs::exists(outdir, ec) && fs::equivalent(p.dir, outdir, ec))
      throw InputError(out + ": is one of the parts (" + p.dir.string() + "); merge into another directory");
  if (!options.force && (fs::exists(outdir / "run.json", ec) || fs::exists(outdir / "cells.csv", ec)))
    throw InputError(out + ": already holds results; choose another -o, or --force to replace them");

  // Same run: seed, scenario, version; one split into n shards, each given once and complete.
  const Part& first = parts.front();
  const std::string first_dir = first.dir.string();
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const Part& p = parts[i];
    const std::string d = p.dir.string();
    if (p.run["seed"] != first.run["seed"])
      throw InputError(d + ": seed " + text_of(p.run["seed"]) + ", but " + first_dir + " has seed " +
                       text_of(first.run["seed"]) + ": parts of different runs cannot be merged");
    // An input file that differs between parts is named (the hashes would differ too, less helpfully).
    if (p.run.contains("inputs") && first.run.contains("inputs"))
      for (const auto& a : p.run["inputs"])
        for (const auto& b : first.run["inputs"])
          if (a.value("key", "") == b.value("key", "") && a.value("fnv1a64", "") != b.value("fnv1a64", ""))
            throw InputError(d + ": its " + a.value("key", "") + " (" + a.value("file", "") + ") had digest " +
                             a.value("fnv1a64", "") + ", but " + first_dir + "'s (" + b.value("file", "") +
                             ") had " + b.value("fnv1a64", "") +
                             ": the parts read different files and cannot be merged");
    if (p.run["scenario_hash"] != first.run["scenario_hash"])
      throw InputError(d + ": scenario hash " + text_of(p.run["scenario_hash"]) + ", but " + first_dir +
                       " has " + text_of(first.run["scenario_hash"]) +
                       ": parts of different scenarios (or --set overrides) cannot be merged");
    if (p.run.value("gradflow_version", "") != first.run.value("gradflow_version", ""))
      throw InputError(d + ": written by gradflow " + p.run.value("gradflow_version", "?") + ", but " +
                       first_dir + " by gradflow " + first.run.value("gradflow_version", "?") +
                       ": rerun the parts with one version");
    if (p.shard.count != first.shard.count)
      throw InputError(d + ": is shard " + p.shard.str() + ", but " + first_dir + " is shard " +
                       first.shard.str() +
                       ": all parts must come from one split (--shard i/n with the same n)");
  }
  const std::int64_t n = first.shard.count;
  std::vector<const Part*> by_index(static_cast<std::size_t>(n), nullptr);
  for (const auto& p : parts) {
    auto& slot = by_index[static_cast<std::size_t>(p.shard.index)];
    if (slot)
      throw InputError("shard " + p.shard.str() + " is given twice: " + slot->dir.string() + " and " +
                       p.dir.string());
    slot = &p;
  }
  std::string missing;
  std::int64_t missing_count = 0;
  for (std::int64_t i = 0; i < n; ++i)
    if (!by_index[static_cast<std::size_t>(i)]) {
      if (++missing_count <= 10) missing += (missing.empty() ? "" : ", ") + Shard{i, n}.str();
    }
  if (missing_count > 0)
    throw InputError("missing " + std::string(missing_count == 1 ? "shard " : "shards ") + missing +
                     (missing_count > 10 ? ", ..." : "") + " (" + std::to_string(missing_count) + " of " +
                     std::to_string(n) + "): pass the directories of every gradflow run --shard i/" +
                     std::to_string(n));
  for (const auto& p : parts) {
    const std::string status = p.run.value("status", "");
    if (status != "complete")
      throw InputError(p.dir.string() + ": shard " + p.shard.str() + " is " + status + " (" +
                       text_of(p.run.value("cells_done", json(0))) + " of " +
                       text_of(p.run.value("cells_total", json(0))) +
                       " cells done); complete it first with gradflow run ... --shard " + p.shard.str() +
                       " -o " + p.dir.string() + " --resume");
  }

  const Scenario sc = scenario_from_run_json(first.run, (first.dir / "run.json").string());
  const std::string header = join_fields(cell_columns(sc));
  const std::string series_header = join_fields(series_columns(sc));
  const std::int64_t replicates = sc.replicates;
  const std::int64_t total = sc.cell_count() * replicates;

  // Pass 1, before writing anything: every (cell, replicate) in exactly one part, in that part's shard.
  // Every pass streams the parts' files line by line: memory O(cells), whatever their size.
  const std::size_t buffer = options.stream_buffer;
  std::string line;
  std::vector<int> owner(static_cast<std::size_t>(total), -1);
  for (std::size_t k = 0; k < parts.size(); ++k) {
    const fs::path file = parts[k].dir / "cells.csv";
    const std::string f = file.string();
    if (!fs::exists(file, ec)) throw InputError(f + ": missing");
    detail::LineReader in(file, buffer);
    if (!in.next(line) || line != header)
      throw InputError(f + ":1: header differs from the scenario's columns (expected \"" + header + "\")");
    for (std::size_t l = 1; in.next(line); ++l) {
      const std::string at = f + ":" + std::to_string(l + 1);
      std::int64_t cell = 0, rep = 0;
      if (!row_key(line, &cell, &rep))
        throw InputError(at + ": expected a row starting with cell,replicate");
      if (!sc.contains(cell, rep))
        throw InputError(at + ": cell " + std::to_string(cell) + " replicate " + std::to_string(rep) +
                         " is outside the scenario (" + std::to_string(sc.cell_count()) + " cells x " +
                         std::to_string(replicates) + " replicates)");
      if (!parts[k].shard.contains(cell, rep, replicates))
        throw InputError(at + ": cell " + std::to_string(cell) + " replicate " + std::to_string(rep) +
                         " does not belong to shard " + parts[k].shard.str());
      int& o = owner[static_cast<std::size_t>(cell * replicates + rep)];
      if (o >= 0)
        throw InputError(at + ": cell " + std::to_string(cell) + " replicate " + std::to_string(rep) +
                         " is also in " + parts[static_cast<std::size_t>(o)].dir.string() + "/cells.csv");
      o = static_cast<int>(k);
    }
  }
  for (std::int64_t s = 0; s < total; ++s)
    if (owner[static_cast<std::size_t>(s)] < 0) {
      const Shard sh{s % n, n};
      throw InputError("cell " + std::to_string(s / replicates) + " replicate " +
                       std::to_string(s % replicates) + " is in no part (it belongs to shard " + sh.str() +
                       ", " + by_index[static_cast<std::size_t>(sh.index)]->dir.string() +
                       "/cells.csv lacks it)");
    }

  // Pass 2: write through RunWriter, which sorts the rows and writes heatmaps/ and run.json like any run.
  OutputOptions out_options{false, options.force, Shard{}, "gradflow merge"};
  out_options.stream_buffer = buffer;
  RunWriter writer(sc, outdir, out_options, first.run.value("threads", 1));
  json merged_from = json::array();
  for (std::size_t k = 0; k < parts.size(); ++k) {
    const Part& p = parts[k];
    // Where each cell's series rows are in this part's series.csv (blocks of consecutive rows of one cell,
    // in file order): a cell's rows are read back only when its cells row is written, so memory holds one
    // cell's series at a time (T + 1 rows, far less than the cell's tape needed).
    std::vector<detail::RowBlock> blocks;
    const fs::path series_file = p.dir / "series.csv";
    if (sc.base.analysis.series) {
      const std::string f = series_file.string();
      if (!fs::exists(series_file, ec)) throw InputError(f + ": missing (analysis.series is on)");
      detail::LineReader in(series_file, buffer);
      if (!in.next(line) || line != series_header)
        throw InputError(f + ":1: header differs from series.csv's columns (expected \"" + series_header +
                         "\")");
      std::uint64_t offset = 0;
      for (std::size_t l = 1; in.next(line, &offset); ++l) {
        std::int64_t cell = 0, rep = 0;
        if (!row_key(line, &cell, &rep) || !sc.contains(cell, rep) ||
            owner[static_cast<std::size_t>(cell * replicates + rep)] != static_cast<int>(k))
          throw InputError(f + ":" + std::to_string(l + 1) + ": not a series row of a cell in " +
                           (p.dir / "cells.csv").string());
        const std::pair<std::int64_t, std::int64_t> key{cell, rep};
        if (!blocks.empty() && blocks.back().last == key && blocks.back().offset + blocks.back().bytes == offset)
          blocks.back().bytes += line.size() + 1;
        else
          blocks.push_back(detail::RowBlock{key, key, offset, line.size() + 1});
      }
      std::stable_sort(blocks.begin(), blocks.end(), [](const detail::RowBlock& a, const detail::RowBlock& b) {
        return a.first < b.first;
      });
    }
    detail::RangeReader series(series_file, blocks.empty());
    detail::LineReader in(p.dir / "cells.csv", buffer);
    in.next(line);
    while (in.next(line)) {
      std::int64_t cell = 0, rep = 0;
      row_key(line, &cell, &rep);
      const std::pair<std::int64_t, std::int64_t> key{cell, rep};
      auto [from, to] = std::equal_range(blocks.begin(), blocks.end(), detail::RowBlock{key, key, 0, 0},
                                         [](const detail::RowBlock& a, const detail::RowBlock& b) {
                                           return a.first < b.first;
                                         });
      std::string rows;
      for (auto b = from; b != to; ++b) rows += series.read(b->offset, b->bytes);
      writer.write_rows(cell, rep, CellRows{line + "\n", std::move(rows)});
    }
    json entry = {{"dir", p.dir.string()}, {"shard", p.shard.str()}};
    for (const char* key : {"start_time", "end_time", "wall_seconds", "threads", "mpi"})
      if (p.run.contains(key)) entry[key] = p.run[key];
    merged_from.push_back(entry);
  }
  writer.annotate("merged_from", merged_from);
  writer.finish("complete");
  return MergeSummary{static_cast<std::int64_t>(parts.size()), n, total};
}

}  // namespace gradflow
