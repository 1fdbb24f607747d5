// gradflow command line: parse -> validate -> run -> report. No maths here; each subcommand is a file of
// its own (cli.hpp).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <CLI/CLI.hpp>

#include "cli.hpp"
#include "gradflow/numerics/version.hpp"
#include "gradflow/run/scenario.hpp"

namespace gradflow::cli {

int launcher_ranks() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  for (const char* var : {"PMI_RANK", "PMIX_RANK"})
    if (std::getenv(var)) return -1;
  return 0;
}

}  // namespace gradflow::cli

int main(int argc, char** argv) {
  using namespace gradflow;
  using namespace gradflow::cli;
  // A file size limit (ulimit -f) makes write(2) fail with EFBIG, reported like a full disk, instead of
  // killing the process with SIGXFSZ halfway through a row.
  std::signal(SIGXFSZ, SIG_IGN);
  // A closed pipe on stderr (`2>&1 | head -1`) must not kill a run or change its exit code: messages to it
  // are lost (EPIPE), the results in files are not.
  std::signal(SIGPIPE, SIG_IGN);
#if defined(__GLIBC__)
  // Blocks freed by one cell stay in the heap for the next: each pass's cell copies and packs W and sizes its
  // scratch (megabytes), and glibc's defaults gave such blocks back to the kernel when freed and faulted fresh
  // pages in for the next replicate (LSTM, N = 256, B = 32: ~2,200 page faults per replicate, none with these
  // settings). Peak memory is unchanged: the same blocks, reused. Tapes have their own mappings (engine.cpp).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest: blocks below it come from the heap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);   // the heap's free top is returned to the kernel only above 1 GiB
#endif
  CLI::App app{"gradflow: gradient flow through time in vanilla RNNs with controlled recurrent spectra"};
  app.set_version_flag("--version", std::string("gradflow ") + version() + " (commit " + git_commit() + ")");
  app.require_subcommand(1);

  const std::vector<Command> commands = {add_run(app),         add_spectrum(app), add_activations(app),
                                         add_critical(app),    add_keys(app),     add_merge(app),
                                         add_report(app),
                                         add_summary(app)};
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
    for (const Command& c : commands)
      if (*c.app) return c.run();
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
