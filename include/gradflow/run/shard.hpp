#pragma once

#include <cstdint>
#include <string>

namespace gradflow {

/// A deterministic 1/count of a run's (cell, replicate) pairs, for scheduler job arrays:
/// pair (c, r) belongs to shard `index` iff (c * replicates + r) mod count == index.
/// Interleaving (rather than contiguous blocks) spreads the expensive corners of a phase diagram over
/// all shards, so shards take similar times. Shard 0/1 is the whole run.
struct Shard {
  std::int64_t index = 0;  // 0 <= index < count
  std::int64_t count = 1;  // >= 1

  bool whole() const { return count == 1; }
  bool contains(std::int64_t cell, std::int64_t replicate, std::int64_t replicates) const {
    return (cell * replicates + replicate) % count == index;
  }
  /// Number of the run's cell_count x replicates pairs in this shard.
  std::int64_t size(std::int64_t cell_count, std::int64_t replicates) const;
  /// "i/n".
  std::string str() const;
};

bool operator==(const Shard& a, const Shard& b);
inline bool operator!=(const Shard& a, const Shard& b) { return !(a == b); }

/// Parses "i/n" (0 <= i < n, n >= 1). Throws InputError naming `what` (e.g. "--shard") and the constraint.
Shard parse_shard(const std::string& text, const std::string& what = "--shard");

}  // namespace gradflow
