// gradflow run SCENARIO: every cell of the sweep, on this process's threads or across MPI ranks.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <omp.h>

#include "cli.hpp"
#include "gradflow/numerics/interrupt.hpp"
#include "gradflow/run/memory.hpp"
#include "gradflow/run/output.hpp"
#include "gradflow/run/plan.hpp"
#include "gradflow/run/report.hpp"
#include "gradflow/run/scenario.hpp"
#include "gradflow/run/shard.hpp"
#include "gradflow/run/sweep.hpp"
#include "gradflow/run/verdict.hpp"
#ifdef GRADFLOW_WITH_MPI
#include "gradflow/run/mpi_sweep.hpp"
#endif

namespace gradflow::cli {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
std::atomic<int> g_signals{0};
volatile std::sig_atomic_t g_quiet = 0;
volatile std::sig_atomic_t g_stop_cells = 1;  // also stop inside the cells (not under MPI: see cmd_run_mpi)

void say(const char* text) {  // async-signal-safe
  std::size_t n = 0;
  while (text[n]) ++n;
  [[maybe_unused]] const ssize_t ignored = ::write(STDERR_FILENO, text, n);
}

/// SIGINT, SIGTERM, SIGHUP: the first stops the run (no new cell; cells in progress stop at their next step
/// or solver product and are discarded; run.json says interrupted; exit 130). A second one aborts at once:
/// every file is always in the state a SIGKILL leaves, which --resume completes.
extern "C" void on_signal(int sig) {
  if (g_signals.fetch_add(1) > 0) {
    say("\ngradflow: second signal: aborting now; finished cells are kept, complete with --resume\n");
    ::_exit(kExitInterrupted);
  }
  g_signal.store(sig);
  g_stop.store(true);
  if (g_stop_cells) request_stop();
  if (!g_quiet) {
    say(sig == SIGINT ? "\ngradflow: SIGINT" : sig == SIGTERM ? "\ngradflow: SIGTERM" : "\ngradflow: SIGHUP");
    say(": stopping; cells in progress are discarded (--resume recomputes them); signal again to abort at "
        "once\n");
  }
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

/// --threads N: 0 for every core; at most kMaxThreadsPerCore per core (OpenMP segfaults on 100000).
constexpr int kMaxThreadsPerCore = 64;
int checked_threads(int requested) {
  const int cores = omp_get_num_procs();
  if (requested > kMaxThreadsPerCore * std::max(cores, 1))
    throw InputError("--threads " + std::to_string(requested) + ": must be at most " +
                     std::to_string(kMaxThreadsPerCore * std::max(cores, 1)) + " (" +
                     std::to_string(kMaxThreadsPerCore) + " per core; this machine has " + std::to_string(cores) +
                     "); 0 uses every core");
  return requested > 0 ? requested : cores;
}

struct RunArgs {
  std::string scenario;
  std::string outdir;
  std::vector<std::string> set;
  int threads = 0;
  double progress_every = 30.0;  // seconds between plain progress lines (stderr not a terminal)
  bool resume = false;
  bool force = false;
  bool quiet = false;
  bool no_report = false;  // no OUTDIR/report.html at the end of a complete run
  bool strict = false;  // keys without effect are errors, not warnings
  bool dry_run = false;  // print cells, memory, output size and time; run and write nothing
  std::string shard;  // "i/n", "" for the whole run
};

/// What to do about a write failure before --resume.
std::string fix_hint(const WriteError& e) {
  if (e.error() == ENOSPC || e.error() == EDQUOT) return "free space";
  if (e.error() == EFBIG) return "raise the file size limit (ulimit -f)";
  return "fix that";
}

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
int report_run(const Scenario& sc, RunWriter& writer, const SweepSummary& s, bool quiet, bool report,
               const std::string& where) {
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
    if (complete && writer.shard().whole()) std::fputs(writer.summary_text().c_str(), stderr);
  }
  if (complete && writer.shard().whole() && report) {
    // The page is a view of the files just written: when it cannot be made, the run still succeeded.
    try {
      const auto page = write_report(writer.dir());
      if (!quiet) std::fprintf(stderr, "report: %s\n", page.string().c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "gradflow: warning: report.html not written: %s\n", e.what());
    }
  }
  if (s.failed > 0) {
    std::fprintf(stderr, "gradflow: %lld cells failed; see run.json\n", (long long)s.failed);
    return kExitInternal;
  }
  if (!complete) {
    const int sig = g_signal.load();
    std::fprintf(stderr, "gradflow: interrupted%s; finished cells are kept, complete with --resume\n",
                 sig == SIGTERM   ? " (SIGTERM: under mpirun, Ctrl-C or a rank that died sends it)"
                 : sig == SIGINT  ? " (SIGINT)"
                 : sig == SIGHUP  ? " (SIGHUP: the terminal was closed)"
                                  : "");
    return kExitInterrupted;
  }
  return kExitOk;
}

/// Keys without effect: one warning line each, or (--strict) the first as bad input.
void report_warnings(const Scenario& sc, bool strict) {
  if (strict && !sc.warnings.empty()) throw InputError(sc.warnings.front() + " (--strict)");
  for (const auto& w : sc.warnings) std::fprintf(stderr, "gradflow: warning: %s\n", w.c_str());
}

int cmd_run(const RunArgs& a) {
  const Scenario sc = load_scenario(a.scenario, a.set);
  report_warnings(sc, a.strict);
  const Shard shard = a.shard.empty() ? Shard{} : parse_shard(a.shard);
  const std::string outdir = a.outdir.empty() ? "out/" + sc.name : a.outdir;
  if (a.dry_run) {
    // Nothing is created: not OUTDIR, not its lock.
    const RunEstimate e = estimate_run(sc, shard, checked_threads(a.threads), memory_limit());
    std::printf("gradflow run %s --dry-run: nothing is computed or written (OUTDIR %s)\n%s", a.scenario.c_str(),
                outdir.c_str(), format_estimate(e).c_str());
    return kExitOk;
  }
  // One cell per thread at once: fewer threads when their cells would not fit in memory.
  std::string memory_note;
  const int threads = fit_threads(sc, checked_threads(a.threads), memory_limit(), &memory_note);
  if (!memory_note.empty()) std::fprintf(stderr, "gradflow: %s\n", memory_note.c_str());
  std::optional<RunWriter> writer_slot;
  try {
    writer_slot.emplace(sc, outdir, OutputOptions{a.resume, a.force, shard}, threads);
  } catch (const WriteError& e) {  // preparing OUTDIR: run.json, the headers, or the rows kept for a resume
    std::fprintf(stderr, "gradflow: %s\n", prepare_failed(e).c_str());
    return kExitWriteFailed;
  }
  RunWriter& writer = *writer_slot;
  if (writer.dropped_rows() > 0)
    std::fprintf(stderr, "gradflow: warning: %s: %lld damaged rows (wrong number of fields) dropped; their cells "
                 "are recomputed\n", writer.dir().string().c_str(), (long long)writer.dropped_rows());

  g_quiet = a.quiet;
  install_signal_handlers();
  SweepOptions opt;
  opt.threads = threads;
  opt.stop = &g_stop;
  opt.progress = !a.quiet;
  opt.style = isatty(STDERR_FILENO) ? ProgressStyle::terminal : ProgressStyle::plain;
  opt.plain_interval = a.progress_every;
  const SweepSummary s = run_sweep(sc, writer, opt);
  return report_run(sc, writer, s, a.quiet, !a.no_report, "");
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
    if (a.strict && !sc->warnings.empty()) throw InputError(sc->warnings.front() + " (--strict)");
    if (root) report_warnings(*sc, false);
    const Shard shard = a.shard.empty() ? Shard{} : parse_shard(a.shard);
    const std::string outdir = a.outdir.empty() ? "out/" + sc->name : a.outdir;
    const int threads = checked_threads(a.threads);
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

  // A worker told to stop hands back its cells between cells; stopping inside one is not wired for MPI.
  g_stop_cells = 0;
  g_quiet = a.quiet;
  install_signal_handlers();
  try {
    SweepOptions opt;
    opt.threads = a.threads;
    opt.stop = &g_stop;
    const SweepSummary s = run_sweep_mpi(*sc, writer.get(), opt, mpi);
    // A worker told to stop alone has handed back its cells: the run goes on without it, so its exit is
    // clean (a non-zero exit would make mpirun abort the job). When every rank is told, rank 0 exits 130.
    if (!root) return kExitOk;
    const std::string where = " on " + std::to_string(mpi.size()) + (mpi.size() == 1 ? " MPI rank" : " MPI ranks");
    return report_run(*sc, *writer, s, a.quiet, !a.no_report, where);
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

}  // namespace

Command add_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Run a scenario (all cells of its sweep) and write cells.csv, "
                                        "series.csv and run.json");
  cmd->add_option("scenario", a->scenario, "Scenario file (TOML)")->required();
  cmd->add_option("-o,--out", a->outdir, "Output directory (default out/<scenario name>)");
  cmd->add_option("--set", a->set, "Override a scenario key before validation: key=value (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--threads", a->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  auto* resume = cmd->add_flag("--resume", a->resume, "Complete an interrupted run in OUTDIR, skipping finished cells");
  auto* force = cmd->add_flag("--force", a->force, "Replace the results of a different run in OUTDIR");
  resume->excludes(force);
  cmd->add_flag("--quiet", a->quiet, "No progress or summary on stderr");
  cmd->add_flag("--no-report", a->no_report, "Do not write OUTDIR/report.html when the run completes");
  cmd->add_flag("--strict", a->strict, "Refuse (exit 2) keys that have no effect under the chosen kinds, "
                                       "instead of warning");
  cmd->add_option("--progress-every", a->progress_every,
                  "Seconds between progress lines when stderr is not a terminal (default 30)")
      ->check(CLI::Range(0.1, 86400.0));
  cmd->add_flag("--dry-run", a->dry_run, "Print the cells, peak memory, output size and an estimate of the time; "
                                         "run nothing, write nothing");
  cmd->add_option("--shard", a->shard,
                  "Run only shard i of n (0 <= i < n): the (cell, replicate) pairs with "
                  "(cell * replicates + replicate) % n == i; combine the parts with gradflow merge");
  return {cmd, [a] { return cmd_run_any(*a); }};
}

}  // namespace gradflow::cli
