#pragma once
// The command line: one file per subcommand, each registering its options on the app and returning what to
// run when it is chosen (parse -> validate -> run -> report; no maths here). main.cpp parses and turns
// exceptions into exit codes.

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "gradflow/run/output.hpp"

namespace gradflow::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitWriteFailed = 74;  // EX_IOERR (sysexits.h): an output file could not be written
inline constexpr int kExitInterrupted = 130;

/// A registered subcommand and what it does when chosen (its exit code; InputError, invalid_argument and
/// WriteError thrown from it are reported by main()).
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_run(CLI::App& app);          // run.cpp
Command add_merge(CLI::App& app);        // merge.cpp
Command add_spectrum(CLI::App& app);     // spectrum.cpp
Command add_activations(CLI::App& app);  // activations.cpp
Command add_critical(CLI::App& app);     // critical.cpp
Command add_keys(CLI::App& app);         // keys.cpp
Command add_report(CLI::App& app);       // report.cpp
Command add_summary(CLI::App& app);      // summary.cpp

/// The number of ranks an MPI launcher started (mpirun / mpiexec / srun set one of these), 0 when none did,
/// -1 when one did without saying how many.
int launcher_ranks();

/// "cannot write FILE: OS error", the start of every write-failure message (WriteError::what() is
/// "FILE: OS error").
inline std::string cannot_write(const WriteError& e) { return "cannot write " + std::string(e.what()); }

}  // namespace gradflow::cli
