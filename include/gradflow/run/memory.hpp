#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "gradflow/run/scenario.hpp"

namespace gradflow {

/// Where the memory limit is read from. The defaults are this process's; tests point them at a fake tree.
struct MemorySources {
  std::filesystem::path proc_cgroup = "/proc/self/cgroup";  // "0::/PATH" (v2), "N:...memory...:/PATH" (v1)
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";     // v2 files at ROOT/PATH, v1 at ROOT/memory/PATH
  std::optional<double> physical;       // bytes of RAM; unset: sysconf(_SC_PHYS_PAGES) x page size
  std::optional<double> address_space;  // RLIMIT_AS (ulimit -v) in bytes; unset: getrlimit; infinity: none
  std::optional<double> mapped;         // address space this process maps already; unset: /proc/self/statm
};

/// The memory a run may use: the smallest of physical memory, the cgroup limit (v2 memory.max, v1
/// memory.limit_in_bytes, of this process's cgroup and every ancestor that is visible) and the address
/// space RLIMIT_AS leaves (the limit less what the process maps already), with what set it.
struct MemoryLimit {
  double bytes = 0.0;
  std::string source;  // "physical memory", "cgroup /sys/fs/cgroup/memory/memory.limit_in_bytes", "RLIMIT_AS (ulimit -v)"
};
MemoryLimit memory_limit(const MemorySources& sources = {});

/// The share of the limit a run plans to fill: the rest is the program, the C library's arenas and error.
inline constexpr double kMemoryShare = 0.9;

/// Bytes run.json, the writer and the sweep keep per (cell, replicate) while a run is in progress (status
/// byte, work list entry, family index, the writer's bookkeeping; measured, see README "Memory and time").
inline constexpr double kBookkeepingBytesPerCell = 40.0;

/// Peak memory of a run on `threads` threads: one cell per thread (each the largest cell of the scenario),
/// the radius-family cache, the bookkeeping of every cell, and what completing the run reads.
struct MemoryPlan {
  double per_cell = 0.0;     // Scenario::peak_cell_bytes
  double cache = 0.0;        // 2 x threads base matrices (8 N^2 each) when cells share W's family, else 0
  double bookkeeping = 0.0;  // kBookkeepingBytesPerCell x cells x replicates
  double completion = 0.0;   // the end of a whole run: cells.csv read whole by the verdicts and summary
                             // (~2x its size) and the heatmaps' sums (120 bytes per grid point)
  int threads = 1;           // cells at once: min(threads, cells x replicates)
  /// The cells run first, the completion after them: the larger of the two, and the bookkeeping throughout.
  double peak() const { return bookkeeping + std::max(per_cell * threads + cache, completion); }
};
MemoryPlan memory_plan(const Scenario& scenario, int threads);

/// The threads (at most `threads`) whose cells fit in kMemoryShare of `limit` at once. When fewer than
/// asked, `note` receives why ("8 threads x 3.2 GB per cell would exceed ...: running 4"). Throws InputError
/// naming the cell size, the limit and its source when not even one cell (with the bookkeeping) fits.
int fit_threads(const Scenario& scenario, int threads, const MemoryLimit& limit, std::string* note = nullptr);

/// "1.5 GB", "320 MB", "12 kB": bytes in decimal units with 3 significant digits.
std::string format_bytes(double bytes);

}  // namespace gradflow
