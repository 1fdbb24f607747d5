#include "gradflow/run/memory.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

#include "gradflow/run/output.hpp"

namespace gradflow {

namespace fs = std::filesystem;

namespace {

/// A limit file's number; nullopt for "max" (v2: no limit), a missing file or anything else.
std::optional<double> read_limit(const fs::path& file) {
  std::ifstream in(file);
  std::string text;
  if (!(in >> text) || text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::strtod(text.c_str(), nullptr);
}

/// PATH and each of its ancestors up to "/", as relative paths ("" for the root).
std::vector<fs::path> self_and_ancestors(const std::string& path) {
  std::vector<fs::path> chain;
  fs::path p = fs::path(path).relative_path();
  for (;;) {
    chain.push_back(p);
    if (p.empty()) break;
    p = p.parent_path();
  }
  return chain;
}

}  // namespace

MemoryLimit memory_limit(const MemorySources& src) {
  MemoryLimit limit;
  limit.bytes = src.physical ? *src.physical
                             : double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  limit.source = "physical memory";
  auto consider = [&](double bytes, const std::string& source) {
    if (bytes > 0 && bytes < limit.bytes) {
      limit.bytes = bytes;
      limit.source = source;
    }
  };
  // Every visible level of this process's cgroup: the path under the root when the hierarchy is mounted
  // whole, the root itself when a cgroup namespace mounts this process's group there.
  std::ifstream cgroups(src.proc_cgroup);
  for (std::string line; std::getline(cgroups, line);) {
    const auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = "," + line.substr(first + 1, second - first - 1) + ",";
    const std::string path = line.substr(second + 1);
    const bool v2 = line.compare(0, first, "0") == 0 && controllers == ",,";
    const bool v1 = controllers.find(",memory,") != std::string::npos;
    if (!v1 && !v2) continue;
    for (const auto& dir : self_and_ancestors(path)) {
      const fs::path file = v2 ? src.cgroup_root / dir / "memory.max"
                               : src.cgroup_root / "memory" / dir / "memory.limit_in_bytes";
      if (const auto bytes = read_limit(file)) consider(*bytes, "the cgroup limit " + file.string());
    }
  }
  double as = std::numeric_limits<double>::infinity();
  if (src.address_space) {
    as = *src.address_space;
  } else if (rlimit r{}; getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
    as = double(r.rlim_cur);
  }
  if (std::isfinite(as)) {
    double mapped = 0.0;
    if (src.mapped) {
      mapped = *src.mapped;
    } else {
      std::ifstream statm("/proc/self/statm");
      double pages = 0.0;
      if (statm >> pages) mapped = pages * double(sysconf(_SC_PAGESIZE));
    }
    consider(std::max(as - mapped, 1.0), "RLIMIT_AS (ulimit -v) less the " + format_bytes(mapped) +
                                             " this process maps already");
  }
  return limit;
}

MemoryPlan memory_plan(const Scenario& sc, int threads) {
  MemoryPlan plan;
  // Cells at once: one per thread, never more than there are (a one-cell run gives its threads to Eigen).
  const double pairs = double(sc.cell_count()) * double(sc.replicates);
  plan.threads = static_cast<int>(std::max(1.0, std::min(double(threads), pairs)));
  plan.per_cell = sc.peak_cell_bytes > 0 ? sc.peak_cell_bytes : cell_memory_bytes(sc.base);
  // The radius-family cache holds up to 2 x threads bases; those in use are counted in their cells' W.
  if (expected_storage(sc.base) == Storage::dense) {
    const double n = double(sc.peak_units > 0 ? sc.peak_units : sc.base.network.units);
    plan.cache = double(plan.threads) * 8.0 * n * n;
  }
  plan.bookkeeping = kBookkeepingBytesPerCell * pairs;
  // Completion: the verdicts and summary.csv read cells.csv whole (a row is ~11 bytes per column; as
  // strings, twice that), heatmaps/ sums 5 metrics x 3 doubles per grid point.
  plan.completion = 2.0 * 11.0 * double(cell_columns(sc).size()) * pairs;
  if (heatmap_axes(sc)) plan.completion += 120.0 * double(sc.cell_count());
  return plan;
}

int fit_threads(const Scenario& sc, int threads, const MemoryLimit& limit, std::string* note) {
  const double usable = kMemoryShare * limit.bytes;
  MemoryPlan one = memory_plan(sc, 1);
  if (one.peak() > usable)
    throw InputError("this run needs " + format_bytes(one.peak()) + " on one thread (" +
                     format_bytes(one.per_cell) + " for its largest cell, " + format_bytes(one.bookkeeping) +
                     " of bookkeeping and " + format_bytes(one.completion) + " to complete " +
                     std::to_string(sc.cell_count() * sc.replicates) + " cells x replicates), more than " + std::to_string(int(kMemoryShare * 100)) + "% of " +
                     format_bytes(limit.bytes) + " (" + limit.source +
                     "); use fewer units, steps, batch or cells");
  int fit = std::max(threads, 1);
  while (fit > 1 && memory_plan(sc, fit).peak() > usable) --fit;
  if (fit < threads && note) {
    const MemoryPlan asked = memory_plan(sc, threads);
    *note = std::to_string(threads) + " threads x " + format_bytes(asked.per_cell) + " per cell would need " +
            format_bytes(asked.peak()) + ", more than " + std::to_string(int(kMemoryShare * 100)) + "% of " +
            format_bytes(limit.bytes) + " (" + limit.source + "): running " + std::to_string(fit) +
            (fit == 1 ? " thread" : " threads");
  }
  return fit;
}

std::string format_bytes(double bytes) {
  static const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (std::abs(bytes) >= 1000.0 && u < 5) {
    bytes /= 1000.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g %s", bytes, units[u]);
  return buf;
}

}  // namespace gradflow
