#pragma once
// A run held in memory: the same rows RunWriter appends to cells.csv and series.csv (format_cell_rows), kept
// as text instead of written, with run.json's content. What the Python module's run(out=None) returns.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gradflow/run/output.hpp"
#include "gradflow/run/scenario.hpp"

namespace gradflow {

/// Every cell x replicate of a whole run (no shard), in memory. Thread-safe like RunWriter.
class MemorySink : public CellSink {
 public:
  explicit MemorySink(const Scenario& scenario);

  std::int64_t total() const override { return total_; }
  bool in_shard(std::int64_t, std::int64_t) const override { return true; }
  bool is_done(std::int64_t cell, std::int64_t replicate) const override;
  std::int64_t done_count() const override;
  void record(std::int64_t cell, std::int64_t replicate, const CellResult& result) override;
  void record_failure(std::int64_t cell, std::int64_t replicate, const std::string& message) override;

  /// cells.csv / series.csv as a finished run directory holds them: the header, then the rows of the done
  /// cells in (cell, replicate) order, byte for byte what RunWriter writes for the same results.
  std::string cells_csv() const;
  std::string series_csv() const;
  /// run.json's content: the resolved scenario, version and commit, threads, times, the status of every cell
  /// and, when every cell is done, the predictor verdicts. `status`: "complete" or "interrupted".
  nlohmann::json run_json(int threads, const std::string& status) const;

 private:
  std::size_t slot(std::int64_t cell, std::int64_t replicate) const {
    return static_cast<std::size_t>(cell * scenario_.replicates + replicate);
  }
  const Scenario& scenario_;
  std::int64_t total_;
  std::vector<std::optional<CellRows>> rows_;
  std::vector<std::string> failures_;  // "" unless the cell failed
  std::int64_t done_ = 0;
  std::string start_time_;
  double start_seconds_;
  mutable std::mutex mutex_;
};

}  // namespace gradflow
