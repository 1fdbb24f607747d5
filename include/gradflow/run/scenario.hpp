#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "gradflow/model/config.hpp"

namespace gradflow {

/// Where a value came from: "scenario.toml:12:9", or "--set spectrum.radius=2".
struct SourceLocation {
  std::string file;  // path as given, or "--set"
  int line = 0;      // 1-based; 0 when not from a file
  int column = 0;
  std::string str() const;
};

/// Bad input (scenario, flags, files): one line naming where, the key and what was expected.
/// The CLI prints what() and exits with code 2.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A scenario value: unset (monostate, for keys whose default depends on others), bool, integer,
/// floating point or string.
using Value = std::variant<std::monostate, bool, std::int64_t, double, std::string>;
/// As written in TOML: strings quoted, numbers in shortest round-trip form.
std::string format_value(const Value& v);

enum class ValueType { boolean, integer, number, string };
std::string to_string(ValueType t);

/// One scenario key: its dotted name, type, default, meaning, and how it reads and writes a Config.
/// `set` throws std::invalid_argument stating the constraint ("must be >= 1") on a bad value.
struct KeySpec {
  std::string name;  // "spectrum.radius"
  ValueType type;
  std::string doc;   // meaning, units or formula, and the constraint
  std::function<Value(const Config&)> get;
  std::function<void(Config&, const Value&)> set;
  std::string default_text() const;  // from get(Config{}), or the doc of an unset default
};

/// Every scenario key, in documentation order: the single source of names, defaults and constraints.
const std::vector<KeySpec>& scenario_keys();
/// nullptr when unknown.
const KeySpec* find_key(const std::string& name);
/// Closest known key by edit distance, or "" when none is close.
std::string suggest_key(const std::string& name);

/// Cross-key constraints of one resolved config (kind = "file" needs a file, lyapunov <= units, the
/// memory the run needs). Throws std::invalid_argument with "key: message".
void validate_config(const Config& config);

/// What is wrong with a file of rows x cols for `key` under `config` (the message validate_config gives), or ""
/// when it fits: spectrum.file (units x units), input.file ((burn_in + steps) x dim), input.weights (units x dim),
/// init.file and init.cell_file (units, or units x batch), bias.file (units); the torch import's tensors by file
/// name (weight_hh_l0.npy, weight_ih_l0.npy, bias_ih_l0.npy, bias_hh_l0.npy). Asked before a file is read, with
/// the size it declares, so that nothing of a wrong size is allocated.
std::string file_shape_problem(const Config& config, const std::string& key, Eigen::Index rows, Eigen::Index cols);

/// Keys that act only under some kinds (network.leak: the leaky cell; network.alpha / beta: some
/// activations; spectrum.density: sparse W; input.std: an input drive with random U).
const std::vector<std::string>& conditional_keys();
/// Why `key` has no effect on this config ("only used with ..."), or "" when it has one.
std::string unused_reason(const Config& config, const std::string& key);

/// One sweep axis: a key and the values it takes, in order.
struct SweepAxis {
  std::string key;
  std::vector<Value> values;
  SourceLocation where;
};

/// A file a scenario read (W, x, U, h_0, b): the key naming it, its path as opened (relative paths resolved
/// against the scenario's folder), and its content's digest (file_digest). The scenario hash covers the
/// digests, so a file replaced between a run and its --resume (or between the shards of a merge) is seen.
struct InputFile {
  std::string key;     // "spectrum.file"
  std::string path;    // as opened
  std::string digest;  // FNV-1a 64 of its bytes, 16 hex digits
  std::uint64_t bytes = 0;
};

/// FNV-1a 64 of a file's bytes as 16 hex digits (`bytes` receives its size). Throws InputError when it
/// cannot be read.
std::string file_digest(const std::filesystem::path& file, std::uint64_t* bytes = nullptr);

/// A parsed, validated scenario: base config, sweep axes (Cartesian product, first axis slowest) and
/// replicates. Cell c has config base + {axis_i = values_i[index_i(c)]}.
struct Scenario {
  std::string name;                // file stem: default OUTDIR is out/<name>
  std::filesystem::path path;      // the scenario file ("" when parsed from text)
  Config base;
  std::vector<SweepAxis> axes;
  std::int64_t replicates = 1;
  std::vector<std::string> overrides;             // --set arguments, in order
  std::map<std::string, SourceLocation> origins;  // where each explicitly given key was set
  std::vector<InputFile> inputs;                  // every file read, in reading order
  /// Keys given explicitly that have no effect in any cell ("FILE:LINE:COL: key = value: only used with
  /// ..."): warnings (errors under `gradflow run --strict`). Sweeping such a key is an error.
  std::vector<std::string> warnings;
  /// The largest cell_memory_bytes and network.units of any cell (found while the cells are validated; 0
  /// for a scenario not loaded from a file or text): what one thread of the run holds at its peak.
  double peak_cell_bytes = 0.0;
  std::int64_t peak_units = 0;

  std::int64_t cell_count() const;
  /// Whether (cell, replicate) is a run of this scenario: 0 <= cell < cell_count(), 0 <= replicate < replicates.
  bool contains(std::int64_t cell, std::int64_t replicate) const;
  /// Index of each axis for a cell.
  std::vector<std::size_t> axis_indices(std::int64_t cell) const;
  /// The axis values of a cell, one per axis.
  std::vector<Value> cell_values(std::int64_t cell) const;
  /// base + the cell's axis values (validated when the scenario was loaded).
  Config cell_config(std::int64_t cell) const;
  /// The cell's index over every axis but spectrum.radius (mixed radix, first axis slowest): cells that
  /// differ only in radius share it, and so W's random draw (a radius sweep rescales one matrix). Equal to
  /// the cell when there is no radius axis.
  std::int64_t recurrent_family(std::int64_t cell) const;
};

/// Reads, parses and validates a scenario file, applying `overrides` ("key=value", TOML literal or bare
/// string) after the file. Every cell of the sweep is validated before this returns. Throws InputError.
Scenario load_scenario(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});
/// The same from text; `source_name` is used in messages and relative paths resolve against `base_dir`.
Scenario parse_scenario(const std::string& text, const std::string& source_name,
                        const std::vector<std::string>& overrides = {},
                        const std::filesystem::path& base_dir = ".");

}  // namespace gradflow
