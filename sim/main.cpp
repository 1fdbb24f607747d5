// gradflow command line: parse -> validate -> run -> report. No maths here.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "gradflow/activation.hpp"
#include "gradflow/cell.hpp"
#include "gradflow/meanfield.hpp"
#include "gradflow/merge.hpp"
#include "gradflow/output.hpp"
#include "gradflow/scenario.hpp"
#include "gradflow/shard.hpp"
#include "gradflow/sparse.hpp"
#include "gradflow/spectrum.hpp"
#include "gradflow/sweep.hpp"
#include "gradflow/verdict.hpp"
#ifdef GRADFLOW_WITH_MPI
#include "gradflow/mpi_sweep.hpp"
#endif

namespace {

using namespace gradflow;

constexpr int kExitOk = 0;
constexpr int kExitInternal = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitWriteFailed = 74;  // EX_IOERR (sysexits.h): an output file could not be written
constexpr int kExitInterrupted = 130;

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) {
  g_signal.store(sig);
  g_stop.store(true);
}

struct RunArgs {
  std::string scenario;
  std::string outdir;
  std::vector<std::string> set;
  int threads = 0;
  bool resume = false;
  bool force = false;
  bool quiet = false;
  std::string shard;  // "i/n", "" for the whole run
};

/// The number of ranks an MPI launcher started (mpirun / mpiexec / srun set one of these), 0 when none did,
/// -1 when one did without saying how many.
int launcher_ranks() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  for (const char* var : {"PMI_RANK", "PMIX_RANK"})
    if (std::getenv(var)) return -1;
  return 0;
}

/// What to do about a write failure before --resume.
std::string fix_hint(const WriteError& e) {
  if (e.error() == ENOSPC || e.error() == EDQUOT) return "free space";
  if (e.error() == EFBIG) return "raise the file size limit (ulimit -f)";
  return "fix that";
}

/// "cannot write FILE: OS error", the start of every write-failure message (WriteError::what() is
/// "FILE: OS error").
std::string cannot_write(const WriteError& e) { return "cannot write " + std::string(e.what()); }

/// Preparing OUTDIR failed with a write error: nothing was run. The same text with and without MPI.
std::string prepare_failed(const WriteError& e) {
  return cannot_write(e) + "; no cell was run, the files already there are kept; " + fix_hint(e) +
         ", then run again with --resume";
}

/// A run stopped by a write failure: ONE message naming the file and the OS error, run.json updated when
/// it can be (else the last one, written atomically, stays), exit code 74.
int report_write_error(RunWriter& writer, const WriteError& error) {
  bool recorded = true;
  try {
    writer.finish("write_error");
  } catch (const WriteError&) {
    recorded = false;  // most likely the same full disk: run.json keeps its previous content
  }
  std::fprintf(
      stderr,
      "gradflow: %s; stopped with %lld of %lld cells done, their rows kept (%s); %s, then complete the run "
      "with --resume\n",
      cannot_write(error).c_str(), (long long)writer.done_count(), (long long)writer.total(),
      recorded ? "run.json says write_error" : "run.json keeps its previous content",
      fix_hint(error).c_str());
  return kExitWriteFailed;
}

/// The end of a run, on its only writer: summary line, run.json status, exit code.
int report_run(const Scenario& sc, RunWriter& writer, const SweepSummary& s, bool quiet, const std::string& where) {
  if (const auto error = writer.write_error()) return report_write_error(writer, *error);
  const bool complete = writer.done_count() == writer.total();
  try {
    writer.finish(complete ? "complete" : "interrupted");
  } catch (const WriteError& e) {  // sorting the finished files, heatmaps/ or run.json
    return report_write_error(writer, e);
  }
  if (!quiet) {
    std::fprintf(stderr, "%s%s: %lld of %lld cells done (%lld now, %lld resumed) in %.2f s%s -> %s\n",
                 sc.name.c_str(), writer.shard().whole() ? "" : (" shard " + writer.shard().str()).c_str(),
                 (long long)writer.done_count(), (long long)writer.total(), (long long)s.ran, (long long)s.skipped,
                 s.seconds, where.c_str(), writer.dir().string().c_str());
    if (complete && writer.shard().whole()) std::fputs(format_verdicts(writer.verdicts()).c_str(), stderr);
  }
  if (s.failed > 0) {
    std::fprintf(stderr, "gradflow: %lld cells failed; see run.json\n", (long long)s.failed);
    return kExitInternal;
  }
  if (!complete) {
    std::fprintf(stderr, "gradflow: interrupted%s; finished cells are kept, complete with --resume\n",
                 g_signal.load() == SIGTERM ? " (SIGTERM: under mpirun, Ctrl-C or a rank that died sends it)" : "");
    return kExitInterrupted;
  }
  return kExitOk;
}

int cmd_run(const RunArgs& a) {
  const Scenario sc = load_scenario(a.scenario, a.set);
  const Shard shard = a.shard.empty() ? Shard{} : parse_shard(a.shard);
  const std::string outdir = a.outdir.empty() ? "out/" + sc.name : a.outdir;
  const int threads = a.threads > 0 ? a.threads : omp_get_num_procs();
  std::optional<RunWriter> writer_slot;
  try {
    writer_slot.emplace(sc, outdir, OutputOptions{a.resume, a.force, shard}, threads);
  } catch (const WriteError& e) {  // preparing OUTDIR: run.json, the headers, or the rows kept for a resume
    std::fprintf(stderr, "gradflow: %s\n", prepare_failed(e).c_str());
    return kExitWriteFailed;
  }
  RunWriter& writer = *writer_slot;

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  SweepOptions opt;
  opt.threads = threads;
  opt.stop = &g_stop;
  opt.progress = !a.quiet && isatty(STDERR_FILENO);
  const SweepSummary s = run_sweep(sc, writer, opt);
  return report_run(sc, writer, s, a.quiet, "");
}

#ifdef GRADFLOW_WITH_MPI
/// `gradflow run` under mpirun: every rank loads the scenario; rank 0 alone prepares OUTDIR, dispatches and
/// writes; the others compute. Input errors are agreed on before any work, so every rank exits with 2.
int cmd_run_mpi(const RunArgs& a) {
  MpiSession mpi(nullptr, nullptr);
  const bool root = mpi.rank() == 0;
  std::optional<Scenario> sc;
  std::unique_ptr<RunWriter> writer;
  int code = kExitOk;
  std::string error;
  try {
    sc = load_scenario(a.scenario, a.set);
    const Shard shard = a.shard.empty() ? Shard{} : parse_shard(a.shard);
    const std::string outdir = a.outdir.empty() ? "out/" + sc->name : a.outdir;
    const int threads = a.threads > 0 ? a.threads : omp_get_num_procs();
    if (root) writer = std::make_unique<RunWriter>(*sc, outdir, OutputOptions{a.resume, a.force, shard}, threads);
  } catch (const InputError& e) {
    code = kExitBadInput;
    error = e.what();
  } catch (const WriteError& e) {
    code = kExitWriteFailed;
    error = prepare_failed(e);
  } catch (const std::invalid_argument& e) {
    code = kExitBadInput;
    error = std::string("invalid argument: ") + e.what();
  } catch (const std::exception& e) {
    code = kExitInternal;
    error = std::string("internal error: ") + e.what();
  }
  const auto start = mpi.agree_to_start(code, error, sc ? scenario_hash(*sc) : std::string());
  if (start.code != kExitOk) {
    if (!start.message.empty()) std::fprintf(stderr, "gradflow: %s\n", start.message.c_str());
    return start.code;
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    SweepOptions opt;
    opt.threads = a.threads;
    opt.stop = &g_stop;
    const SweepSummary s = run_sweep_mpi(*sc, writer.get(), opt, mpi);
    // A worker told to stop alone has handed back its cells: the run goes on without it, so its exit is
    // clean (a non-zero exit would make mpirun abort the job). When every rank is told, rank 0 exits 130.
    if (!root) return kExitOk;
    const std::string where = " on " + std::to_string(mpi.size()) + (mpi.size() == 1 ? " MPI rank" : " MPI ranks");
    return report_run(*sc, *writer, s, a.quiet, where);
  } catch (const std::exception& e) {
    mpi.abort(std::string("internal error: ") + e.what());
  }
}
#endif

int cmd_run_any(const RunArgs& a) {
  const int ranks = launcher_ranks();
#ifdef GRADFLOW_WITH_MPI
  if (ranks != 0) return cmd_run_mpi(a);
#else
  if (ranks > 1 || ranks < 0)
    throw InputError("started by an MPI launcher" +
                     (ranks > 1 ? " with " + std::to_string(ranks) + " ranks" : std::string()) +
                     ", but this gradflow was built without MPI (GRADFLOW_WITH_MPI=OFF): every rank would run the "
                     "whole sweep; rebuild with libopenmpi-dev installed, or use --shard i/n");
#endif
  return cmd_run(a);
}

int cmd_merge(const std::vector<std::string>& parts, const std::string& outdir, bool force, bool quiet) {
  if (launcher_ranks() > 1)
    throw InputError("gradflow merge runs as one process: start it without mpirun (every rank would write " +
                     outdir + ")");
  std::vector<std::filesystem::path> dirs(parts.begin(), parts.end());
  const MergeSummary m = merge_runs(dirs, outdir, MergeOptions{force});
  if (!quiet)
    std::fprintf(stderr, "merged %lld shards of %lld (%lld cells x replicates) -> %s\n", (long long)m.parts,
                 (long long)m.shard_count, (long long)m.rows, outdir.c_str());
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
  const SpectralInfo info = measured_spectrum(w, built);
  const double target = target_radius(cfg.spectrum, info.rho);
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

struct CriticalArgs {
  std::string activation;
  double input_std = 0.0, bias_mean = 0.0, bias_std = 0.0, alpha = 0.01, beta = 1.0;
  double init_std = 1.0;
  double lo = 1e-2, hi = 1e3;
  bool alpha_given = false, json = false;
};

/// Mean-field critical gain: chi(gain) = 1.
int cmd_critical(const CriticalArgs& a) {
  ActivationKind kind;
  try {
    kind = parse_activation(a.activation);
  } catch (const std::invalid_argument& e) {
    throw InputError("--activation " + a.activation + ": " + e.what());
  }
  auto finite_non_negative = [](const char* flag, double x) {
    if (!std::isfinite(x) || x < 0) throw InputError(std::string(flag) + " = " + std::to_string(x) + ": must be >= 0");
  };
  finite_non_negative("--input-std", a.input_std);
  finite_non_negative("--bias-std", a.bias_std);
  if (!std::isfinite(a.bias_mean)) throw InputError("--bias-mean: must be finite");
  if (!(a.lo > 0 && a.hi > a.lo && std::isfinite(a.hi)))
    throw InputError("--range: must satisfy 0 < LO < HI");
  MeanFieldParams p;
  p.activation = Activation(kind, a.alpha_given ? a.alpha : default_alpha(kind), a.beta);
  try {
    p.activation.validate();
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("--alpha/--beta: ") + e.what());
  }
  p.input_std = a.input_std;
  p.bias_mean = a.bias_mean;
  p.bias_std = a.bias_std;
  finite_non_negative("--init-std", a.init_std);
  p.h0_sq = a.init_std * a.init_std;
  const CriticalGain c = critical_gain(p, a.lo, a.hi);
  MeanField at;
  if (c.gain) {
    p.gain = *c.gain;
    at = mean_field(p);
  }
  if (a.json) {
    nlohmann::json j = {{"activation", to_string(kind)}, {"alpha", p.activation.alpha}, {"beta", p.activation.beta},
                        {"input_std", a.input_std}, {"bias_mean", a.bias_mean}, {"bias_std", a.bias_std},
                        {"critical_gain", c.gain ? nlohmann::json(*c.gain) : nlohmann::json(nullptr)},
                        {"q_star", c.gain && at.status == MeanFieldStatus::ok ? nlohmann::json(at.q) : nlohmann::json(nullptr)},
                        {"mf_status", c.gain ? nlohmann::json(to_string(at.status)) : nlohmann::json(nullptr)},
                        {"gain_is_jump", c.gain_is_jump}, {"crossings", c.crossings}, {"jumps", c.jumps},
                        {"range", {c.lo, c.hi}}, {"init_std", a.init_std}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("activation      %s (alpha %g, beta %g)\n", to_string(kind).c_str(), p.activation.alpha,
                p.activation.beta);
    std::printf("input std       %g   bias ~ N(%g, %g^2)   init std %g\n", a.input_std, a.bias_mean, a.bias_std,
                a.init_std);
    if (!c.gain) {
      std::printf("critical gain   none in [%g, %g]: chi = 1 is never reached\n", c.lo, c.hi);
    } else {
      std::printf("critical gain   %.10f   (chi = gain^2 E[f'(a)^2] = 1; gain = ||W||_F / sqrt(N) ~ rho(W) for "
                  "Ginibre W)\n", *c.gain);
      if (at.status == MeanFieldStatus::ok) std::printf("q* there        %.10g\n", at.q);
      else std::printf("q* there        diverges\n");
      if (c.gain_is_jump)
        std::printf("note            chi jumps across 1 here: the fixed point reached from q0 = gain^2 init_std^2 "
                    "+ input_std^2 + bias_std^2 switches branch\n");
      auto list = [](const char* name, const std::vector<double>& v, double skip) {
        std::string text;
        for (double g : v)
          if (g != skip) text += " " + std::to_string(g);
        if (!text.empty()) std::printf("%-15s%s\n", name, text.c_str());
      };
      list("crossings", c.crossings, *c.gain);
      list("jumps", c.jumps, *c.gain);
    }
  }
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
  // A file size limit (ulimit -f) makes write(2) fail with EFBIG, reported like a full disk, instead of
  // killing the process with SIGXFSZ halfway through a row.
  std::signal(SIGXFSZ, SIG_IGN);
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
  auto* resume_flag =
      run_cmd->add_flag("--resume", run.resume, "Complete an interrupted run in OUTDIR, skipping finished cells");
  auto* force_flag = run_cmd->add_flag("--force", run.force, "Replace the results of a different run in OUTDIR");
  resume_flag->excludes(force_flag);
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

  CriticalArgs crit;
  std::vector<double> crit_range;
  auto* crit_cmd = app.add_subcommand("critical", "Mean-field critical gain (radius) of a random network: where "
                                                  "chi = gain^2 E[f'(a)^2] = 1, to 1e-8");
  crit_cmd->add_option("--activation", crit.activation, "Activation (as in scenario files: tanh, relu, ...)")
      ->required();
  crit_cmd->add_option("--input-std", crit.input_std, "Std of each unit's input current (default 0)");
  crit_cmd->add_option("--bias-mean", crit.bias_mean, "Mean of the bias b_i (default 0)");
  crit_cmd->add_option("--bias-std", crit.bias_std, "Std of the bias b_i (default 0)");
  auto* crit_alpha = crit_cmd->add_option("--alpha", crit.alpha, "alpha of leaky_relu / elu (default 0.01 / 1)");
  crit_cmd->add_option("--beta", crit.beta, "beta of softplus / swish (default 1)");
  crit_cmd->add_option("--init-std", crit.init_std,
                       "Std of the initial state h_0 (default 1): where the variance iteration starts");
  crit_cmd->add_option("--range", crit_range, "Gain range searched: LO HI (default 0.01 1000)")->expected(2);
  crit_cmd->add_flag("--json", crit.json, "Print JSON instead of text");

  auto* keys_cmd = app.add_subcommand("keys", "Print every scenario key with its type, default and meaning "
                                              "(Markdown)");

  run_cmd->add_option("--shard", run.shard,
                      "Run only shard i of n (0 <= i < n): the (cell, replicate) pairs with "
                      "(cell * replicates + replicate) % n == i; combine the parts with gradflow merge");

  std::vector<std::string> merge_parts;
  std::string merge_out;
  bool merge_force = false, merge_quiet = false;
  auto* merge_cmd = app.add_subcommand("merge", "Merge the directories of gradflow run --shard i/n (all n of them) "
                                                "into one, identical to an unsharded run");
  merge_cmd->add_option("parts", merge_parts, "Shard directories (each holding run.json, cells.csv, ...)")
      ->required();
  merge_cmd->add_option("-o,--out", merge_out, "Output directory")->required();
  merge_cmd->add_flag("--force", merge_force, "Replace the results of another run in the output directory");
  merge_cmd->add_flag("--quiet", merge_quiet, "No summary on stderr");

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
    if (*run_cmd) return cmd_run_any(run);
    if (*merge_cmd) return cmd_merge(merge_parts, merge_out, merge_force, merge_quiet);
    if (*spec_cmd) return cmd_spectrum(spec_scenario, spec_set, spec_out, spec_json);
    if (*keys_cmd) return cmd_keys();
    if (*crit_cmd) {
      crit.alpha_given = crit_alpha->count() > 0;
      if (crit_range.size() == 2) crit.lo = crit_range[0], crit.hi = crit_range[1];
      return cmd_critical(crit);
    }
    if (*act_cmd) return cmd_activations(mu, sigma, alpha, beta, alpha_opt->count() > 0, act_json);
  } catch (const InputError& e) {
    std::fprintf(stderr, "gradflow: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "gradflow: invalid argument: %s\n", e.what());
    return kExitBadInput;
  } catch (const WriteError& e) {  // merge, spectrum -o (run reports its own)
    std::fprintf(stderr, "gradflow: %s\n", cannot_write(e).c_str());
    return kExitWriteFailed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gradflow: internal error: %s\n", e.what());
    return kExitInternal;
  }
  return kExitInternal;
}
