#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/run/scenario.hpp"
#include "gradflow/run/shard.hpp"

namespace gradflow {

/// An output file could not be written (disk full, quota, file size limit, I/O error). what() is
/// "FILE: OS error" (strerror of `error`, e.g. "No space left on device"). A run that meets one stops
/// dispatching cells and keeps every row already written (gradflow exits with code 74).
class WriteError : public std::runtime_error {
 public:
  WriteError(const std::filesystem::path& file, int error);
  const std::filesystem::path& file() const { return file_; }
  int error() const { return error_; }  // errno
  std::string reason() const;           // strerror(error)

 private:
  std::filesystem::path file_;
  int error_;
};

namespace detail {
class AppendFile;
class DirLock;
}

/// The fully resolved scenario as JSON: every key with its value (defaults filled in), the sweep axes and
/// replicates. Its hash identifies a run for --resume.
nlohmann::json scenario_json(const Scenario& scenario);
/// FNV-1a 64, as 16 hex digits, of the canonical dump of scenario_json, the gradflow version and the
/// digest of every file the scenario read (Scenario::inputs): a run is resumed or merged only with the same
/// scenario, the same gradflow and the same file contents.
std::string scenario_hash(const Scenario& scenario);
/// run.json "inputs": [{key, file, fnv1a64, bytes}] of Scenario::inputs.
nlohmann::json inputs_json(const Scenario& scenario);
/// The file name of a heatmap under heatmaps/: METRIC FACET.csv (facet "_key=value_key=value..."), or, when that
/// would pass the file-name limit (255 bytes, less ".tmp" for the atomic write), its first bytes, "_", the FNV-1a
/// 64 of the full name as 16 hex digits and ".csv": deterministic, distinct per facet, at most 251 bytes.
/// run.json's files.heatmaps and each file's header keep the full facet.
std::string heatmap_file_name(const std::string& metric, const std::string& facet);
/// run.json "build": {version, commit, compiler, flags} of this gradflow.
nlohmann::json build_json();

/// Column names of cells.csv and series.csv for a scenario (axes named by their keys).
std::vector<std::string> cell_columns(const Scenario& scenario);
std::vector<std::string> series_columns(const Scenario& scenario);
/// The number of lyapunov_i columns: the largest analysis.lyapunov of any cell (0: no Lyapunov columns).
std::int64_t max_lyapunov_count(const Scenario& scenario);

/// The axes of heatmaps/: x the first numeric axis, y the second numeric axis (else the first string axis),
/// one file per combination of the other axes' values (facets); nullopt when the sweep has no such pair.
struct HeatmapAxes {
  std::size_t x = 0, y = 0;
  std::vector<std::size_t> facet_axes;
  std::size_t facets = 1;  // product of the facet axes' sizes
};
std::optional<HeatmapAxes> heatmap_axes(const Scenario& scenario);

/// A number as CSV text: shortest round-trip form; non-finite or unset values are empty fields.
std::string csv_number(double x);

/// The CSV text of one finished cell x replicate: its cells.csv row and its series.csv rows (empty when
/// analysis.series is off), each line ending in '\n'. Formatting is deterministic (shortest round trip),
/// so rows formatted on another process (an MPI worker) are written verbatim, bit for bit.
struct CellRows {
  std::string cells;
  std::string series;
};

/// Writes `text` to `file`, created or truncated, with write(2) (not atomically: a failure can leave part of
/// it). Throws InputError "FILE: cannot be written" when the file cannot be opened, WriteError when writing
/// or closing it fails.
void write_text_file(const std::filesystem::path& file, const std::string& text);

/// Sorts the rows of a gradflow CSV (cells.csv, series.csv) after its header by (cell, replicate), stably
/// (rows of one key keep their order), and replaces the file atomically (FILE.tmp renamed over FILE); a
/// last line cut short is dropped. Rows move as blocks (runs of consecutive rows in key order): memory is
/// O(blocks) plus `buffer` bytes, never O(file). A file already in order is left untouched. Throws
/// WriteError naming the file.
void sort_rows(const std::filesystem::path& file, std::int64_t replicates,
               std::size_t buffer = std::size_t{1} << 20);

/// Formats a cell's rows; thread-safe, touches no file.
CellRows format_cell_rows(const Scenario& scenario, std::int64_t cell, std::int64_t replicate,
                          const CellResult& result);

struct OutputOptions {
  bool resume = false;  // complete an interrupted run in the same directory
  bool force = false;   // replace a directory holding a different run
  Shard shard;          // the part of the run this directory holds (default: all of it)
  std::string command = "gradflow run";  // who holds OUTDIR's lock, as another process is told
  /// Bytes read or written at a time when --resume filters the rows kept and completion sorts them: memory
  /// of those passes is this plus O(cells), whatever the size of series.csv (tests set it tiny).
  std::size_t stream_buffer = std::size_t{1} << 20;
};

enum class CellStatus : std::uint8_t { pending, done, failed };  // one byte per cell: 1e7-cell sweeps

/// Where run_sweep() puts finished cells: the output directory (RunWriter) or memory (MemorySink,
/// memory_sink.hpp, for the Python module's run(out=None)). Implementations are thread-safe: workers call
/// record() concurrently.
class CellSink {
 public:
  virtual ~CellSink() = default;
  /// Cells x replicates this sink holds (its shard).
  virtual std::int64_t total() const = 0;
  virtual bool in_shard(std::int64_t cell, std::int64_t replicate) const = 0;
  virtual bool is_done(std::int64_t cell, std::int64_t replicate) const = 0;
  virtual std::int64_t done_count() const = 0;
  /// Keeps a finished cell's rows; may throw WriteError (the run must stop).
  virtual void record(std::int64_t cell, std::int64_t replicate, const CellResult& result) = 0;
  /// Marks a cell as failed with a message (internal error in that cell).
  virtual void record_failure(std::int64_t cell, std::int64_t replicate, const std::string& message) = 0;
};

/// The output directory of one run: whole rows appended to cells.csv / series.csv with write(2) as cells
/// finish, run.json with the status of every cell. Thread-safe: workers call record() concurrently.
class RunWriter : public CellSink {
 public:
  /// Prepares OUTDIR: creates it and takes its lock (OUTDIR/.gradflow.lock, flock(2), held until the
  /// writer is destroyed; a directory locked by another live process is refused with an InputError naming
  /// it: pid, host, start time), then reads (resume) which cells are already done, or refuses (InputError)
  /// to touch a directory that holds results of another run or any run without --resume/--force, or that
  /// the user cannot write to (permissions, read-only). Throws WriteError when OUTDIR or a file in it
  /// (run.json, the CSV headers, the rows kept for a resume) cannot be written otherwise (e.g. a full disk).
  RunWriter(const Scenario& scenario, std::filesystem::path outdir, OutputOptions options, int threads);
  ~RunWriter();

  /// Cells x replicates of this directory's part of the run (its shard).
  std::int64_t total() const override { return total_; }
  const Shard& shard() const { return options_.shard; }
  /// Whether (cell, replicate) belongs to this directory's shard.
  bool in_shard(std::int64_t cell, std::int64_t replicate) const override {
    return options_.shard.contains(cell, replicate, scenario_.replicates);
  }
  bool is_done(std::int64_t cell, std::int64_t replicate) const override;
  std::int64_t done_count() const override;

  /// Appends the cell's rows (series first, then the cells row that marks it finished) with write(2).
  /// All or nothing: when a write fails (disk full, ...) the bytes of this cell already written are cut
  /// off again, so both files keep only whole rows of finished cells; the cell stays pending, the writer
  /// remembers the error (write_error()) and throws WriteError now and on every later call.
  void record(std::int64_t cell, std::int64_t replicate, const CellResult& result) override;
  /// The same for rows already formatted by format_cell_rows (e.g. on an MPI worker, or read from a shard).
  void write_rows(std::int64_t cell, std::int64_t replicate, const CellRows& rows);
  /// The first write failure of record()/write_rows(), if any: the run must stop.
  std::optional<WriteError> write_error() const;
  /// Marks a cell as failed with a message (internal error in that cell).
  void record_failure(std::int64_t cell, std::int64_t replicate, const std::string& message) override;

  /// Adds a top-level field to run.json (e.g. "mpi", "merged_from"); never one of the standard fields.
  void annotate(const std::string& key, nlohmann::json value);

  /// Writes run.json (atomically: write then rename). When every cell is done, rewrites cells.csv and
  /// series.csv in (cell, replicate) order, atomically too, judges the predictors against the measured
  /// regimes (run.json "verdicts", from the finished cells.csv) and (for a whole run, not a shard) writes
  /// heatmaps/. `status` is "complete", "interrupted" or "write_error" (then run.json also carries
  /// "write_error": what()). May be called again (e.g. "interrupted" at once when a signal arrives, then
  /// again when the cells in flight have landed). Throws WriteError when a file cannot be written; the
  /// previous run.json then stays as it was (atomic rename), and a temporary file is removed.
  void finish(const std::string& status);

  const std::filesystem::path& dir() const { return dir_; }
  /// Rows found damaged (wrong number of fields) when resuming: dropped, their cells recomputed.
  std::int64_t dropped_rows() const { return dropped_rows_; }
  const std::filesystem::path& cells_path() const { return cells_path_; }
  /// Predictor verdicts (verdict.hpp) of the complete run, computed by finish("complete"); null before.
  const nlohmann::json& verdicts() const { return verdicts_; }
  /// The console summary (summary.hpp: crossings with intervals, or a one-cell run's values, and the verdict
  /// table) of the complete run, written as summary.csv by finish("complete"); "" before.
  const std::string& summary_text() const { return summary_text_; }

 private:
  std::size_t slot(std::int64_t cell, std::int64_t replicate) const {
    return static_cast<std::size_t>(cell * scenario_.replicates + replicate);
  }
  /// The constructor's file work: on resume keeps the rows of finished cells; writes run.json ("running")
  /// and opens (creates) cells.csv and series.csv.
  void prepare(bool resuming);
  void open_streams(bool append);
  void finish_locked(const std::string& status);
  /// Matrix-form CSVs (rows = y axis values, columns = x axis values) per metric and facet, from the
  /// finished cells.csv; returns their names for run.json.
  nlohmann::json write_heatmaps() const;
  void sort_file(const std::filesystem::path& file) const;

  const Scenario& scenario_;
  std::filesystem::path dir_, cells_path_, series_path_, json_path_;
  std::unique_ptr<detail::DirLock> lock_;  // before the files: released after they are closed
  OutputOptions options_;
  int threads_;
  std::int64_t total_;
  std::string hash_;
  std::vector<CellStatus> status_;
  std::map<std::size_t, std::string> failures_;  // by slot, only the failed cells
  std::unique_ptr<detail::AppendFile> cells_, series_;
  std::optional<WriteError> write_error_;
  mutable std::mutex mutex_;
  std::string start_time_;
  double start_seconds_;
  std::int64_t done_ = 0;
  std::int64_t dropped_rows_ = 0;
  nlohmann::json heatmaps_ = nlohmann::json::array();
  nlohmann::json verdicts_;
  std::string summary_text_;
  nlohmann::json extra_ = nlohmann::json::object();
  bool sorted_ = false;
};

}  // namespace gradflow
