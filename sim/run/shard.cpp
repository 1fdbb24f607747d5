#include "gradflow/run/shard.hpp"

#include <charconv>

#include "gradflow/run/scenario.hpp"

namespace gradflow {

std::int64_t Shard::size(std::int64_t cell_count, std::int64_t replicates) const {
  const std::int64_t total = cell_count * replicates;
  // Pairs k = 0..total-1 with k mod count == index.
  return total > index ? (total - index + count - 1) / count : 0;
}

std::string Shard::str() const { return std::to_string(index) + "/" + std::to_string(count); }

bool operator==(const Shard& a, const Shard& b) { return a.index == b.index && a.count == b.count; }

Shard parse_shard(const std::string& text, const std::string& what) {
  const auto bad = [&](const std::string& why) { return InputError(what + " = \"" + text + "\": " + why); };
  const auto slash = text.find('/');
  if (slash == std::string::npos) throw bad("expected i/n, e.g. 0/4 (shard i of n, 0 <= i < n)");
  Shard s;
  const char* p = text.data();
  const char* mid = p + slash;
  const char* end = p + text.size();
  auto r1 = std::from_chars(p, mid, s.index);
  auto r2 = std::from_chars(mid + 1, end, s.count);
  if (r1.ec != std::errc() || r1.ptr != mid || r2.ec != std::errc() || r2.ptr != end)
    throw bad("expected i/n with integers i and n, e.g. 0/4");
  if (s.count < 1) throw bad("n must be >= 1");
  if (s.index < 0 || s.index >= s.count) throw bad("i must satisfy 0 <= i < n (shards are numbered from 0)");
  return s;
}

}  // namespace gradflow
