// gradflow run SCENARIO: every cell of the sweep, on this process's threads or across MPI ranks.
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
#include "gradflow/run/output.hpp"
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
    if (complete && writer.shard().whole()) std::fputs(writer.summary_text().c_str(), stderr);
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
  cmd->add_option("--shard", a->shard,
                  "Run only shard i of n (0 <= i < n): the (cell, replicate) pairs with "
                  "(cell * replicates + replicate) % n == i; combine the parts with gradflow merge");
  return {cmd, [a] { return cmd_run_any(*a); }};
}

}  // namespace gradflow::cli
