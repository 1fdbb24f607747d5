// gradflow summary OUTDIR [--along KEY] [--json]: where each factor crosses 1, with 95 % intervals.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "gradflow/run/scenario.hpp"
#include "gradflow/run/summary.hpp"

namespace gradflow::cli {
namespace {

namespace fs = std::filesystem;

struct SummaryArgs {
  std::string outdir;
  std::string along;
  bool json = false;
};

int cmd_summary(const SummaryArgs& a) {
  const fs::path dir(a.outdir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError(a.outdir + ": no such directory");
  if (!fs::exists(dir / "cells.csv", ec))
    throw InputError(a.outdir + ": no cells.csv (not a gradflow run directory)");
  std::string status;
  nlohmann::json verdicts;
  if (std::ifstream in(dir / "run.json"); in) {
    try {
      const auto run = nlohmann::json::parse(in);
      status = run.value("status", "");
      if (run.contains("verdicts")) verdicts = run["verdicts"];
    } catch (const std::exception&) {
      status = "";
    }
  }
  SummaryOptions opt;
  opt.along = a.along;
  // summary.csv belongs to a complete run along its default axis; anything else is only printed.
  const bool write = status == "complete" && a.along.empty();
  const Summary s = write ? write_summary(dir, opt, verdicts) : [&] {
    Summary t = compute_summary(dir / "cells.csv", opt);
    t.verdicts = verdicts;
    return t;
  }();
  if (status != "complete")
    std::fprintf(stderr, "gradflow: %s: run.json says %s: summary of the finished cells only, summary.csv not written\n",
                 a.outdir.c_str(), status.empty() ? "nothing readable" : status.c_str());
  if (a.json)
    std::printf("%s\n", summary_json(s).dump(2).c_str());
  else
    std::fputs(format_summary(s).c_str(), stdout);
  return kExitOk;
}

}  // namespace

Command add_summary(CLI::App& app) {
  auto a = std::make_shared<SummaryArgs>();
  auto* cmd = app.add_subcommand("summary", "Where the measured growth rate and each predictor cross 1 along a sweep "
                                            "axis, with 95 % intervals over replicates (rewrites OUTDIR/summary.csv)");
  cmd->add_option("outdir", a->outdir, "Run directory (holding cells.csv and run.json)")->required();
  cmd->add_option("--along", a->along,
                  "Axis to cross along (default spectrum.radius when swept, else the first numeric axis); with it, "
                  "the summary is printed and summary.csv is left as it is");
  cmd->add_flag("--json", a->json, "Print JSON instead of the table");
  return {cmd, [a] { return cmd_summary(*a); }};
}

}  // namespace gradflow::cli
