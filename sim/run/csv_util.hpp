#pragma once
// CSV helpers shared by the modules that write and read gradflow's output files (output, merge, verdict).
// Internal to the library: not installed, not part of the public headers. gradflow writes no quoted fields
// (axis values never hold commas), so a row is its fields joined by ','.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gradflow/run/scenario.hpp"

namespace gradflow::detail {

/// The fields joined by ','.
std::string join_fields(const std::vector<std::string>& fields);

/// The fields of one line, split at every ',': "a,,b" gives {a, "", b}, "a," gives {a, ""}.
std::vector<std::string> split_fields(const std::string& line);

/// The position of column `name` in a header's fields; nullopt when the header lacks it.
std::optional<std::size_t> column_index(const std::vector<std::string>& header, const std::string& name);

/// (cell, replicate) from the first two fields of a row; false when the row does not start with two
/// integers (a header, a line cut short).
bool row_key(const std::string& line, std::int64_t* cell, std::int64_t* replicate);

/// The whole lines of a file, without their '\n'; a last line without '\n' (a write cut short by a kill)
/// is dropped. Empty when the file cannot be read.
std::vector<std::string> read_complete_lines(const std::filesystem::path& file);

/// A scenario value as JSON: null (unset), boolean, integer, number or string.
nlohmann::json value_json(const Value& value);

/// The current UTC time as "2026-11-27T12:28:00Z" (run.json's start and end times).
std::string utc_now();

/// Seconds on the steady clock, for wall times.
double wall_seconds();

}  // namespace gradflow::detail
