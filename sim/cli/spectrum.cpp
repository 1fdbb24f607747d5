// gradflow spectrum: rho(W), ||W||_2 and the eigenvalues of the W a scenario builds.
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "gradflow/model/recurrent.hpp"
#include "gradflow/model/sparse.hpp"
#include "gradflow/model/spectrum.hpp"
#include "gradflow/run/output.hpp"
#include "gradflow/run/scenario.hpp"

namespace gradflow::cli {
namespace {

/// Largest N for which `gradflow spectrum -o` computes every eigenvalue (dense QR iteration, O(N^3) time and
/// 8 N^2 bytes: ~1 min and 200 MB at N = 5000).
constexpr Eigen::Index kMaxDenseEigenvalues = 5000;

int cmd_spectrum(const std::string& scenario, const std::vector<std::string>& set, const std::string& out,
                 bool json, std::int64_t cell, std::int64_t replicate) {
  const Scenario sc = load_scenario(scenario, set);
  if (cell < 0 || cell >= sc.cell_count())
    throw InputError("--cell " + std::to_string(cell) + ": expected 0 <= cell < " + std::to_string(sc.cell_count()) +
                     " (the cells of " + scenario + "'s sweep, numbered as in cells.csv)");
  if (replicate < 0 || replicate >= sc.replicates)
    throw InputError("--replicate " + std::to_string(replicate) + ": expected 0 <= replicate < " +
                     std::to_string(sc.replicates));
  const Config cfg = sc.cell_config(cell);
  if (!out.empty() && cfg.network.units > kMaxDenseEigenvalues)
    throw InputError("-o " + out + ": writing every eigenvalue needs a dense O(N^3) solve; network.units = " +
                     std::to_string(cfg.network.units) + " > " + std::to_string(kMaxDenseEigenvalues) +
                     " (run without -o for rho and ||W||_2)");
  // No output may overwrite an input: the scenario, or a file it read (FILE and FILE.json are written).
  if (!out.empty()) {
    std::vector<std::filesystem::path> inputs{scenario};
    for (const auto& f : sc.inputs) inputs.emplace_back(f.path);
    for (const std::string& written : {out, out + ".json"})
      for (const auto& in : inputs) {
        std::error_code ec;
        if (std::filesystem::exists(written, ec) && std::filesystem::equivalent(written, in, ec))
          throw InputError("-o " + out + ": would overwrite " + in.string() +
                           ", an input of this command; choose another file");
      }
  }
  SpectralInfo built;
  // The W that cell and replicate of the run build (its draw comes from the cell's radius family).
  const RecurrentMatrix w = build_recurrent_matrix(cfg, static_cast<std::uint64_t>(sc.recurrent_family(cell)),
                                                   static_cast<std::uint64_t>(replicate), &built);
  const SpectralInfo info = measured_spectrum(w, built);
  const double target = target_radius(cfg.spectrum, info.rho);
  nlohmann::json j = {{"cell", cell},
                      {"replicate", replicate},
                      {"units", w.rows()},
                      {"kind", to_string(cfg.spectrum.kind)},
                      {"storage", w.is_sparse() ? "sparse" : "dense"},
                      {"nonzeros", w.nonzeros()},
                      {"radius", target},
                      {"rho", info.rho},
                      {"spectral_norm", info.spectral_norm},
                      {"norm_over_rho", info.rho > 0 ? info.spectral_norm / info.rho : 0.0},
                      {"rho_status", to_string(info.rho_status)},
                      {"norm_status", to_string(info.norm_status)},
                      {"message", info.message}};
  if (info.bulk_radius) j["bulk_radius"] = *info.bulk_radius;
  if (info.outlier) j["outlier"] = *info.outlier;
  if (cfg.spectrum.kind == SpectrumKind::nonnormal) j["nonnormality"] = cfg.spectrum.nonnormality;
  if (json) {
    std::cout << j.dump(2) << "\n";
  } else {
    if (sc.cell_count() > 1 || sc.replicates > 1) {
      std::string values;
      const auto v = sc.cell_values(cell);
      for (std::size_t i = 0; i < sc.axes.size(); ++i)
        values += (values.empty() ? "" : ", ") + sc.axes[i].key + " = " + format_value(v[i]);
      std::printf("cell           %lld of %lld, replicate %lld%s%s\n", (long long)cell, (long long)sc.cell_count(),
                  (long long)replicate, values.empty() ? "" : ": ", values.c_str());
    }
    std::printf("kind           %s (N = %lld, %s, %.0f nonzeros)\n", to_string(cfg.spectrum.kind).c_str(),
                (long long)w.rows(), w.is_sparse() ? "sparse" : "dense", w.nonzeros());
    std::printf("rho(W)         %.12g  (%s)\n", info.rho, to_string(info.rho_status).c_str());
    std::printf("||W||_2        %.12g  (%s)\n", info.spectral_norm, to_string(info.norm_status).c_str());
    if (info.rho > 0) std::printf("||W||_2 / rho  %.12g\n", info.spectral_norm / info.rho);
    if (info.bulk_radius) std::printf("bulk radius    %.12g  (Rajan & Abbott prediction)\n", *info.bulk_radius);
    if (info.outlier) std::printf("outlier        %.12g  (mean part)\n", *info.outlier);
    if (!info.message.empty()) std::printf("note           %s\n", info.message.c_str());
  }
  if (!out.empty()) {
    const Eigen::VectorXcd ev = eigenvalues(w.to_dense());
    std::ostringstream csv;
    csv << "re,im\n";
    csv.precision(17);
    for (Eigen::Index i = 0; i < ev.size(); ++i) csv << ev[i].real() << "," << ev[i].imag() << "\n";
    write_text_file(out, csv.str());
    // Sidecar for plots (tools/plot_spectrum.py): what the eigenvalues should look like. Written after the
    // eigenvalues, so that it never describes a file that failed.
    const std::string sidecar = out + ".json";
    j["eigenvalues"] = out;
    j["title"] = cfg.title;
    write_text_file(sidecar, j.dump(2) + "\n");
    if (!json) std::printf("eigenvalues    %lld written to %s (summary in %s)\n", (long long)ev.size(), out.c_str(),
                           sidecar.c_str());
  }
  return kExitOk;
}

}  // namespace

Command add_spectrum(CLI::App& app) {
  struct Args {
    std::string scenario, out;
    std::vector<std::string> set;
    bool json = false;
    std::int64_t cell = 0, replicate = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("spectrum", "rho(W), ||W||_2 and the eigenvalues of the W a scenario builds "
                                             "(cell 0 of a sweep, or --cell I)");
  cmd->add_option("scenario", a->scenario, "Scenario file (TOML)")->required();
  cmd->add_option("--set", a->set, "Override a scenario key: key=value (repeatable)")->allow_extra_args(false);
  cmd->add_option("-o,--out", a->out, "Write all eigenvalues as CSV (re,im) to this file, and a JSON summary "
                                      "(radius, rho, ||W||_2, ...) to FILE.json");
  cmd->add_flag("--json", a->json, "Print JSON instead of text");
  cmd->add_option("--cell", a->cell, "Which cell of the sweep (as numbered in cells.csv; default 0)");
  cmd->add_option("--replicate", a->replicate, "Which replicate (default 0)");
  return {cmd, [a] { return cmd_spectrum(a->scenario, a->set, a->out, a->json, a->cell, a->replicate); }};
}

}  // namespace gradflow::cli
