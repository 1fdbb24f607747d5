// gradflow report OUTDIR: one self-contained OUTDIR/report.html (run/report.hpp).
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "cli.hpp"
#include "gradflow/run/report.hpp"

namespace gradflow::cli {

Command add_report(CLI::App& app) {
  auto outdir = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("report", "Write OUTDIR/report.html: scenario, heatmaps, gradient norms, "
                                           "spectrum, verdicts, summary and metadata in one self-contained page");
  cmd->add_option("outdir", *outdir, "Output directory of a run")->required();
  return {cmd, [outdir] {
            const auto file = write_report(*outdir);
            std::printf("%s\n", file.string().c_str());
            return kExitOk;
          }};
}

}  // namespace gradflow::cli
