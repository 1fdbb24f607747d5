#include "gradflow/run/verdict.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "csv_util.hpp"

namespace gradflow {

using detail::split_fields;
using detail::value_json;

namespace {

constexpr std::array<Regime, 3> kRegimes{Regime::vanishing, Regime::critical, Regime::exploding};

std::optional<double> parse_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  try {
    std::size_t used = 0;
    const double x = std::stod(s, &used);
    if (used != s.size() || std::isnan(x)) return std::nullopt;
    return x;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

struct Tally {
  std::int64_t compared = 0, agree = 0;
};

nlohmann::json tally_json(const Tally& t) {
  return {{"compared", t.compared},
          {"agree", t.agree},
          {"agreement", t.compared > 0 ? nlohmann::json(double(t.agree) / double(t.compared)) : nlohmann::json()}};
}

}  // namespace

const std::vector<PredictorSpec>& verdict_predictors() {
  static const std::vector<PredictorSpec> specs{
      {"predictor", "predictor", false, "rho * E|f'| (textbook)"},
      {"predictor_cell", "predictor_cell", false, "rho of the cell's mean J"},
      {"predictor_rms", "predictor_rms", false, "rho * sqrt(E f'^2)"},
      {"predictor_rms_cell", "predictor_rms_cell", false, "RMS factor of the cell's J"},
      {"mf_growth", "mf_growth", false, "mean-field sqrt(chi)"},
      {"bound", "bound", false, "||W||_2 * sup|f'|"},
      {"bound_cell", "bound_cell", false, "bound on the cell's ||J||_2"},
      {"lyapunov_max", "lyapunov_max", true, "exp(top Lyapunov exponent)"},
  };
  return specs;
}

nlohmann::json compute_verdicts(const Scenario& sc, const std::filesystem::path& cells_csv, std::size_t max_listed) {
  std::ifstream in(cells_csv, std::ios::binary);
  if (!in) throw std::runtime_error(cells_csv.string() + ": cannot be read");
  return compute_verdicts(sc, in, cells_csv.string(), max_listed);
}

nlohmann::json compute_verdicts(const Scenario& sc, std::istream& in, const std::string& source,
                                std::size_t max_listed) {
  const std::filesystem::path cells_csv = source;
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error(cells_csv.string() + ": empty (no header)");
  const auto header = split_fields(line);
  auto column = [&](const std::string& name) { return detail::column_index(header, name); };
  const auto c_cell = column("cell"), c_rep = column("replicate"), c_regime = column("regime");
  if (!c_cell || !c_rep || !c_regime)
    throw std::runtime_error(cells_csv.string() + ": needs the columns cell, replicate and regime");
  const auto c_growth = column("growth_rate");
  const auto c_lyap_status = column("lyapunov_status");
  const auto c_tau = column("tau");  // the cell's time constant: regimes are judged per tau (metrics.hpp)

  struct Judged {
    const PredictorSpec* spec = nullptr;
    std::size_t col = 0;
    std::int64_t unavailable = 0;
    Tally total;
    std::array<std::array<std::int64_t, 3>, 3> confusion{};  // [predicted][measured]
    std::vector<std::vector<Tally>> by_axis;                  // [axis][value index]
    nlohmann::json disagreements = nlohmann::json::array();
    std::int64_t disagreements_total = 0;
  };
  std::vector<Judged> judged;
  for (const auto& spec : verdict_predictors()) {
    if (const auto c = column(spec.column)) {
      Judged j;
      j.spec = &spec;
      j.col = *c;
      for (const auto& a : sc.axes) j.by_axis.emplace_back(a.values.size());
      judged.push_back(std::move(j));
    }
  }
  const bool tolerance_swept = std::any_of(sc.axes.begin(), sc.axes.end(), [](const SweepAxis& a) {
    return a.key == "analysis.regime_tolerance";
  });

  std::int64_t rows = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto f = split_fields(line);
    if (f.size() < header.size()) continue;  // a line cut short by a kill
    std::int64_t cell = 0, rep = 0;
    try {
      cell = std::stoll(f[*c_cell]);
      rep = std::stoll(f[*c_rep]);
    } catch (const std::exception&) {
      continue;
    }
    if (cell < 0 || cell >= sc.cell_count()) continue;
    Regime measured;
    try {
      measured = parse_regime(f[*c_regime]);
    } catch (const std::invalid_argument&) {
      continue;
    }
    ++rows;
    const double tol =
        tolerance_swept ? sc.cell_config(cell).analysis.regime_tolerance : sc.base.analysis.regime_tolerance;
    const auto idx = sc.axis_indices(cell);
    const double tau = c_tau ? parse_number(f[*c_tau]).value_or(1.0) : 1.0;
    for (auto& j : judged) {
      std::optional<double> factor = parse_number(f[j.col]);
      if (factor && j.spec->log) factor = std::exp(*factor);
      if (!factor && j.spec->log && c_lyap_status && f[*c_lyap_status] == "annihilated") factor = 0.0;
      if (!factor) {
        ++j.unavailable;
        continue;
      }
      const Regime predicted = predicted_regime(*factor, tol, tau);
      const bool agree = predicted == measured;
      ++j.total.compared;
      j.total.agree += agree;
      ++j.confusion[static_cast<std::size_t>(predicted)][static_cast<std::size_t>(measured)];
      for (std::size_t a = 0; a < idx.size(); ++a) {
        ++j.by_axis[a][idx[a]].compared;
        j.by_axis[a][idx[a]].agree += agree;
      }
      if (!agree) {
        ++j.disagreements_total;
        if (j.disagreements.size() < max_listed) {
          nlohmann::json values = nlohmann::json::object();
          const auto cv = sc.cell_values(cell);
          for (std::size_t a = 0; a < sc.axes.size(); ++a) values[sc.axes[a].key] = value_json(cv[a]);
          const auto growth = c_growth ? parse_number(f[*c_growth]) : std::nullopt;
          j.disagreements.push_back({{"cell", cell},
                                     {"replicate", rep},
                                     {"values", values},
                                     {"predicted", to_string(predicted)},
                                     {"measured", to_string(measured)},
                                     {"factor", *factor},
                                     {"growth_rate", growth ? nlohmann::json(*growth) : nlohmann::json()}});
        }
      }
    }
  }

  nlohmann::json out;
  out["rows"] = rows;
  out["rule"] = "each predictor's per-step factor is classified like the measured growth_rate: vanishing < 1 - tol "
                "<= critical <= 1 + tol < exploding, tol = analysis.regime_tolerance of the cell; lyapunov_max as "
                "exp(lyapunov_max); per time constant tau (cells.csv tau: 1 / leak for leaky cells, else 1): factor^tau";
  nlohmann::json preds = nlohmann::json::array();
  for (const auto& j : judged) {
    nlohmann::json p = tally_json(j.total);
    p["name"] = j.spec->name;
    p["column"] = j.spec->column;
    p["formula"] = j.spec->formula;
    p["unavailable"] = j.unavailable;
    nlohmann::json confusion = nlohmann::json::object();
    for (Regime pr : kRegimes) {
      nlohmann::json row = nlohmann::json::object();
      for (Regime me : kRegimes)
        row[to_string(me)] = j.confusion[static_cast<std::size_t>(pr)][static_cast<std::size_t>(me)];
      confusion[to_string(pr)] = row;
    }
    p["confusion"] = confusion;
    nlohmann::json by_axis = nlohmann::json::object();
    for (std::size_t a = 0; a < sc.axes.size(); ++a) {
      nlohmann::json list = nlohmann::json::array();
      for (std::size_t v = 0; v < sc.axes[a].values.size(); ++v) {
        nlohmann::json e = tally_json(j.by_axis[a][v]);
        e["value"] = value_json(sc.axes[a].values[v]);
        list.push_back(e);
      }
      by_axis[sc.axes[a].key] = list;
    }
    p["by_axis"] = by_axis;
    p["disagreements"] = j.disagreements;
    p["disagreements_total"] = j.disagreements_total;
    p["disagreements_truncated"] = j.disagreements_total > static_cast<std::int64_t>(j.disagreements.size());
    preds.push_back(p);
  }
  out["predictors"] = preds;
  return out;
}

std::string format_verdicts(const nlohmann::json& v) {
  if (!v.is_object() || !v.contains("predictors") || v["predictors"].empty()) return "";
  std::ostringstream os;
  os << "verdicts: how often each predictor's regime equals the measured one (" << v.value("rows", 0)
     << " cell runs)\n";
  int name_width = 14;  // wider only for the cells' own predictors (predictor_rms_cell)
  for (const auto& p : v["predictors"]) name_width = std::max(name_width, int(p.value("name", "").size()));
  for (const auto& p : v["predictors"]) {
    const std::int64_t compared = p.value("compared", 0), agree = p.value("agree", 0);
    char head[200];
    std::snprintf(head, sizeof head, "  %-*s %-28s %6lld/%-6lld", name_width, p.value("name", "").c_str(),
                  p.value("formula", "").c_str(), (long long)agree, (long long)compared);
    os << head;
    if (compared > 0) {
      char pct[32];
      std::snprintf(pct, sizeof pct, " %5.1f%%", 100.0 * double(agree) / double(compared));
      os << pct;
    } else {
      os << "      -";
    }
    // The commonest disagreement: "says vanishing where exploding: 12".
    std::int64_t best = 0;
    std::string what;
    for (const auto& [pred, row] : p["confusion"].items())
      for (const auto& [meas, n] : row.items())
        if (pred != meas && n.get<std::int64_t>() > best) {
          best = n.get<std::int64_t>();
          what = "says " + pred + " where " + meas;
        }
    if (best > 0) os << "   most often " << what << " (" << best << ")";
    if (p.value("unavailable", 0) > 0) os << "   [" << p.value("unavailable", 0) << " without a value]";
    os << "\n";
  }
  return os.str();
}

}  // namespace gradflow
