#include "gradflow/run/output.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>

#include "gradflow/run/summary.hpp"
#include "gradflow/numerics/version.hpp"
#include "gradflow/run/verdict.hpp"
#include "gradflow/numerics/blas.hpp"
#include "csv_util.hpp"
#include "durable_file.hpp"
#include "stream_csv.hpp"

namespace gradflow {

using detail::utc_now;
using detail::wall_seconds;

namespace fs = std::filesystem;
using detail::join_fields;
using detail::row_key;
using detail::split_fields;
using detail::value_json;
using detail::write_atomically;

namespace {

/// An axis value as the user would write it: a range's grid value start + i (stop - start) / (num - 1) is
/// printed with 15 significant digits (0.8, not 0.7999999999999999) when that is within 1e-13 relative of
/// it; otherwise (a value written with more digits) in the shortest round-trip form.
std::string axis_number(double x) {
  if (!std::isfinite(x)) return csv_number(x);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.15g", x);
  const double back = std::strtod(buf, nullptr);
  if (back == x || std::abs(back - x) <= 1e-13 * std::abs(x)) return buf;
  return csv_number(x);
}

/// A value as a CSV field: strings unquoted (scenario names never hold commas), numbers as written.
std::string csv_field(const Value& v) {
  if (auto s = std::get_if<std::string>(&v)) return *s;
  if (auto d = std::get_if<double>(&v)) return axis_number(*d);
  if (std::holds_alternative<std::monostate>(v)) return "";
  return format_value(v);
}

std::string csv_optional(const std::optional<double>& x) { return x ? csv_number(*x) : ""; }
std::string csv_optional(const std::optional<Eigen::Index>& x) { return x ? std::to_string(*x) : ""; }


/// Errors of opening a file that the user fixes by choosing another place: not a failing disk.
bool user_fixable(int error) { return error == EACCES || error == EPERM || error == EROFS; }

}  // namespace

std::string csv_number(double x) {
  if (!std::isfinite(x)) return "";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, res.ptr);
}

nlohmann::json scenario_json(const Scenario& sc) {
  nlohmann::json resolved = nlohmann::json::object();
  for (const auto& key : scenario_keys()) {
    Value v = key.get(sc.base);
    if (std::holds_alternative<std::monostate>(v)) {
      // Show the default actually used by the base cell.
      if (key.name == "network.alpha") v = sc.base.network.make_activation().alpha;
      if (key.name == "spectrum.radius" && sc.base.spectrum.kind != SpectrumKind::file &&
          sc.base.spectrum.kind != SpectrumKind::chain)  // a chain has rho = 0 and no radius
        v = 1.0;
      if (key.name == "analysis.lyapunov_burn_in")
        v = static_cast<std::int64_t>(sc.base.analysis.lyapunov_burn_in_for(sc.base.network.steps));
    }
    resolved[key.name] = value_json(v);
  }
  nlohmann::json axes = nlohmann::json::array();
  for (const auto& a : sc.axes) {
    nlohmann::json values = nlohmann::json::array();
    for (const auto& v : a.values) values.push_back(value_json(v));
    axes.push_back({{"key", a.key}, {"values", values}});
  }
  return {{"resolved", resolved}, {"sweep", {{"axes", axes}, {"replicates", sc.replicates}}}};
}

namespace {

std::string fnv1a_hex(const std::string& text) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

/// The hash of directories written before inputs and version were hashed (scenario_json only): such a
/// directory of a scenario that reads no file, by this same version, may still be resumed.
std::string legacy_scenario_hash(const Scenario& sc) { return fnv1a_hex(scenario_json(sc).dump()); }

}  // namespace

std::string heatmap_file_name(const std::string& metric, const std::string& facet) {
  // NAME_MAX is 255 bytes on Linux, macOS and the usual file systems; the atomic write adds ".tmp".
  constexpr std::size_t kMaxName = 255 - 4;
  std::string name = metric + facet + ".csv";
  if (name.size() <= kMaxName) return name;
  // A prefix that ends on a whole UTF-8 character, "_", the 16 hex digits of the full name's hash, ".csv".
  std::size_t keep = kMaxName - 1 - 16 - 4;
  while (keep > 0 && (static_cast<unsigned char>(name[keep]) & 0xC0) == 0x80) --keep;
  return name.substr(0, keep) + "_" + fnv1a_hex(name) + ".csv";
}

nlohmann::json inputs_json(const Scenario& sc) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : sc.inputs)
    files.push_back({{"key", f.key}, {"file", f.path}, {"fnv1a64", f.digest}, {"bytes", f.bytes}});
  return files;
}

std::string scenario_hash(const Scenario& sc) {
  std::string text = scenario_json(sc).dump();
  text += "\ngradflow " GRADFLOW_VERSION;
  for (const auto& f : sc.inputs) text += "\n" + f.key + " " + f.digest;
  return fnv1a_hex(text);
}

nlohmann::json build_json() {
  return {{"version", GRADFLOW_VERSION},
#ifdef GRADFLOW_COMMIT
          {"commit", GRADFLOW_COMMIT},
#else
          {"commit", nullptr},
#endif
#ifdef __VERSION__
          {"compiler", std::string(
#ifdef __clang__
                           "clang "
#elif defined(__GNUC__)
                           "g++ "
#endif
                           __VERSION__)},
#endif
#ifdef GRADFLOW_CXX_FLAGS
          {"flags", GRADFLOW_CXX_FLAGS}
#else
          {"flags", nullptr}
#endif
  };
}

std::int64_t max_lyapunov_count(const Scenario& sc) {
  std::int64_t k = sc.base.analysis.lyapunov;
  for (const auto& a : sc.axes) {
    if (a.key != "analysis.lyapunov") continue;
    k = 0;
    for (const auto& v : a.values)
      if (auto* i = std::get_if<std::int64_t>(&v)) k = std::max(k, *i);
  }
  return k;
}

namespace {

/// Whether some cell of the scenario runs a cell kind satisfying `pred`.
template <class Pred>
bool some_cell(const Scenario& sc, Pred pred) {
  if (pred(sc.base.network.cell)) return true;
  for (const auto& a : sc.axes) {
    if (a.key != "network.cell") continue;
    for (const auto& v : a.values)
      if (auto* name = std::get_if<std::string>(&v); name && pred(parse_cell_kind(*name))) return true;
  }
  return false;
}

bool has_gated_cell(const Scenario& sc) { return some_cell(sc, [](CellKind k) { return is_gated(k); }); }
bool has_second_state(const Scenario& sc) { return some_cell(sc, [](CellKind k) { return state_vectors(k) > 1; }); }
/// Whether some cell's Jacobian is not diag(f') W, so that its own predictors differ from the contract's.
bool has_own_jacobian(const Scenario& sc) { return some_cell(sc, [](CellKind k) { return k != CellKind::vanilla; }); }

/// The gates reported for each gated cell, as (column stem, coefficient name): the memory gate first.
std::vector<std::pair<std::string, std::string>> reported_gates(const std::vector<std::string>& names) {
  auto has = [&](const char* n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  if (has("cn_rg")) return {{"memory", "z"}, {"reset", "r"}};                   // gru
  if (has("ig")) return {{"memory", "f"}, {"input", "i"}, {"output", "o"}};     // lstm
  if (has("hu")) return {{"memory", "u"}};                                       // minimalrnn
  return {};
}

}  // namespace

std::vector<std::string> cell_columns(const Scenario& sc) {
  std::vector<std::string> cols{"cell", "replicate"};
  for (const auto& a : sc.axes) cols.push_back(a.key);
  for (const char* c : {"rho", "spectral_norm", "mean_abs_dact", "mean_sq_dact", "sup_dact", "predictor",
                        "predictor_rms", "bound", "growth_rate", "log10_grad_ratio", "regime",
                        "forward_diverged_at", "dead_fraction", "saturated_fraction", "seconds", "horizon",
                        "fit_first_lag", "fit_last_lag", "grad_zero_at", "max_abs_dact", "spectrum_status",
                        "seconds_spectrum", "seconds_forward", "seconds_backward"})
    cols.push_back(c);
  // Ground truth: mean-field theory always, Lyapunov exponents when some cell computes them.
  for (const char* c : {"gain_rms", "mf_q", "mf_growth", "mf_lyapunov", "mf_status"}) cols.push_back(c);
  if (const std::int64_t k = max_lyapunov_count(sc); k > 0) {
    for (const char* c : {"lyapunov_max", "lyapunov_max_std", "lyapunov_status"}) cols.push_back(c);
    for (std::int64_t i = 1; i <= k; ++i) cols.push_back("lyapunov_" + std::to_string(i));
  }
  // Model space (issue 5): transient growth, E/I spectrum parts, storage of W.
  for (const char* c : {"transient_peak", "transient_peak_lag", "bulk_radius", "outlier", "storage", "nonzeros"})
    cols.push_back(c);
  // Answers with error bars (issue 16): growth_rate's standard error, the time constant the regime is judged per.
  for (const char* c : {"growth_rate_se", "tau"}) cols.push_back(c);
  // Cells with a Jacobian of their own (residual, leaky, gated): the predictors of that Jacobian (issue 14's and
  // the residual cells'), beside the contract's rho E|f'|, rho sqrt(E[f'^2]) and ||W||_2 sup|f'|.
  if (has_own_jacobian(sc))
    for (const char* c : {"predictor_cell", "predictor_rms_cell", "bound_cell"}) cols.push_back(c);
  // Gated cells: gate statistics and the memory time 1 / (1 - E[memory gate]).
  if (has_gated_cell(sc))
    for (const char* c : {"gate_memory_mean", "gate_memory_std", "memory_time", "gate_reset_mean", "gate_reset_std",
                          "gate_input_mean", "gate_input_std", "gate_output_mean", "gate_output_std"})
      cols.push_back(c);
  return cols;
}

std::vector<std::string> series_columns(const Scenario& sc) {
  std::vector<std::string> cols{"cell", "replicate", "t", "log10_grad_norm", "log10_grad_norm_min",
                                "log10_grad_norm_max", "mean_abs_dact_t", "zero_trajectories",
                                "cum_log10_predictor", "cum_log10_predictor_rms"};
  if (has_second_state(sc)) cols.push_back("log10_grad_norm_h");
  return cols;
}

RunWriter::RunWriter(const Scenario& scenario, fs::path outdir, OutputOptions options, int threads)
    : scenario_(scenario), dir_(std::move(outdir)), options_(options), threads_(threads) {
  total_ = options_.shard.size(scenario_.cell_count(), scenario_.replicates);
  hash_ = scenario_hash(scenario_);
  status_.assign(static_cast<std::size_t>(scenario_.cell_count() * scenario_.replicates), CellStatus::pending);
  cells_path_ = dir_ / "cells.csv";
  series_path_ = dir_ / "series.csv";
  json_path_ = dir_ / "run.json";
  start_time_ = utc_now();
  start_seconds_ = wall_seconds();

  std::error_code ec;
  const std::string d = dir_.string();
  if (fs::exists(dir_, ec) && !fs::is_directory(dir_, ec))
    throw InputError(d + ": output directory is a file, expected a directory");
  fs::create_directories(dir_, ec);
  std::error_code is_dir_ec;
  if (!fs::is_directory(dir_, is_dir_ec)) {
    if (ec && (ec.value() == ENOSPC || ec.value() == EDQUOT || ec.value() == EIO))
      throw WriteError(dir_, ec.value());
    throw InputError(d + ": cannot create the output directory" +
                     (ec ? " (" + ec.message() + ")" : std::string()));
  }
  // One writer per directory: a second run, --resume, --force or merge into it while this one holds it
  // would interleave rows of two processes.
  try {
    lock_ = std::make_unique<detail::DirLock>(
        dir_, options_.command + (options_.resume ? " --resume" : options_.force ? " --force" : ""));
  } catch (const WriteError& e) {
    if (user_fixable(e.error()))
      throw InputError(d + ": cannot be written (" + e.reason() + "); choose another -o");
    throw;
  }

  // Only regular files are read or written here: a symlink planted in OUTDIR would redirect the output
  // elsewhere, a FIFO would block the run forever, a device would swallow it.
  for (const fs::path& f : {cells_path_, series_path_, json_path_, dir_ / "heatmaps"}) {
    const auto st = fs::symlink_status(f, ec);
    const bool dir_expected = f.filename() == "heatmaps";
    if (st.type() == fs::file_type::not_found || st.type() == fs::file_type::none) continue;
    if (st.type() == (dir_expected ? fs::file_type::directory : fs::file_type::regular)) continue;
    throw InputError(f.string() + ": is " +
                     (st.type() == fs::file_type::symlink ? std::string("a symbolic link")
                                                          : std::string("not a regular file")) +
                     ", expected " + (dir_expected ? "a directory" : "a file") +
                     " written by gradflow (output is never written through links, FIFOs or devices); remove it "
                     "or choose another -o");
  }
  bool resuming = false;
  if (fs::exists(json_path_, ec) || fs::exists(cells_path_, ec)) {
    std::string old_hash, old_version;
    nlohmann::json old_inputs = nlohmann::json::array();
    Shard old_shard;
    try {
      std::ifstream in(json_path_);
      const auto old = nlohmann::json::parse(in);
      old_hash = old.value("scenario_hash", "");
      old_version = old.value("gradflow_version", "");
      if (old.contains("inputs") && old["inputs"].is_array()) old_inputs = old["inputs"];
      if (old.contains("shard") && old["shard"].is_object())
        old_shard = Shard{old["shard"].value("index", std::int64_t{0}), old["shard"].value("count", std::int64_t{1})};
    } catch (const std::exception&) {
      old_hash = "";  // unreadable run.json: treated as another run
    }
    if (options_.force) {
      // Exactly what gradflow wrote there: the CSVs, run.json, the heatmaps it listed (and heatmaps/ when
      // that leaves it empty), temporary files of an interrupted atomic write. Anything else is the user's.
      try {
        std::ifstream in(json_path_);
        const auto old = nlohmann::json::parse(in);
        if (old.contains("files") && old["files"].contains("heatmaps"))
          for (const auto& h : old["files"]["heatmaps"]) {
            const std::string name = h.value("file", "");
            if (name.rfind("heatmaps/", 0) == 0 && name.find("..") == std::string::npos &&
                name.find('/', 9) == std::string::npos)
              fs::remove(dir_ / name, ec);
          }
      } catch (const std::exception&) {
        // no readable run.json: no heatmap list to remove
      }
      if (fs::is_directory(dir_ / "heatmaps", ec) && fs::is_empty(dir_ / "heatmaps", ec))
        fs::remove(dir_ / "heatmaps", ec);
      for (const auto& f : {cells_path_, series_path_, json_path_})
        for (const fs::path& g : {f, fs::path(f.string() + ".tmp")}) fs::remove(g, ec);
    } else if (old_hash != hash_ && !(old_hash == legacy_scenario_hash(scenario_) && scenario_.inputs.empty() &&
                                      old_version == GRADFLOW_VERSION)) {
      // Say why when it is not the scenario itself: another gradflow, or an input file that changed.
      if (!old_version.empty() && old_version != GRADFLOW_VERSION)
        throw InputError(d + ": holds a run written by gradflow " + old_version + ", this is gradflow " +
                         GRADFLOW_VERSION + ": its cells cannot be mixed with this version's; choose another -o, "
                         "or --force to redo it");
      for (const auto& now : scenario_.inputs)
        for (const auto& was : old_inputs)
          if (was.value("key", "") == now.key && was.value("fnv1a64", "") != now.digest)
            throw InputError(now.path + " (" + now.key + "): content changed since the run in " + d +
                             " started (digest " + was.value("fnv1a64", "?") + ", now " + now.digest +
                             "); its cells cannot be mixed with new ones: restore the file, choose another -o, "
                             "or --force to redo the run");
      throw InputError(d + ": holds the results of a different run (scenario hash " +
                       (old_hash.empty() ? std::string("unknown") : old_hash) + ", this run " + hash_ +
                       "); choose another -o, or --force to replace them");
    } else if (old_shard != options_.shard) {
      throw InputError(d + ": holds shard " + old_shard.str() + " of this run, not shard " + options_.shard.str() +
                       "; choose the -o of that shard, or --force to replace it");
    } else if (!options_.resume) {
      throw InputError(d + ": already holds this run; use --resume to complete it or --force to redo it");
    } else {
      resuming = true;
    }
  }
  try {
    prepare(resuming);
  } catch (const WriteError& e) {
    // The user's choice of OUTDIR (permissions, a read-only file system) is bad input, not a write failure.
    if (user_fixable(e.error()))
      throw InputError(e.file().string() + ": cannot be written (" + e.reason() + "); choose another -o");
    throw;
  }
}

void RunWriter::prepare(bool resuming) {
  // run.json (status "running") is written before any row, so a run killed at any moment leaves a
  // directory that --resume recognises; a cells.csv without a complete header holds no finished cell.
  // Every pass streams the files line by line: memory O(cells), whatever their size.
  const std::size_t buffer = options_.stream_buffer;
  const std::string header = join_fields(cell_columns(scenario_));
  std::string line;
  bool rows = false;
  std::error_code ec;
  if (resuming && fs::exists(cells_path_, ec)) rows = detail::LineReader(cells_path_, buffer).next(line);
  if (!rows) {
    finish("running");
    open_streams(false);
    return;
  }
  if (line != header)
    throw InputError(cells_path_.string() + ": header differs from this run's columns; cannot resume");
  const std::size_t columns = cell_columns(scenario_).size();
  // The row kept of a cell is its first whole one in this shard.
  auto kept_row = [&](const std::string& row, std::int64_t* cell, std::int64_t* rep) {
    return row_key(row, cell, rep) && scenario_.contains(*cell, *rep) && in_shard(*cell, *rep);
  };
  std::uint64_t cells_kept = header.size() + 1;
  {
    detail::LineReader in(cells_path_, buffer);
    in.next(line);
    while (in.next(line)) {
      std::int64_t cell, rep;
      if (!kept_row(line, &cell, &rep) || status_[slot(cell, rep)] == CellStatus::done) continue;
      // A row with the wrong number of fields (edited, or damaged) would fail the completion of every
      // resume: dropped, so that its cell is recomputed.
      if (detail::field_count(line) != columns) {
        ++dropped_rows_;
        continue;
      }
      status_[slot(cell, rep)] = CellStatus::done;
      ++done_;
      cells_kept += line.size() + 1;
    }
  }
  // Series rows are written before their cells row: drop those of cells that did not finish.
  const std::string series_header = join_fields(series_columns(scenario_));
  const std::size_t series_width = series_columns(scenario_).size();
  auto series_of_done = [&](const std::string& row, std::int64_t* cell, std::int64_t* rep) {
    return row_key(row, cell, rep) && scenario_.contains(*cell, *rep) &&
           status_[slot(*cell, *rep)] == CellStatus::done;
  };
  std::uint64_t series_kept = series_header.size() + 1;
  std::vector<std::size_t> bad_series;
  if (fs::exists(series_path_, ec)) {
    detail::LineReader in(series_path_, buffer);
    in.next(line);
    while (in.next(line)) {
      std::int64_t cell, rep;
      if (!series_of_done(line, &cell, &rep)) continue;
      if (detail::field_count(line) == series_width) {
        series_kept += line.size() + 1;
      } else {  // its cell's series is incomplete now: recompute the cell
        bad_series.push_back(slot(cell, rep));
        ++dropped_rows_;
      }
    }
  }
  // Cells with a damaged series row: drop their cells row and every series row, recompute them.
  for (const std::size_t b : bad_series)
    if (status_[b] == CellStatus::done) {
      status_[b] = CellStatus::pending;
      --done_;
    }
  // Rewritten only when rows are dropped: a resume after a full disk then needs no room for a copy.
  if (!bad_series.empty() || cells_kept != fs::file_size(cells_path_, ec)) {
    detail::AtomicFile out(cells_path_, buffer);
    out.write(header + "\n");
    std::vector<bool> written(status_.size(), false);  // the row pass 1 kept: the first whole one
    detail::LineReader in(cells_path_, buffer);
    in.next(line);
    while (in.next(line)) {
      std::int64_t cell, rep;
      if (!kept_row(line, &cell, &rep) || status_[slot(cell, rep)] != CellStatus::done ||
          written[slot(cell, rep)] || detail::field_count(line) != columns)
        continue;
      written[slot(cell, rep)] = true;
      out.write(line);
      out.write("\n");
    }
    out.commit();
  }
  if (scenario_.base.analysis.series &&
      (!bad_series.empty() || series_kept != fs::file_size(series_path_, ec))) {
    detail::AtomicFile out(series_path_, buffer);
    out.write(series_header + "\n");
    detail::LineReader in(series_path_, buffer);
    in.next(line);
    while (in.next(line)) {
      std::int64_t cell, rep;
      if (series_of_done(line, &cell, &rep) && detail::field_count(line) == series_width) {
        out.write(line);
        out.write("\n");
      }
    }
    out.commit();
  }
  finish("running");
  open_streams(true);
}

RunWriter::~RunWriter() = default;

void RunWriter::open_streams(bool append) {
  cells_ = std::make_unique<detail::AppendFile>(cells_path_, !append);
  if (!append) cells_->append(join_fields(cell_columns(scenario_)) + "\n");
  if (scenario_.base.analysis.series) {
    series_ = std::make_unique<detail::AppendFile>(series_path_, !append);
    if (!append) series_->append(join_fields(series_columns(scenario_)) + "\n");
  }
}

bool RunWriter::is_done(std::int64_t cell, std::int64_t replicate) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return status_[slot(cell, replicate)] == CellStatus::done;
}

std::int64_t RunWriter::done_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return done_;
}

// The parameter keeps RunWriter's member name: this body was RunWriter::record's and reads the same.
CellRows format_cell_rows(const Scenario& scenario_, std::int64_t cell, std::int64_t replicate,
                          const CellResult& r) {
  const CellMetrics& m = r.metrics;
  const std::string prefix = std::to_string(cell) + "," + std::to_string(replicate);
  std::vector<std::string> f{prefix};
  for (const auto& v : scenario_.cell_values(cell)) f.push_back(csv_field(v));
  for (double x : {m.rho, m.spectral_norm, m.mean_abs_dact, m.mean_sq_dact, m.sup_dact, m.predictor,
                   m.predictor_rms, m.bound})
    f.push_back(csv_number(x));
  f.push_back(csv_optional(m.fit.growth_rate));
  f.push_back(csv_optional(m.log10_grad_ratio));
  f.push_back(to_string(m.regime));
  f.push_back(csv_optional(m.forward_diverged_at));
  f.push_back(csv_number(m.dead_fraction));
  f.push_back(csv_number(m.saturated_fraction));
  f.push_back(csv_number(r.seconds));
  f.push_back(std::to_string(r.trace.horizon));
  f.push_back(m.fit.growth_rate ? std::to_string(m.fit.first_lag) : "");
  f.push_back(m.fit.growth_rate ? std::to_string(m.fit.last_lag) : "");
  f.push_back(csv_optional(m.grad_zero_at));
  f.push_back(csv_number(r.trace.max_abs_dact));
  // converged < fallback < not_converged: "converged" and "fallback" as before, not_converged for a large
  // sparse solve that ran out of budget.
  const auto worst = std::max(r.spectrum.rho_status, r.spectrum.norm_status);
  f.push_back(to_string(worst));
  f.push_back(csv_number(r.seconds_spectrum));
  f.push_back(csv_number(r.seconds_forward));
  f.push_back(csv_number(r.seconds_backward));
  // Ground-truth block (same order as cell_columns).
  const MeanField& mf = r.mean_field;
  f.push_back(csv_number(r.gain_rms));
  const bool mf_ok = mf.status == MeanFieldStatus::ok || mf.status == MeanFieldStatus::q_diverges;
  f.push_back(mf.status == MeanFieldStatus::ok ? csv_number(mf.q) : "");
  f.push_back(mf_ok ? csv_number(mf.growth) : "");
  f.push_back(mf_ok ? csv_number(mf.lyapunov) : "");  // empty also when growth = 0 (ln 0)
  f.push_back(to_string(mf.status));
  if (const std::int64_t k = max_lyapunov_count(scenario_); k > 0) {
    const LyapunovResult& ly = r.lyapunov;
    const bool have = !ly.exponents.empty();
    f.push_back(have ? csv_number(ly.exponents.front()) : "");
    f.push_back(have && std::isfinite(ly.exponents.front()) ? csv_number(ly.exponents_std.front()) : "");
    const bool computed = ly.per_trajectory.rows() > 0;  // false for a cell with analysis.lyapunov = 0
    f.push_back(computed ? to_string(ly.status) : "");
    for (std::int64_t i = 0; i < k; ++i)
      f.push_back(static_cast<std::size_t>(i) < ly.exponents.size() ? csv_number(ly.exponents[i]) : "");
  }
  // Model space block (see cell_columns).
  f.push_back(csv_optional(m.transient_peak));
  f.push_back(csv_optional(m.transient_peak_lag));
  f.push_back(csv_optional(r.spectrum.bulk_radius));
  f.push_back(csv_optional(r.spectrum.outlier));
  f.push_back(to_string(r.storage));
  f.push_back(csv_number(r.nonzeros));
  f.push_back(csv_optional(m.fit.growth_rate_se));
  f.push_back(csv_number(m.tau));
  if (has_own_jacobian(scenario_))
    for (double x : {m.predictor_cell, m.predictor_rms_cell, m.bound_cell}) f.push_back(csv_number(x));
  if (has_gated_cell(scenario_)) {
    const auto& tr = r.trace;
    std::map<std::string, std::pair<double, double>> gate;  // stem -> (mean, std)
    for (const auto& [stem, name] : reported_gates(tr.coefficient_names)) {
      const auto k = static_cast<std::size_t>(
          std::find(tr.coefficient_names.begin(), tr.coefficient_names.end(), name) - tr.coefficient_names.begin());
      if (k >= tr.coef_mean.size()) continue;
      const double mean = tr.coef_mean[k];
      gate[stem] = {mean, std::sqrt(std::max(0.0, tr.coef_rms[k] * tr.coef_rms[k] - mean * mean))};
    }
    auto put = [&](const char* stem) {
      const auto it = gate.find(stem);
      f.push_back(it == gate.end() ? "" : csv_number(it->second.first));
      f.push_back(it == gate.end() ? "" : csv_number(it->second.second));
      if (std::string(stem) == "memory")
        f.push_back(it == gate.end() || !(it->second.first < 1.0) ? "" : csv_number(1.0 / (1.0 - it->second.first)));
    };
    for (const char* stem : {"memory", "reset", "input", "output"}) put(stem);
  }
  const std::string cells_row = join_fields(f) + "\n";

  std::string series_rows;
  if (scenario_.base.analysis.series) {
    const auto& tr = r.trace;
    // Predicted log10 ||g_t|| - log10 ||g_T|| from the per-step factors rho mean|f'(a_s)| and its RMS form.
    std::vector<double> abs_factor(tr.horizon + 1, 0.0), rms_factor(tr.horizon + 1, 0.0);
    for (Eigen::Index s = 1; s <= tr.horizon; ++s) {
      abs_factor[s] = m.rho * tr.mean_abs_dact_t[s];
      rms_factor[s] = m.rho * std::sqrt(tr.mean_sq_dact_t[s]);
    }
    const std::vector<double> cum_abs = cumulative_log10_prediction(abs_factor);
    const std::vector<double> cum_rms = cumulative_log10_prediction(rms_factor);
    const bool second_state = has_second_state(scenario_);  // log10_grad_norm_h (= the whole norm without c)
    for (Eigen::Index t = 0; t <= tr.horizon; ++t) {
      const bool any = tr.zero_count[t] < tr.batch;
      series_rows += prefix + "," + std::to_string(t) + "," +
                     (any ? csv_number(tr.log10_norm_mean[t]) + "," + csv_number(tr.log10_norm_min[t]) + "," +
                                csv_number(tr.log10_norm_max[t])
                          : std::string(",,")) +
                     "," + (t >= 1 ? csv_number(tr.mean_abs_dact_t[t]) : std::string()) + "," +
                     std::to_string(tr.zero_count[t]) + "," + csv_number(cum_abs[t]) + "," +
                     csv_number(cum_rms[t]) +
                     (second_state ? "," + (static_cast<std::size_t>(t) < tr.log10_norm_h_mean.size()
                                                ? csv_number(tr.log10_norm_h_mean[t])
                                                : csv_number(any ? tr.log10_norm_mean[t] : NAN))
                                   : std::string()) +
                     "\n";
    }
  }

  return CellRows{cells_row, series_rows};
}

void RunWriter::record(std::int64_t cell, std::int64_t replicate, const CellResult& r) {
  write_rows(cell, replicate, format_cell_rows(scenario_, cell, replicate, r));
}

void RunWriter::write_rows(std::int64_t cell, std::int64_t replicate, const CellRows& rows) {
  const std::string& cells_row = rows.cells;
  const std::string& series_rows = rows.series;
  std::lock_guard<std::mutex> lock(mutex_);
  if (write_error_) throw *write_error_;  // stopped: nothing more is written, the cell stays pending
  if (!cells_ || (scenario_.base.analysis.series && !series_))
    throw std::logic_error("RunWriter::write_rows after the run's files were closed");
  try {
    const bool series = !series_rows.empty() && scenario_.base.analysis.series;
    const off_t series_before = series ? series_->size() : 0;
    if (series) series_->append(series_rows);
    try {
      cells_->append(cells_row);
    } catch (const WriteError&) {
      if (series) series_->rollback(series_before);  // the cell did not finish: no series rows of it either
      throw;
    }
  } catch (const WriteError& e) {
    write_error_ = e;
    throw;
  }
  auto& s = status_[slot(cell, replicate)];
  if (s != CellStatus::done) ++done_;
  s = CellStatus::done;
}

std::optional<WriteError> RunWriter::write_error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return write_error_;
}

void RunWriter::record_failure(std::int64_t cell, std::int64_t replicate, const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  status_[slot(cell, replicate)] = CellStatus::failed;
  failures_[slot(cell, replicate)] = message;
}

void RunWriter::sort_file(const fs::path& file) const {
  sort_rows(file, scenario_.replicates, options_.stream_buffer);
}

std::optional<HeatmapAxes> heatmap_axes(const Scenario& scenario) {
  // x: the first numeric axis; y: the second numeric axis, else the first string axis; facets: the rest.
  auto numeric = [](const SweepAxis& a) {
    return !a.values.empty() && (std::holds_alternative<double>(a.values[0]) ||
                                 std::holds_alternative<std::int64_t>(a.values[0]));
  };
  const auto& axes = scenario.axes;
  std::optional<std::size_t> x, y;
  for (std::size_t i = 0; i < axes.size(); ++i)
    if (numeric(axes[i])) {
      if (!x) x = i;
      else if (!y) y = i;
    }
  for (std::size_t i = 0; i < axes.size() && x && !y; ++i)
    if (!numeric(axes[i])) y = i;
  if (!x || !y) return std::nullopt;
  HeatmapAxes grid{*x, *y, {}, 1};
  for (std::size_t i = 0; i < axes.size(); ++i)
    if (i != *x && i != *y) {
      grid.facet_axes.push_back(i);
      grid.facets *= axes[i].values.size();
    }
  return grid;
}

nlohmann::json RunWriter::write_heatmaps() const {
  nlohmann::json written = nlohmann::json::array();
  const auto& axes = scenario_.axes;
  const auto grid = heatmap_axes(scenario_);
  if (!grid) return written;
  const std::optional<std::size_t> x = grid->x, y = grid->y;

  // Read row by row: memory O(grid), not O(cells.csv).
  detail::LineReader in(cells_path_, options_.stream_buffer);
  std::string line;
  if (!in.next(line)) return written;
  const auto header = split_fields(line);
  auto column = [&](const std::string& name) {  // npos (never < a row's size) when the column is missing
    return detail::column_index(header, name).value_or(std::string::npos);
  };
  std::vector<std::string> metrics{"growth_rate", "predictor", "predictor_rms", "bound", "log10_grad_ratio"};
  for (const char* own : {"predictor_cell", "predictor_rms_cell", "bound_cell"})  // cells with their own Jacobian
    if (column(own) != std::string::npos) metrics.push_back(own);

  // Sum and count per (facet, y, x, metric) over replicates.
  const std::vector<std::size_t>& facet_axes = grid->facet_axes;
  const std::size_t facets = grid->facets;
  const std::size_t nx = axes[*x].values.size(), ny = axes[*y].values.size();
  std::vector<double> sum(facets * ny * nx * metrics.size(), 0.0), count(sum.size(), 0.0), sumsq(sum.size(), 0.0);
  bool rows = false;
  while (in.next(line)) {
    rows = true;
    const auto f = split_fields(line);
    std::int64_t cell = 0, rep = 0;
    if (!row_key(line, &cell, &rep)) continue;
    const auto idx = scenario_.axis_indices(cell);
    std::size_t facet = 0;
    for (auto i : facet_axes) facet = facet * axes[i].values.size() + idx[i];
    for (std::size_t m = 0; m < metrics.size(); ++m) {
      const std::size_t c = column(metrics[m]);
      if (c >= f.size() || f[c].empty()) continue;
      const std::size_t at = ((facet * ny + idx[*y]) * nx + idx[*x]) * metrics.size() + m;
      const double v = std::stod(f[c]);
      sum[at] += v;
      sumsq[at] += v * v;
      count[at] += 1.0;
    }
  }
  if (!rows) return written;
  const fs::path dir = dir_ / "heatmaps";
  std::error_code ec;
  fs::create_directories(dir, ec);
  // Reported as itself: ignored, a full disk would surface as ENOENT from the first heatmap's write.
  if (ec) throw WriteError(dir, ec.value());
  for (std::size_t facet = 0; facet < facets; ++facet) {
    // Facet name from its axis values, e.g. "network.activation=tanh".
    std::string facet_name, facet_label;
    std::size_t rest = facet;
    std::vector<std::string> parts(facet_axes.size());
    for (std::size_t k = facet_axes.size(); k-- > 0;) {
      const auto& a = axes[facet_axes[k]];
      parts[k] = a.key + "=" + csv_field(a.values[rest % a.values.size()]);
      rest /= a.values.size();
    }
    for (const auto& p : parts) {
      facet_label += (facet_label.empty() ? "" : ", ") + p;
      facet_name += "_" + p;
    }
    // Each metric's mean over replicates; growth_rate also its spread (sample sd over replicates, nan with
    // one), so a transition can be told from noise.
    for (std::size_t out = 0; out <= metrics.size(); ++out) {
      const bool spread = out == metrics.size();
      const std::size_t m = spread ? 0 : out;
      const std::string metric = spread ? metrics[m] + "_sd" : metrics[m];
      const std::string name = "heatmaps/" + heatmap_file_name(metric, facet_name);
      std::string text = "# " + metric + (spread ? " (sample sd over replicates)" : " (mean over replicates)") +
                         (facet_label.empty() ? "" : " for " + facet_label) + "\n# rows: " + axes[*y].key + " =";
      for (const auto& v : axes[*y].values) text += " " + csv_field(v);
      text += "\n# columns: " + axes[*x].key + " =";
      for (const auto& v : axes[*x].values) text += " " + csv_field(v);
      text += "\n";
      for (std::size_t iy = 0; iy < ny; ++iy) {
        for (std::size_t ix = 0; ix < nx; ++ix) {
          const std::size_t at = ((facet * ny + iy) * nx + ix) * metrics.size() + m;
          if (ix) text += ',';
          if (spread) {
            const double n = count[at], mean = n > 0 ? sum[at] / n : 0.0;
            const double var = n > 1 ? std::max(0.0, (sumsq[at] - n * mean * mean) / (n - 1.0)) : 0.0;
            text += n > 1 ? csv_number(std::sqrt(var)) : std::string("nan");
          } else {
            text += count[at] > 0 ? csv_number(sum[at] / count[at]) : std::string("nan");
          }
        }
        text += '\n';
      }
      write_atomically(dir_ / name, text);
      written.push_back({{"file", name}, {"metric", metric}, {"x", axes[*x].key}, {"y", axes[*y].key},
                         {"facet", facet_label}});
    }
  }
  return written;
}

void RunWriter::annotate(const std::string& key, nlohmann::json value) {
  std::lock_guard<std::mutex> lock(mutex_);
  extra_[key] = std::move(value);
}

void RunWriter::finish(const std::string& status) {
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    finish_locked(status);
  } catch (const WriteError& e) {
    if (!write_error_) write_error_ = e;  // run.json, when it can be written later, names the first failure
    throw;
  }
}

void RunWriter::finish_locked(const std::string& status) {
  const bool complete = done_ == total_;
  if (status == "complete" && complete && !sorted_) {
    cells_.reset();
    sort_file(cells_path_);
    if (scenario_.base.analysis.series) {
      series_.reset();
      sort_file(series_path_);
    }
    // A shard's heatmaps and verdicts would be mostly holes: `gradflow merge` writes them for the whole run.
    if (options_.shard.whole()) {
      heatmaps_ = write_heatmaps();
      verdicts_ = compute_verdicts(scenario_, cells_path_);
      summary_text_ = format_summary(write_summary(dir_, SummaryOptions{}, verdicts_));
    }
    sorted_ = true;
  }
  std::int64_t failed = 0;
  for (const auto& [at, message] : failures_)
    if (status_[at] == CellStatus::failed &&
        in_shard(static_cast<std::int64_t>(at) / scenario_.replicates, static_cast<std::int64_t>(at) % scenario_.replicates))
      ++failed;
  nlohmann::json j;
  j["gradflow_version"] = GRADFLOW_VERSION;
  j["gradflow_commit"] = git_commit();
  j["scenario_file"] = scenario_.path.string();
  j["scenario_name"] = scenario_.name;
  j["title"] = scenario_.base.title;
  j["seed"] = scenario_.base.seed;
  j["scenario_hash"] = hash_;
  j["scenario"] = scenario_json(scenario_);
  j["inputs"] = inputs_json(scenario_);
  j["build"] = build_json();
  j["overrides"] = scenario_.overrides;
  if (!options_.shard.whole())
    j["shard"] = {{"index", options_.shard.index}, {"count", options_.shard.count},
                  {"rule", "(cell * replicates + replicate) % count == index"}};
  j["threads"] = threads_;
  j["gemm"] = gemm_backend();
  j["status"] = status == "complete" && !complete ? "incomplete" : status;
  if (write_error_) j["write_error"] = write_error_->what();
  j["start_time"] = start_time_;
  j["end_time"] = status == "running" ? nlohmann::json(nullptr) : nlohmann::json(utc_now());
  j["wall_seconds"] = wall_seconds() - start_seconds_;
  j["cells_total"] = total_;
  j["cells_done"] = done_;
  j["cells_failed"] = failed;
  if (dropped_rows_ > 0) j["rows_dropped_at_resume"] = dropped_rows_;
  j["files"] = {{"cells", "cells.csv"}};
  if (scenario_.base.analysis.series) j["files"]["series"] = "series.csv";
  if (!heatmaps_.empty()) j["files"]["heatmaps"] = heatmaps_;
  if (!verdicts_.is_null()) j["verdicts"] = verdicts_;
  if (!summary_text_.empty()) j["files"]["summary"] = "summary.csv";
  for (const auto& [key, value] : extra_.items())
    if (!j.contains(key)) j[key] = value;
  // The status of every cell is streamed into the text after the rest of run.json: a run of 1e7 cells
  // holds no JSON object per cell. The text is nlohmann's dump(2) of the whole, byte for byte.
  j["cells"] = "cells";
  const std::string text = j.dump(2) + "\n";
  const std::string marker = "\n  \"cells\": \"cells\"";  // a raw newline is never inside a JSON string
  const std::size_t at = text.find(marker) + marker.size() - std::string("\"cells\"").size();
  detail::AtomicFile out(json_path_, options_.stream_buffer);
  out.write(std::string_view(text).substr(0, at));
  bool first = true;
  for (std::int64_t c = 0; c < scenario_.cell_count(); ++c)
    for (std::int64_t r = 0; r < scenario_.replicates; ++r) {
      if (!in_shard(c, r)) continue;
      const auto s = status_[slot(c, r)];
      std::string e = first ? "[\n" : ",\n";
      first = false;
      e += "    {\n      \"cell\": " + std::to_string(c) + ",\n";
      if (s == CellStatus::failed) {
        const auto it = failures_.find(slot(c, r));
        e += "      \"error\": " + nlohmann::json(it == failures_.end() ? std::string() : it->second).dump() + ",\n";
      }
      e += "      \"replicate\": " + std::to_string(r) + ",\n      \"status\": \"" +
           (s == CellStatus::done ? "done" : s == CellStatus::failed ? "failed" : "pending") + "\"\n    }";
      out.write(e);
    }
  out.write(first ? "[]" : "\n  ]");
  out.write(std::string_view(text).substr(at + std::string("\"cells\"").size()));
  out.commit();
}

}  // namespace gradflow
