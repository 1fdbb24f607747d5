#include "gradflow/run/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "durable_file.hpp"
#include "gradflow/model/recurrent.hpp"
#include "gradflow/model/spectrum.hpp"
#include "gradflow/run/output.hpp"
#include "gradflow/run/scenario.hpp"
#include "report_svg.hpp"

namespace gradflow {

namespace fs = std::filesystem;
using detail::html_escape;

namespace {

/// Largest N whose eigenvalues the report computes (dense, O(N^3): ~1 s at 2000).
constexpr long long kMaxReportEigenvalues = 2000;
/// Gradient-norm series drawn.
constexpr std::size_t kMaxSeries = 6;

/// A CSV file by column name. Fields may be double-quoted (RFC 4180), as a summary's reasons may be.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::optional<std::size_t> col(const std::string& name) const {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? std::nullopt : std::optional<std::size_t>(std::size_t(it - header.begin()));
  }
  const std::string& at(std::size_t row, std::size_t c) const {
    static const std::string empty;
    return c < rows[row].size() ? rows[row][c] : empty;
  }
};

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') fields.back() += '"', ++i;
    else if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) fields.emplace_back();
    else if (c != '\r') fields.back() += c;
  }
  return fields;
}

/// Which rows of a table to keep (given its header and the row's fields); all when empty.
using RowFilter = std::function<bool(const std::vector<std::string>&, const std::vector<std::string>&)>;

std::optional<Table> read_table(const fs::path& file, const RowFilter& keep = {}) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  Table t;
  std::string line;
  if (std::getline(in, line)) t.header = split_csv(line);
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto fields = split_csv(line);
    if (!keep || keep(t.header, fields)) t.rows.push_back(std::move(fields));
  }
  return t;
}

std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(x)) return std::nullopt;
  return x;
}

std::string fmt(double x, const char* format = "%.4g") {
  char buf[48];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

std::string json_text(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string section(const std::string& id, const std::string& title, const std::string& body) {
  return "<section id=\"" + id + "\"><h2>" + html_escape(title) + "</h2>\n" + body + "</section>\n";
}

std::string note(const std::string& text) { return "<p class=\"note\">" + html_escape(text) + "</p>\n"; }

std::string html_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string s = "<table><tr>";
  for (const auto& h : header) s += "<th>" + html_escape(h) + "</th>";
  s += "</tr>\n";
  for (const auto& r : rows) {
    s += "<tr>";
    for (const auto& f : r) s += "<td>" + html_escape(f) + "</td>";
    s += "</tr>\n";
  }
  return s + "</table>\n";
}

/// The distinct values of a column in order of first appearance.
std::vector<std::string> distinct(const Table& t, std::size_t c) {
  std::vector<std::string> v;
  for (std::size_t r = 0; r < t.rows.size(); ++r)
    if (std::find(v.begin(), v.end(), t.at(r, c)) == v.end()) v.push_back(t.at(r, c));
  return v;
}

std::string scenario_section(const nlohmann::json& run) {
  const auto& sc = run.value("scenario", nlohmann::json::object());
  std::vector<std::vector<std::string>> axes, keys;
  if (sc.contains("sweep"))
    for (const auto& a : sc["sweep"].value("axes", nlohmann::json::array())) {
      std::string values;
      for (const auto& v : a.value("values", nlohmann::json::array())) values += (values.empty() ? "" : ", ") + json_text(v);
      axes.push_back({a.value("key", ""), std::to_string(a.value("values", nlohmann::json::array()).size()), values});
    }
  if (sc.contains("resolved"))
    for (const auto& [k, v] : sc["resolved"].items()) keys.push_back({k, v.is_null() ? "(unset)" : json_text(v)});
  std::string body = "<p><b>" + html_escape(run.value("title", std::string())) + "</b> &mdash; scenario " +
                     html_escape(run.value("scenario_name", std::string())) + ", seed " +
                     html_escape(json_text(run.value("seed", nlohmann::json()))) + ", replicates " +
                     html_escape(json_text(sc.contains("sweep") ? sc["sweep"].value("replicates", nlohmann::json(1))
                                                                : nlohmann::json(1))) +
                     "</p>\n";
  if (axes.empty()) body += note("No sweep: one cell.");
  else body += "<h3>Sweep axes</h3>\n" + html_table({"key", "values", "taken"}, axes);
  body += "<details><summary>Every key, resolved</summary>\n" + html_table({"key", "value"}, keys) + "</details>\n";
  return section("scenario", "Scenario", body);
}

struct Axes {
  std::vector<std::string> keys;  // sweep axes present as cells.csv columns, in sweep order
};

Axes sweep_axes(const nlohmann::json& run, const Table& cells) {
  Axes a;
  const auto& sc = run.value("scenario", nlohmann::json::object());
  if (sc.contains("sweep"))
    for (const auto& ax : sc["sweep"].value("axes", nlohmann::json::array()))
      if (cells.col(ax.value("key", ""))) a.keys.push_back(ax.value("key", ""));
  return a;
}

std::string heatmap_section(const Table& cells, const Axes& axes) {
  if (axes.keys.empty()) return section("heatmaps", "Heatmaps", note("No sweep axis: nothing to map."));
  const auto has = [&](const std::string& k) { return std::find(axes.keys.begin(), axes.keys.end(), k) != axes.keys.end(); };
  const std::string xkey = has("spectrum.radius") ? "spectrum.radius" : axes.keys.front();
  std::string ykey;
  for (const auto& k : axes.keys)
    if (k != xkey) {
      ykey = k;
      break;
    }
  const std::size_t xc = *cells.col(xkey);
  const std::optional<std::size_t> yc = ykey.empty() ? std::nullopt : cells.col(ykey);
  const auto xs = distinct(cells, xc);
  const auto ys = yc ? distinct(cells, *yc) : std::vector<std::string>{""};
  // Other axes are fixed at their first value.
  std::vector<std::pair<std::size_t, std::string>> fixed;
  std::string fixed_text;
  for (const auto& k : axes.keys)
    if (k != xkey && k != ykey) {
      const std::size_t c = *cells.col(k);
      fixed.emplace_back(c, cells.at(0, c));
      fixed_text += (fixed_text.empty() ? "" : ", ") + k + " = " + cells.at(0, c);
    }
  struct Quantity {
    const char* column;
    const char* title;
  };
  const Quantity quantities[] = {{"growth_rate", "measured growth rate"},
                                 {"predictor", "predictor rho E|f'|"},
                                 {"predictor_rms", "predictor rho sqrt(E f'^2)"},
                                 {"predictor_cell", "predictor_cell (rho of the cell's mean Jacobian)"}};
  std::vector<detail::Heatmap> maps;
  double span = 0.02;
  for (const auto& q : quantities) {
    const auto c = cells.col(q.column);
    if (!c) continue;
    std::vector<std::vector<double>> sum(ys.size(), std::vector<double>(xs.size(), 0.0));
    std::vector<std::vector<int>> count(ys.size(), std::vector<int>(xs.size(), 0));
    for (std::size_t r = 0; r < cells.rows.size(); ++r) {
      bool keep = true;
      for (const auto& [fc, fv] : fixed) keep = keep && cells.at(r, fc) == fv;
      const auto v = number(cells.at(r, *c));
      if (!keep || !v || *v <= 0) continue;
      const auto xi = std::size_t(std::find(xs.begin(), xs.end(), cells.at(r, xc)) - xs.begin());
      const auto yi = yc ? std::size_t(std::find(ys.begin(), ys.end(), cells.at(r, *yc)) - ys.begin()) : 0;
      sum[yi][xi] += std::log10(*v);
      ++count[yi][xi];
    }
    detail::Heatmap h;
    h.title = std::string("log10 ") + q.title + " per step";
    h.x_label = xkey;
    h.y_label = ykey;
    h.colour_label = "log10 factor";
    h.x_ticks = xs;
    h.y_ticks = ys;
    h.value.assign(ys.size(), std::vector<std::optional<double>>(xs.size()));
    for (std::size_t y = 0; y < ys.size(); ++y)
      for (std::size_t x = 0; x < xs.size(); ++x)
        if (count[y][x] > 0) {
          h.value[y][x] = sum[y][x] / count[y][x];
          if (std::string(q.column) == "growth_rate") span = std::max(span, std::abs(*h.value[y][x]));
        }
    maps.push_back(std::move(h));
  }
  std::string body = note("Colour: log10 of the per-step factor of ||g_t|| (mean over replicates): blue vanishing, "
                          "white critical (factor 1), red exploding; one colour scale for every map." +
                          (fixed_text.empty() ? std::string() : " Other axes fixed at " + fixed_text + "."));
  for (auto& h : maps) {
    h.span = std::min(span, 1.0);
    body += "<figure>" + detail::svg_heatmap(h) + "</figure>\n";
  }
  return section("heatmaps", "Heatmaps", body);
}

/// Rows (of replicate 0) whose series are drawn: spread over the measured growth rates, and the one closest
/// to critical first.
std::vector<std::size_t> chosen_rows(const Table& cells) {
  const auto rc = cells.col("replicate"), gc = cells.col("growth_rate");
  std::vector<std::pair<double, std::size_t>> by_rate;
  for (std::size_t r = 0; r < cells.rows.size(); ++r)
    if (rc && cells.at(r, *rc) == "0" && gc)
      if (const auto v = number(cells.at(r, *gc))) by_rate.emplace_back(*v, r);
  std::sort(by_rate.begin(), by_rate.end());
  std::vector<std::size_t> rows;
  if (by_rate.empty()) return rows;
  const auto critical = std::min_element(by_rate.begin(), by_rate.end(), [](const auto& a, const auto& b) {
    return std::abs(std::log(a.first)) < std::abs(std::log(b.first));
  });
  rows.push_back(critical->second);
  const std::size_t n = std::min(kMaxSeries, by_rate.size());
  for (std::size_t i = 0; i < n && rows.size() < n; ++i) {
    const std::size_t r = by_rate[n == 1 ? 0 : i * (by_rate.size() - 1) / (n - 1)].second;
    if (std::find(rows.begin(), rows.end(), r) == rows.end()) rows.push_back(r);
  }
  return rows;
}

std::string cell_label(const Table& cells, std::size_t row, const Axes& axes) {
  std::string s;
  for (const auto& k : axes.keys) s += (s.empty() ? "" : ", ") + cells.at(row, *cells.col(k));
  if (s.empty()) s = "cell " + cells.at(row, 0);
  if (const auto g = cells.col("growth_rate")) s += " (" + cells.at(row, *g).substr(0, 6) + ")";
  return s;
}

std::string series_section(const Table& cells, const std::optional<Table>& series, const Axes& axes,
                           const std::vector<std::size_t>& chosen) {
  if (!series || !series->col("log10_grad_norm"))
    return section("series", "Gradient norms", note("No series.csv (analysis.series = false)."));
  const std::size_t sc = *series->col("cell"), sr = *series->col("replicate"), st = *series->col("t"),
                    sv = *series->col("log10_grad_norm");
  detail::LinePlot p;
  p.title = "log10 ||dL/dh_t|| of chosen cells (replicate 0)";
  p.x_label = "t";
  p.y_label = "log10 ||g_t||";
  for (std::size_t row : chosen) {
    const std::string cell = cells.at(row, 0);
    std::vector<std::pair<double, double>> line;
    for (std::size_t r = 0; r < series->rows.size(); ++r)
      if (series->at(r, sc) == cell && series->at(r, sr) == "0")
        line.emplace_back(number(series->at(r, st)).value_or(NAN), number(series->at(r, sv)).value_or(NAN));
    p.labels.push_back(cell_label(cells, row, axes));
    p.lines.push_back(std::move(line));
  }
  return section("series", "Gradient norms",
                 note("Cells spread over the measured growth rates (in brackets), the one closest to critical "
                      "first. The seed g_T sits at t = T; the slope is log10 of the per-step factor.") +
                     "<figure>" + detail::svg_lines(p) + "</figure>\n");
}

std::string spectrum_section(const nlohmann::json& run, const Table& cells, const std::vector<std::size_t>& chosen) {
  const std::string file = run.value("scenario_file", std::string());
  auto why_not = [](const std::string& text) { return section("spectrum", "Spectrum", note(text)); };
  if (file.empty()) return why_not("No eigenvalue picture: the run has no scenario file (a scenario given as a dict).");
  std::error_code ec;
  if (!fs::exists(file, ec)) return why_not("No eigenvalue picture: the scenario file " + file + " is gone.");
  try {
    const Scenario sc = load_scenario(file, run.value("overrides", std::vector<std::string>{}));
    if (scenario_hash(sc) != run.value("scenario_hash", std::string()))
      return why_not("No eigenvalue picture: " + file + " has changed since the run (scenario hash differs).");
    const std::int64_t cell = chosen.empty() ? 0 : std::stoll(cells.at(chosen.front(), 0));
    const Config cfg = sc.cell_config(cell);
    if (cfg.network.units > kMaxReportEigenvalues)
      return why_not("No eigenvalue picture: N = " + std::to_string(cfg.network.units) + " > " +
                     std::to_string(kMaxReportEigenvalues) + " (gradflow spectrum -o writes them).");
    SpectralInfo info;
    const RecurrentMatrix w = build_recurrent_matrix(cfg, std::uint64_t(sc.recurrent_family(cell)), 0, &info);
    const Eigen::VectorXcd ev = eigenvalues(w.to_dense());
    std::vector<std::pair<double, double>> points;
    double rho = 0;
    for (Eigen::Index i = 0; i < ev.size(); ++i) {
      points.emplace_back(ev[i].real(), ev[i].imag());
      rho = std::max(rho, std::abs(ev[i]));
    }
    return section("spectrum", "Spectrum",
                   note("Eigenvalues of W of cell " + std::to_string(cell) + " (replicate 0, " + to_string(cfg.spectrum.kind) +
                        ", N = " + std::to_string(cfg.network.units) + "): red circle |lambda| = rho(W) = " + fmt(rho) +
                        ", dashed the unit circle.") +
                       "<figure>" + detail::svg_eigenvalues("eigenvalues of W", points, rho) + "</figure>\n");
  } catch (const std::exception& e) {
    return why_not(std::string("No eigenvalue picture: ") + e.what());
  }
}

std::string verdict_section(const nlohmann::json& run) {
  if (!run.contains("verdicts") || !run["verdicts"].is_object())
    return section("verdicts", "Verdicts", note("No verdicts: the run is not complete."));
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : run["verdicts"].value("predictors", nlohmann::json::array())) {
    const auto& a = p.value("agreement", nlohmann::json());
    rows.push_back({p.value("name", ""), p.value("formula", ""), json_text(p.value("compared", nlohmann::json(0))),
                    json_text(p.value("agree", nlohmann::json(0))), a.is_number() ? fmt(100 * a.get<double>(), "%.1f %%") : "",
                    json_text(p.value("unavailable", nlohmann::json(0)))});
  }
  return section("verdicts", "Verdicts",
                 note("How often each predictor's regime equals the measured one. " +
                      run["verdicts"].value("rule", std::string())) +
                     html_table({"predictor", "formula", "compared", "agree", "agreement", "unavailable"}, rows));
}

std::string summary_section(const fs::path& outdir, const Axes& axes) {
  const auto t = read_table(outdir / "summary.csv");
  if (!t) return section("summary", "Summary", note("No summary.csv in this directory."));
  for (const char* need : {"quantity", "critical", "critical_lo", "critical_hi"})
    if (!t->col(need)) return section("summary", "Summary", note(std::string("summary.csv has no column ") + need + "."));
  const std::set<std::string> known{"quantity", "critical", "critical_lo", "critical_hi"};
  std::vector<std::string> header, rest;
  for (const auto& h : t->header)
    if (!known.count(h)) (std::find(axes.keys.begin(), axes.keys.end(), h) != axes.keys.end() ? header : rest).push_back(h);
  header.insert(header.end(), {"quantity", "critical", "95 % interval"});
  header.insert(header.end(), rest.begin(), rest.end());
  std::vector<std::vector<std::string>> rows;
  for (std::size_t r = 0; r < t->rows.size(); ++r) {
    std::vector<std::string> row;
    for (const auto& h : header) {
      if (h == "95 % interval") {
        const std::string lo = t->at(r, *t->col("critical_lo")), hi = t->at(r, *t->col("critical_hi"));
        row.push_back(lo.empty() && hi.empty() ? "" : "[" + lo + ", " + hi + "]");
      } else {
        row.push_back(t->at(r, *t->col(h)));
      }
    }
    rows.push_back(std::move(row));
  }
  return section("summary", "Summary", note("Critical points (where each quantity crosses 1) with their 95 % "
                                            "intervals over the replicates, from summary.csv.") +
                                           html_table(header, rows));
}

std::string metadata_section(const nlohmann::json& run) {
  std::vector<std::vector<std::string>> rows;
  for (const char* k : {"gradflow_version", "gradflow_commit", "status", "scenario_file", "scenario_hash", "seed",
                        "threads", "gemm", "start_time", "end_time", "wall_seconds", "cells_total", "cells_done",
                        "cells_failed", "overrides", "shard", "mpi", "merged_from"})
    if (run.contains(k) && !run[k].is_null()) rows.push_back({k, json_text(run[k])});
  return section("run", "Run", html_table({"field", "value"}, rows));
}

const char* kStyle = R"(body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#f0f0f0}.note{color:#555;font-size:13px}
figure{margin:0.5em 0}nav a{margin-right:1em})";

}  // namespace

fs::path write_report(const fs::path& outdir) {
  const fs::path run_path = outdir / "run.json";
  std::ifstream in(run_path);
  if (!in) throw InputError(run_path.string() + ": cannot be read (is " + outdir.string() + " a gradflow run?)");
  nlohmann::json run;
  try {
    run = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(run_path.string() + ": not valid JSON (" + e.what() + ")");
  }
  const auto cells = read_table(outdir / "cells.csv");
  if (!cells || !cells->col("cell")) throw InputError((outdir / "cells.csv").string() + ": missing or without a header");
  const Axes axes = sweep_axes(run, *cells);
  const auto chosen = chosen_rows(*cells);
  // Only the drawn cells' rows of series.csv are kept: it may be larger than memory.
  std::set<std::string> drawn;
  for (const std::size_t row : chosen) drawn.insert(cells->at(row, 0));
  const auto series = read_table(outdir / "series.csv", [&](const auto& header, const auto& row) {
    const auto c = std::find(header.begin(), header.end(), "cell") - header.begin();
    const auto r = std::find(header.begin(), header.end(), "replicate") - header.begin();
    return std::size_t(c) < row.size() && std::size_t(r) < row.size() && row[r] == "0" && drawn.count(row[c]) > 0;
  });

  std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>gradflow report: " +
                     html_escape(run.value("scenario_name", std::string())) + "</title>\n<style>" + kStyle +
                     "</style></head><body>\n";
  html += "<h1>gradflow report: " + html_escape(run.value("title", run.value("scenario_name", std::string()))) +
          "</h1>\n<p class=\"note\">" + html_escape(run.value("status", std::string())) + ", " +
          html_escape(json_text(run.value("cells_done", nlohmann::json(0)))) + " of " +
          html_escape(json_text(run.value("cells_total", nlohmann::json(0)))) + " cells, gradflow " +
          html_escape(run.value("gradflow_version", std::string())) + " (commit " +
          html_escape(run.value("gradflow_commit", std::string("unknown"))) + ")</p>\n";
  html += "<nav><a href=\"#scenario\">Scenario</a><a href=\"#heatmaps\">Heatmaps</a><a href=\"#series\">Gradient "
          "norms</a><a href=\"#spectrum\">Spectrum</a><a href=\"#verdicts\">Verdicts</a><a href=\"#summary\">Summary"
          "</a><a href=\"#run\">Run</a></nav>\n";
  html += scenario_section(run);
  html += heatmap_section(*cells, axes);
  html += series_section(*cells, series, axes, chosen);
  html += spectrum_section(run, *cells, chosen);
  html += verdict_section(run);
  html += summary_section(outdir, axes);
  html += metadata_section(run);
  html += "</body></html>\n";
  const fs::path out = outdir / "report.html";
  detail::write_atomically(out, html);
  return out;
}

}  // namespace gradflow
