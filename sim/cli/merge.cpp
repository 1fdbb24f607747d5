// gradflow merge PARTS... -o OUTDIR: the shards of a --shard run into one directory.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli.hpp"
#include "gradflow/run/merge.hpp"
#include "gradflow/run/scenario.hpp"

namespace gradflow::cli {
namespace {

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

}  // namespace

Command add_merge(CLI::App& app) {
  struct Args {
    std::vector<std::string> parts;
    std::string out;
    bool force = false, quiet = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("merge", "Merge the directories of gradflow run --shard i/n (all n of them) "
                                          "into one, identical to an unsharded run");
  cmd->add_option("parts", a->parts, "Shard directories (each holding run.json, cells.csv, ...)")->required();
  cmd->add_option("-o,--out", a->out, "Output directory")->required();
  cmd->add_flag("--force", a->force, "Replace the results of another run in the output directory");
  cmd->add_flag("--quiet", a->quiet, "No summary on stderr");
  return {cmd, [a] { return cmd_merge(a->parts, a->out, a->force, a->quiet); }};
}

}  // namespace gradflow::cli
