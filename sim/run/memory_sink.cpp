#include "gradflow/run/memory_sink.hpp"

#include <chrono>
#include <ctime>
#include <sstream>

#include "csv_util.hpp"
#include "gradflow/numerics/blas.hpp"
#include "gradflow/numerics/version.hpp"
#include "gradflow/run/verdict.hpp"

namespace gradflow {

using detail::utc_now;
using detail::wall_seconds;

MemorySink::MemorySink(const Scenario& scenario)
    : scenario_(scenario),
      total_(scenario.cell_count() * scenario.replicates),
      rows_(static_cast<std::size_t>(total_)),
      failures_(static_cast<std::size_t>(total_)),
      start_time_(utc_now()),
      start_seconds_(wall_seconds()) {}

bool MemorySink::is_done(std::int64_t cell, std::int64_t replicate) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return rows_[slot(cell, replicate)].has_value();
}

std::int64_t MemorySink::done_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return done_;
}

void MemorySink::record(std::int64_t cell, std::int64_t replicate, const CellResult& result) {
  CellRows rows = format_cell_rows(scenario_, cell, replicate, result);  // outside the lock: the slow part
  std::lock_guard<std::mutex> lock(mutex_);
  auto& kept = rows_[slot(cell, replicate)];
  if (!kept) ++done_;
  kept = std::move(rows);
}

void MemorySink::record_failure(std::int64_t cell, std::int64_t replicate, const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  failures_[slot(cell, replicate)] = message.empty() ? "failed" : message;
}

std::string MemorySink::cells_csv() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string text = detail::join_fields(cell_columns(scenario_)) + "\n";
  for (const auto& r : rows_)
    if (r) text += r->cells;
  return text;
}

std::string MemorySink::series_csv() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!scenario_.base.analysis.series) return "";
  std::string text = detail::join_fields(series_columns(scenario_)) + "\n";
  for (const auto& r : rows_)
    if (r) text += r->series;
  return text;
}

nlohmann::json MemorySink::run_json(int threads, const std::string& status) const {
  const std::string cells_text = cells_csv();
  std::lock_guard<std::mutex> lock(mutex_);
  nlohmann::json cells = nlohmann::json::array();
  std::int64_t failed = 0;
  for (std::int64_t c = 0; c < scenario_.cell_count(); ++c)
    for (std::int64_t r = 0; r < scenario_.replicates; ++r) {
      const std::size_t s = slot(c, r);
      const bool is_failed = !rows_[s] && !failures_[s].empty();
      nlohmann::json e = {{"cell", c}, {"replicate", r},
                          {"status", rows_[s] ? "done" : is_failed ? "failed" : "pending"}};
      if (is_failed) {
        e["error"] = failures_[s];
        ++failed;
      }
      cells.push_back(e);
    }
  const bool complete = done_ == total_;
  nlohmann::json j;
  j["gradflow_version"] = version();
  j["gradflow_commit"] = git_commit();
  j["scenario_file"] = scenario_.path.string();
  j["scenario_name"] = scenario_.name;
  j["title"] = scenario_.base.title;
  j["seed"] = scenario_.base.seed;
  j["scenario_hash"] = scenario_hash(scenario_);
  j["scenario"] = scenario_json(scenario_);
  j["overrides"] = scenario_.overrides;
  j["threads"] = threads;
  j["gemm"] = gemm_backend();
  j["status"] = status == "complete" && !complete ? "incomplete" : status;
  j["start_time"] = start_time_;
  j["end_time"] = utc_now();
  j["wall_seconds"] = wall_seconds() - start_seconds_;
  j["cells_total"] = total_;
  j["cells_done"] = done_;
  j["cells_failed"] = failed;
  j["output"] = "memory";  // no files: the rows are in the result
  if (complete) {
    std::istringstream in(cells_text);
    j["verdicts"] = compute_verdicts(scenario_, in, "cells.csv");
  }
  j["cells"] = cells;
  return j;
}

}  // namespace gradflow
