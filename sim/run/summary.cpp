#include "gradflow/run/summary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>

#include "gradflow/run/output.hpp"
#include "gradflow/run/scenario.hpp"
#include "gradflow/run/verdict.hpp"
#include "csv_util.hpp"
#include "durable_file.hpp"

namespace gradflow {

namespace fs = std::filesystem;
using detail::split_fields;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  try {
    std::size_t used = 0;
    const double x = std::stod(s, &used);
    if (used != s.size() || !std::isfinite(x)) return std::nullopt;
    return x;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

/// A quantity read from cells.csv: its column, whether the column holds a log factor, and its _se column.
struct Quantity {
  std::string name;
  std::size_t col = 0;
  bool log = false;
  std::optional<std::size_t> se_col;
};

/// First crossing of y = 1 along x (x ascending): linear interpolation between the neighbours where y - 1
/// changes sign, or the grid value where y == 1. Points without a value (NaN) are skipped.
struct CurveCrossing {
  std::optional<double> at;
  int count = 0;        // sign changes of y - 1
  int direction = 0;    // +1: from below to above 1 at the first crossing, -1: from above to below
  bool below = false, above = false;  // some point below / above 1
};

CurveCrossing cross_one(const std::vector<double>& x, const std::vector<double>& y) {
  CurveCrossing c;
  std::optional<std::size_t> prev;  // the last point off 1
  std::optional<std::size_t> on;    // the first point exactly at 1 since then
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(y[i])) continue;
    const double d = y[i] - 1.0;
    if (d == 0) {
      if (!on) on = i;
      continue;
    }
    if (d < 0) c.below = true;
    if (d > 0) c.above = true;
    if (prev) {
      const double dp = y[*prev] - 1.0;
      if ((dp < 0) != (d < 0)) {
        ++c.count;
        if (!c.at) {
          c.at = on ? x[*on] : x[*prev] + (x[i] - x[*prev]) * (-dp) / (d - dp);
          c.direction = dp < 0 ? 1 : -1;
        }
      }
    }
    prev = i;
    on.reset();
  }
  if (!c.at)  // a curve that touches 1 without changing sign, or ends on it
    for (std::size_t i = 0; i < x.size(); ++i)
      if (y[i] == 1.0) {
        c.at = x[i];
        break;
      }
  return c;
}

std::string fmt(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

/// The empirical quantile of sorted values (linear between order statistics).
double quantile(const std::vector<double>& sorted, double p) {
  const double pos = p * static_cast<double>(sorted.size() - 1);
  const auto i = static_cast<std::size_t>(std::floor(pos));
  if (i + 1 >= sorted.size()) return sorted.back();
  const double a = sorted[i], b = sorted[i + 1];
  if (std::isinf(a) || std::isinf(b)) return pos - double(i) < 0.5 ? a : b;
  return a + (pos - double(i)) * (b - a);
}

}  // namespace

Summary compute_summary(const fs::path& cells_csv, const SummaryOptions& options) {
  const auto lines = detail::read_complete_lines(cells_csv);
  if (lines.empty()) throw std::runtime_error(cells_csv.string() + ": cannot be read or has no header");
  return summary_of_lines(lines, cells_csv, options);
}

Summary compute_summary_text(const std::string& cells_csv_text, const SummaryOptions& options) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t end; (end = cells_csv_text.find('\n', start)) != std::string::npos; start = end + 1)
    lines.push_back(cells_csv_text.substr(start, end - start));
  if (lines.empty()) throw std::runtime_error("cells.csv text: empty or without a header");
  return summary_of_lines(lines, "cells.csv", options);
}

Summary summary_of_lines(const std::vector<std::string>& lines, const fs::path& cells_csv,
                         const SummaryOptions& options) {
  const auto header = split_fields(lines[0]);
  auto column = [&](const std::string& n) { return detail::column_index(header, n); };
  const auto c_rep = column("replicate"), c_rho = column("rho"), c_regime = column("regime");
  if (!c_rep || !c_rho || *c_rho < *c_rep)
    throw std::runtime_error(cells_csv.string() + ": needs the columns cell, replicate, ..., rho of cells.csv");

  std::vector<std::vector<std::string>> rows;
  for (std::size_t l = 1; l < lines.size(); ++l) {
    auto f = split_fields(lines[l]);
    if (f.size() == header.size()) rows.push_back(std::move(f));
  }

  // Axes: the columns between replicate and rho.
  std::vector<std::size_t> axis_cols;
  for (std::size_t c = *c_rep + 1; c < *c_rho; ++c) axis_cols.push_back(c);
  auto numeric_axis = [&](std::size_t c) {
    std::vector<double> distinct;
    for (const auto& r : rows) {
      const auto x = number(r[c]);
      if (!x) return false;
      if (std::find(distinct.begin(), distinct.end(), *x) == distinct.end()) distinct.push_back(*x);
    }
    return distinct.size() >= 2;
  };
  Summary s;
  std::optional<std::size_t> along;
  if (!options.along.empty()) {
    const auto c = column(options.along);
    if (!c || *c <= *c_rep || *c >= *c_rho) {
      std::string names;
      for (auto a : axis_cols) names += (names.empty() ? "" : ", ") + header[a];
      throw InputError(cells_csv.string() + ": --along " + options.along + ": not a sweep axis of this run (axes: " +
                       (names.empty() ? std::string("none") : names) + ")");
    }
    if (!numeric_axis(*c))
      throw InputError(cells_csv.string() + ": --along " + options.along +
                       ": expected a numeric axis with at least two values");
    along = *c;
  } else {
    for (auto c : axis_cols)
      if (header[c] == "spectrum.radius" && numeric_axis(c)) along = c;
    for (std::size_t i = 0; i < axis_cols.size() && !along; ++i)
      if (numeric_axis(axis_cols[i])) along = axis_cols[i];
  }
  if (along) s.along = header[*along];
  for (auto c : axis_cols)
    if (!along || c != *along) s.row_axes.push_back(header[c]);

  // Quantities: measured first, then the predictors judged by the verdicts, then any predictor_* column.
  std::vector<Quantity> quantities;
  auto add = [&](const std::string& name, const std::string& col, bool log) {
    const auto c = column(col);
    if (!c) return;
    for (const auto& q : quantities)
      if (q.col == *c) return;
    quantities.push_back({name, *c, log, column(col + "_se")});
  };
  add("growth_rate", "growth_rate", false);
  for (const auto& p : verdict_predictors()) add(p.log ? "exp(" + p.column + ")" : p.name, p.column, p.log);
  for (const auto& h : header)
    if (h.rfind("predictor_", 0) == 0 && h.size() > 3 && h.compare(h.size() - 3, 3, "_se") != 0) add(h, h, false);

  // Group: row key (other axes' values) -> x -> replicate -> row index.
  std::vector<std::string> row_order;
  std::map<std::string, std::vector<std::string>> row_values;
  std::map<std::string, std::map<double, std::vector<std::size_t>>> groups;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::vector<std::string> key_parts;
    for (auto c : axis_cols)
      if (!along || c != *along) key_parts.push_back(rows[i][c]);
    const std::string key = detail::join_fields(key_parts);
    if (!row_values.count(key)) {
      row_order.push_back(key);
      row_values[key] = key_parts;
    }
    const double x = along ? *number(rows[i][*along]) : 0.0;
    groups[key][x].push_back(i);
  }

  auto value = [&](const Quantity& q, std::size_t r) {
    auto v = number(rows[r][q.col]);
    if (v && q.log) v = std::exp(*v);
    return v;
  };

  // A one-cell run: values with their uncertainty and the regime.
  if (axis_cols.empty() && !rows.empty()) {
    for (const auto& q : quantities) {
      std::vector<double> v;
      std::optional<double> se1;
      for (std::size_t r = 0; r < rows.size(); ++r)
        if (const auto x = value(q, r)) {
          v.push_back(*x);
          if (q.se_col) se1 = number(rows[r][*q.se_col]);
        }
      if (v.empty()) continue;
      CellValue cv{q.name, 0.0, std::nullopt, static_cast<std::int64_t>(v.size())};
      for (double x : v) cv.mean += x / double(v.size());
      if (v.size() >= 2) {
        double ss = 0.0;
        for (double x : v) ss += (x - cv.mean) * (x - cv.mean);
        cv.se = std::sqrt(ss / double(v.size() - 1) / double(v.size()));
      } else {
        cv.se = se1;
      }
      s.values.push_back(cv);
    }
    if (c_regime) {
      std::map<std::string, int> counts;
      for (const auto& r : rows) ++counts[r[*c_regime]];
      std::vector<std::pair<int, std::string>> sorted;
      for (const auto& [k, n] : counts) sorted.push_back({-n, k});
      std::sort(sorted.begin(), sorted.end());
      for (const auto& [n, k] : sorted)
        s.regime += (s.regime.empty() ? "" : ", ") + k +
                    (counts.size() > 1 ? " (" + std::to_string(-n) + " of " + std::to_string(rows.size()) + ")" : "");
    }
  }

  std::mt19937_64 rng(options.seed);
  const double tail = (1.0 - options.level) / 2.0;
  for (const auto& key : row_order) {
    const auto& grid = groups[key];
    std::vector<double> xs;
    for (const auto& [x, _] : grid) xs.push_back(x);
    for (const auto& q : quantities) {
      Crossing c;
      c.row = row_values[key];
      c.quantity = q.name;
      if (!along) {
        c.reason = "no numeric sweep axis to cross along";
        s.crossings.push_back(c);
        continue;
      }
      // values[i][j]: grid point i, its j-th replicate with a value; se[i][j] its _se when known.
      std::vector<std::vector<double>> values(xs.size()), ses(xs.size());
      std::int64_t fewest = std::numeric_limits<std::int64_t>::max();
      for (std::size_t i = 0; i < xs.size(); ++i) {
        for (auto r : grid.at(xs[i]))
          if (const auto v = value(q, r)) {
            values[i].push_back(*v);
            const auto se = q.se_col ? number(rows[r][*q.se_col]) : std::nullopt;
            ses[i].push_back(se ? *se : std::nan(""));
          }
        fewest = std::min<std::int64_t>(fewest, static_cast<std::int64_t>(values[i].size()));
      }
      c.replicates = fewest;
      std::vector<double> mean(xs.size(), std::nan(""));
      std::size_t with_value = 0;
      for (std::size_t i = 0; i < xs.size(); ++i) {
        if (values[i].empty()) continue;
        ++with_value;
        double m = 0.0;
        for (double v : values[i]) m += v;
        mean[i] = m / double(values[i].size());
      }
      if (with_value < 2) {
        c.reason = "fewer than two grid values with a value";
        s.crossings.push_back(c);
        continue;
      }
      const CurveCrossing mc = cross_one(xs, mean);
      c.crossings = mc.count;
      if (!mc.at) {
        double lo = kInf, hi = -kInf, at_lo = 0, at_hi = 0;
        for (std::size_t i = 0; i < xs.size(); ++i) {
          if (std::isnan(mean[i])) continue;
          if (mean[i] < lo) lo = mean[i], at_lo = xs[i];
          if (mean[i] > hi) hi = mean[i], at_hi = xs[i];
        }
        c.reason = mc.above ? "stays above 1 (smallest " + fmt(lo) + " at " + s.along + " = " + fmt(at_lo) + ")"
                            : "stays below 1 (largest " + fmt(hi) + " at " + s.along + " = " + fmt(at_hi) + ")";
        s.crossings.push_back(c);
        continue;
      }
      c.critical = mc.at;
      if (mc.count > 1) c.reason = std::to_string(mc.count) + " crossings: the first is given";

      // The interval: resample the replicates (or, with one, draw from the fit's standard error).
      bool have_se = fewest == 1;
      for (std::size_t i = 0; i < xs.size() && have_se; ++i)
        for (double se : ses[i]) have_se = have_se && !std::isnan(se);
      if (fewest < 2 && !have_se) {
        c.reason += std::string(c.reason.empty() ? "" : "; ") + "one replicate: no interval";
        s.crossings.push_back(c);
        continue;
      }
      c.interval = fewest >= 2 ? "bootstrap" : "fit";
      std::vector<double> found;
      found.reserve(static_cast<std::size_t>(options.resamples));
      std::vector<double> curve(xs.size());
      std::normal_distribution<double> normal(0.0, 1.0);
      // A replicate is one draw of the network across the axis (a radius sweep rescales one W per
      // replicate): resample whole replicates, not points.
      std::vector<std::int64_t> reps;
      for (std::size_t i = 0; i < xs.size(); ++i)
        for (auto r : grid.at(xs[i])) {
          const auto id = std::stoll(rows[r][*c_rep]);
          if (std::find(reps.begin(), reps.end(), id) == reps.end()) reps.push_back(id);
        }
      std::sort(reps.begin(), reps.end());
      // byrep[i][k]: the value of replicate reps[k] at grid point i (NaN when it has none).
      std::vector<std::vector<double>> byrep(xs.size(), std::vector<double>(reps.size(), std::nan("")));
      for (std::size_t i = 0; i < xs.size(); ++i)
        for (auto r : grid.at(xs[i])) {
          const auto k = std::lower_bound(reps.begin(), reps.end(), std::stoll(rows[r][*c_rep])) - reps.begin();
          if (const auto v = value(q, r)) byrep[i][static_cast<std::size_t>(k)] = *v;
        }
      std::uniform_int_distribution<std::size_t> pick(0, reps.size() - 1);
      std::vector<std::size_t> drawn(reps.size());
      for (std::int64_t b = 0; b < options.resamples; ++b) {
        for (auto& d : drawn) d = pick(rng);
        for (std::size_t i = 0; i < xs.size(); ++i) {
          double m = 0.0;
          int n = 0;
          if (fewest >= 2) {
            for (auto d : drawn)
              if (!std::isnan(byrep[i][d])) m += byrep[i][d], ++n;
          } else if (!values[i].empty()) {
            m = values[i][0] + ses[i][0] * normal(rng);
            n = 1;
          }
          curve[i] = n > 0 ? m / n : std::nan("");
        }
        const CurveCrossing bc = cross_one(xs, curve);
        if (bc.at) {
          found.push_back(*bc.at);
        } else {
          // No crossing in the grid: it lies past the end this curve stays on the wrong side of.
          const bool all_below = bc.below && !bc.above;
          found.push_back((all_below == (mc.direction > 0)) ? kInf : -kInf);
        }
      }
      std::sort(found.begin(), found.end());
      const double lo = quantile(found, tail), hi = quantile(found, 1.0 - tail);
      if (std::isfinite(lo)) c.lo = lo;
      if (std::isfinite(hi)) c.hi = hi;
      if (!c.lo || !c.hi) {
        const auto outside = std::count_if(found.begin(), found.end(), [](double x) { return std::isinf(x); });
        c.reason += std::string(c.reason.empty() ? "" : "; ") + "interval reaches past the grid (" +
                    std::to_string(outside) + " of " + std::to_string(found.size()) + " resamples do not cross)";
      }
      s.crossings.push_back(c);
    }
  }
  return s;
}

std::string summary_csv(const Summary& s) {
  std::vector<std::string> head = s.row_axes;
  for (const char* c : {"along", "quantity", "critical", "critical_lo", "critical_hi", "replicates", "crossings",
                        "interval", "reason"})
    head.push_back(c);
  std::string text = detail::join_fields(head) + "\n";
  auto opt = [](const std::optional<double>& x) { return x ? csv_number(*x) : std::string(); };
  for (const auto& c : s.crossings) {
    std::vector<std::string> f = c.row;
    std::string reason = c.reason;
    std::replace(reason.begin(), reason.end(), ',', ';');  // no quoted fields in gradflow's CSVs
    for (const std::string& v : {s.along, c.quantity, opt(c.critical), opt(c.lo), opt(c.hi),
                                 std::to_string(c.replicates), std::to_string(c.crossings), c.interval, reason})
      f.push_back(v);
    text += detail::join_fields(f) + "\n";
  }
  return text;
}

nlohmann::json summary_json(const Summary& s) {
  auto opt = [](const std::optional<double>& x) { return x ? nlohmann::json(*x) : nlohmann::json(); };
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& c : s.crossings) {
    nlohmann::json values = nlohmann::json::object();
    for (std::size_t i = 0; i < s.row_axes.size() && i < c.row.size(); ++i) values[s.row_axes[i]] = c.row[i];
    rows.push_back({{"values", values},         {"quantity", c.quantity},   {"critical", opt(c.critical)},
                    {"critical_lo", opt(c.lo)}, {"critical_hi", opt(c.hi)}, {"replicates", c.replicates},
                    {"crossings", c.crossings}, {"interval", c.interval},   {"reason", c.reason}});
  }
  nlohmann::json j = {{"along", s.along.empty() ? nlohmann::json() : nlohmann::json(s.along)},
                      {"level", 0.95},
                      {"crossings", rows}};
  if (!s.values.empty()) {
    nlohmann::json v = nlohmann::json::array();
    for (const auto& cv : s.values)
      v.push_back({{"quantity", cv.quantity}, {"mean", cv.mean}, {"se", opt(cv.se)}, {"count", cv.count}});
    j["values"] = v;
    j["regime"] = s.regime;
  }
  if (!s.verdicts.is_null()) j["verdicts"] = s.verdicts;
  return j;
}

std::string format_summary(const Summary& s) {
  std::ostringstream os;
  if (!s.values.empty()) {
    os << "summary (one cell):\n";
    for (const auto& v : s.values) {
      char line[200];
      std::snprintf(line, sizeof line, "  %-20s %.6g", v.quantity.c_str(), v.mean);
      os << line;
      if (v.se) {
        std::snprintf(line, sizeof line, " +- %.2g", *v.se);
        os << line;
      }
      if (v.quantity == "growth_rate") os << "   regime: " << s.regime;
      os << "\n";
    }
  } else if (!s.along.empty()) {
    os << "summary: where each factor crosses 1 along " << s.along << " (95 % interval over replicates)\n";
    std::string last_row = "\x01";
    for (const auto& c : s.crossings) {
      std::string row;
      for (std::size_t i = 0; i < s.row_axes.size(); ++i)
        row += (row.empty() ? "" : ", ") + s.row_axes[i] + "=" + c.row[i];
      if (row != last_row) {
        os << "  " << (row.empty() ? std::string("(all cells)") : row) << "\n";
        last_row = row;
      }
      char line[200];
      if (c.critical) {
        std::snprintf(line, sizeof line, "    %-20s %-9s", c.quantity.c_str(), fmt(*c.critical).c_str());
        os << line;
        if (c.lo && c.hi) os << " [" << fmt(*c.lo) << ", " << fmt(*c.hi) << "]";
        if (!c.reason.empty()) os << "  (" << c.reason << ")";
      } else {
        std::snprintf(line, sizeof line, "    %-20s -          %s", c.quantity.c_str(), c.reason.c_str());
        os << line;
      }
      os << "\n";
    }
  } else {
    os << "summary: no numeric sweep axis to cross along\n";
  }
  os << format_verdicts(s.verdicts);
  return os.str();
}

Summary write_summary(const fs::path& outdir, const SummaryOptions& options, const nlohmann::json& verdicts) {
  Summary s = compute_summary(outdir / "cells.csv", options);
  s.verdicts = verdicts;
  std::ifstream in(outdir / "run.json");
  if (verdicts.is_null() && in) {
    try {
      const auto run = nlohmann::json::parse(in);
      if (run.contains("verdicts")) s.verdicts = run["verdicts"];
    } catch (const std::exception&) {
      // run.json being rewritten or unreadable: the summary goes without its verdict table
    }
  }
  detail::write_atomically(outdir / "summary.csv", summary_csv(s));
  return s;
}

}  // namespace gradflow
