#pragma once

// Distributed sweeps over MPI ranks. Built only with GRADFLOW_WITH_MPI (target gradflow::mpi); the core
// library knows nothing of MPI.

#include <string>
#include <vector>

#include "gradflow/run/output.hpp"
#include "gradflow/run/scenario.hpp"
#include "gradflow/run/sweep.hpp"

namespace gradflow {

/// MPI_Init_thread / MPI_Finalize. Requires MPI_THREAD_SERIALIZED: every MPI call is made under one
/// process-wide mutex, from the thread that needs it (throws std::runtime_error if the library offers less).
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  struct Start {
    int code = 0;         // 0: every rank is ready; else the exit code of every rank
    std::string message;  // what this rank prints ("" when another rank reports the problem)
  };
  /// Collective start check. Every rank passes its exit code so far (0 = ready), its error message, and a
  /// fingerprint of what it loaded (the scenario hash). The run starts only if every rank is ready and every
  /// fingerprint equals rank 0's (all ranks must read the same scenario and files). Rank 0's problem is
  /// printed by rank 0 alone, so a bad scenario is reported once, not once per rank.
  Start agree_to_start(int code, const std::string& error, const std::string& fingerprint) const;

  /// Prints "gradflow: rank R: message" and aborts every rank (MPI_Abort, exit code 1): for errors after the
  /// start, when the other ranks would otherwise wait for this one forever.
  [[noreturn]] void abort(const std::string& message) const;

 private:
  int rank_ = 0;
  int size_ = 1;
};

/// Runs every (cell, replicate) of the writer's shard not yet done across all ranks. Collective: every rank
/// calls it with the same scenario. Rank 0 (`writer` non-null) dispatches cells on request and is the only
/// writer: workers send each cell's rows, formatted by format_cell_rows, so the files are identical to a
/// single-process run. Every rank runs `options.threads` worker threads, each asking rank 0 for one cell at a
/// time (dynamic load balancing across ranks and threads); rank 0's threads compute too. When
/// `options.stop` is set, rank 0 writes run.json as "interrupted" at once, stops dispatching and records the
/// cells still in flight; a worker whose stop is set returns its cell in flight and leaves.
/// The summary (on rank 0) counts every rank's cells.
SweepSummary run_sweep_mpi(const Scenario& scenario, RunWriter* writer, const SweepOptions& options,
                           const MpiSession& session);

}  // namespace gradflow
