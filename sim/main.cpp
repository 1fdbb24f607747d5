// gradflow command line: parse -> validate -> run -> report. No maths here.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "gradflow/activation.hpp"
#include "gradflow/cell.hpp"
#include "gradflow/output.hpp"
#include "gradflow/scenario.hpp"
#include "gradflow/sparse.hpp"
#include "gradflow/spectrum.hpp"
#include "gradflow/sweep.hpp"

namespace {

using namespace gradflow;

constexpr int kExitOk = 0;
constexpr int kExitInternal = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitInterrupted = 130;

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop.store(true); }

struct RunArgs {
  std::string scenario;
  std::string outdir;
  std::vector<std::string> set;
  int threads = 0;
  bool resume = false;
  bool force = false;
  bool quiet = false;
};

int cmd_run(const RunArgs& a) {
  const Scenario sc = load_scenario(a.scenario, a.set);
  const std::string outdir = a.outdir.empty() ? "out/" + sc.name : a.outdir;
  const int threads = a.threads > 0 ? a.threads : omp_get_num_procs();
  RunWriter writer(sc, outdir, OutputOptions{a.resume, a.force}, threads);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  SweepOptions opt;
  opt.threads = threads;
  opt.stop = &g_stop;
  opt.progress = !a.quiet && isatty(STDERR_FILENO);
  const SweepSummary s = run_sweep(sc, writer, opt);
  const bool complete = writer.done_count() == writer.total();
  writer.finish(complete ? "complete" : "interrupted");

  if (!a.quiet) {
    std::fprintf(stderr, "%s: %lld of %lld cells done (%lld now, %lld resumed) in %.2f s -> %s\n",
                 sc.name.c_str(), (long long)writer.done_count(), (long long)writer.total(), (long long)s.ran,
                 (long long)s.skipped, s.seconds, writer.dir().string().c_str());
  }
  if (s.failed > 0) {
    std::fprintf(stderr, "gradflow: %lld cells failed; see run.json\n", (long long)s.failed);
    return kExitInternal;
  }
  if (!complete) {
    std::fprintf(stderr, "gradflow: interrupted; finished cells are kept, complete with --resume\n");
    return kExitInterrupted;
  }
  return kExitOk;
}

/// Largest N for which `gradflow spectrum -o` computes every eigenvalue (dense QR iteration, O(N^3) time and
/// 8 N^2 bytes: ~1 min and 200 MB at N = 5000).
constexpr Eigen::Index kMaxDenseEigenvalues = 5000;

int cmd_spectrum(const std::string& scenario, const std::vector<std::string>& set, const std::string& out,
                 bool json) {
  const Scenario sc = load_scenario(scenario, set);
  const Config cfg = sc.cell_config(0);
  if (!out.empty() && cfg.network.units > kMaxDenseEigenvalues)
    throw InputError("-o " + out + ": writing every eigenvalue needs a dense O(N^3) solve; network.units = " +
                     std::to_string(cfg.network.units) + " > " + std::to_string(kMaxDenseEigenvalues) +
                     " (run without -o for rho and ||W||_2)");
  SpectralInfo built;
  const RecurrentMatrix w = build_recurrent_matrix(cfg, 0, 0, &built);
  // Measured here, not taken from the construction, except for large sparse W: there the construction's
  // solves (rho before the rescale, ||W||_2 after it) are the same computations and take minutes at N = 1e5.
  const bool reuse = w.is_sparse() && w.rows() > kSparseDenseFallbackMax;
  SpectralInfo info = reuse ? built : analyse_spectrum(w);
  if (reuse) info.message += (info.message.empty() ? "" : "; ") + std::string("rho and ||W||_2 from the construction");
  info.bulk_radius = built.bulk_radius;
  info.outlier = built.outlier;
  const double target = cfg.spectrum.kind == SpectrumKind::chain ? 0.0 : cfg.spectrum.radius.value_or(
                                                                            cfg.spectrum.kind == SpectrumKind::file
                                                                                ? info.rho
                                                                                : 1.0);
  nlohmann::json j = {{"units", w.rows()},
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
    std::ofstream f(out);
    if (!f) throw InputError(out + ": cannot be written");
    f << "re,im\n";
    f.precision(17);
    for (Eigen::Index i = 0; i < ev.size(); ++i) f << ev[i].real() << "," << ev[i].imag() << "\n";
    // Sidecar for plots (tools/plot_spectrum.py): what the eigenvalues should look like.
    const std::string sidecar = out + ".json";
    std::ofstream js(sidecar);
    if (!js) throw InputError(sidecar + ": cannot be written");
    j["eigenvalues"] = out;
    j["title"] = cfg.title;
    js << j.dump(2) << "\n";
    if (!json) std::printf("eigenvalues    %lld written to %s (summary in %s)\n", (long long)ev.size(), out.c_str(),
                           sidecar.c_str());
  }
  return kExitOk;
}

int cmd_activations(double mu, double sigma, double alpha, double beta, bool alpha_given, bool json) {
  if (!(sigma >= 0) || !std::isfinite(mu) || !std::isfinite(sigma))
    throw InputError("--sigma = " + std::to_string(sigma) + ": must be >= 0 (and --mu finite)");
  nlohmann::json arr = nlohmann::json::array();
  if (!json)
    std::printf("z ~ N(%g, %g^2)\n%-11s %13s %13s %13s %13s %13s %13s\n", mu, sigma, "name", "E[f]", "E[f^2]",
                "E|f'|", "E[f'^2]", "P(f=0)", "sup|f'|");
  for (ActivationKind k : all_activations()) {
    const Activation f(k, alpha_given ? alpha : default_alpha(k), beta);
    const GaussianMoments m = gaussian_moments(f, mu, sigma);
    if (json) {
      arr.push_back({{"name", to_string(k)}, {"mean", m.mean}, {"second_moment", m.second_moment},
                     {"mean_abs_deriv", m.mean_abs_deriv}, {"mean_sq_deriv", m.mean_sq_deriv},
                     {"zero_prob", m.zero_prob}, {"sup_abs_deriv", m.sup_abs_deriv}, {"alpha", f.alpha},
                     {"beta", f.beta}});
    } else {
      std::printf("%-11s %13.10f %13.10f %13.10f %13.10f %13.10f %13.10f\n", to_string(k).c_str(), m.mean,
                  m.second_moment, m.mean_abs_deriv, m.mean_sq_deriv, m.zero_prob, m.sup_abs_deriv);
    }
  }
  if (json) std::cout << arr.dump(2) << "\n";
  return kExitOk;
}

/// The scenario key table (Markdown), generated from the key registry: README's table is checked against it.
int cmd_keys() {
  std::printf("| key | type | default | meaning |\n|---|---|---|---|\n");
  for (const auto& k : scenario_keys()) {
    std::string type = to_string(k.type);
    type = type.substr(type.find(' ') + 1);
    std::string doc;
    for (char c : k.doc) doc += c == '|' ? std::string("\\|") : std::string(1, c);
    std::printf("| `%s` | %s | `%s` | %s |\n", k.name.c_str(), type.c_str(), k.default_text().c_str(), doc.c_str());
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gradflow: gradient flow through time in vanilla RNNs with controlled recurrent spectra"};
  app.set_version_flag("--version", std::string("gradflow ") + GRADFLOW_VERSION);
  app.require_subcommand(1);

  RunArgs run;
  auto* run_cmd = app.add_subcommand("run", "Run a scenario (all cells of its sweep) and write cells.csv, "
                                            "series.csv and run.json");
  run_cmd->add_option("scenario", run.scenario, "Scenario file (TOML)")->required();
  run_cmd->add_option("-o,--out", run.outdir, "Output directory (default out/<scenario name>)");
  run_cmd->add_option("--set", run.set, "Override a scenario key before validation: key=value (repeatable)")
      ->allow_extra_args(false);
  run_cmd->add_option("--threads", run.threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  run_cmd->add_flag("--resume", run.resume, "Complete an interrupted run in OUTDIR, skipping finished cells");
  run_cmd->add_flag("--force", run.force, "Replace the results of a different run in OUTDIR");
  run_cmd->add_flag("--quiet", run.quiet, "No progress or summary on stderr");

  std::string spec_scenario, spec_out;
  std::vector<std::string> spec_set;
  bool spec_json = false;
  auto* spec_cmd = app.add_subcommand("spectrum", "rho(W), ||W||_2 and the eigenvalues of the W a scenario "
                                                  "builds (its first cell)");
  spec_cmd->add_option("scenario", spec_scenario, "Scenario file (TOML)")->required();
  spec_cmd->add_option("--set", spec_set, "Override a scenario key: key=value (repeatable)")->allow_extra_args(false);
  spec_cmd->add_option("-o,--out", spec_out, "Write all eigenvalues as CSV (re,im) to this file, and a JSON summary "
                                             "(radius, rho, ||W||_2, ...) to FILE.json");
  spec_cmd->add_flag("--json", spec_json, "Print JSON instead of text");

  double mu = 0.0, sigma = 1.0, alpha = 0.01, beta = 1.0;
  bool act_json = false;
  auto* act_cmd = app.add_subcommand("activations", "Gaussian moments of every activation for z ~ N(mu, sigma^2)");
  act_cmd->add_option("--mu", mu, "Mean of z (default 0)");
  act_cmd->add_option("--sigma", sigma, "Std of z (default 1, >= 0)");
  auto* alpha_opt = act_cmd->add_option("--alpha", alpha, "alpha of leaky_relu / elu (default 0.01 / 1)");
  act_cmd->add_option("--beta", beta, "beta of softplus / swish (default 1)")->check(CLI::PositiveNumber);
  act_cmd->add_flag("--json", act_json, "Print a JSON array");

  auto* keys_cmd = app.add_subcommand("keys", "Print every scenario key with its type, default and meaning "
                                              "(Markdown)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "gradflow: %s\nRun with --help for usage.\n", e.what());
    return kExitBadInput;
  }

  try {
    if (*run_cmd) return cmd_run(run);
    if (*spec_cmd) return cmd_spectrum(spec_scenario, spec_set, spec_out, spec_json);
    if (*keys_cmd) return cmd_keys();
    if (*act_cmd) return cmd_activations(mu, sigma, alpha, beta, alpha_opt->count() > 0, act_json);
  } catch (const InputError& e) {
    std::fprintf(stderr, "gradflow: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "gradflow: invalid argument: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gradflow: internal error: %s\n", e.what());
    return kExitInternal;
  }
  return kExitInternal;
}
