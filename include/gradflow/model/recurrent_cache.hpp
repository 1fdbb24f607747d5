#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <mutex>

#include <Eigen/Core>

#include "gradflow/model/spectrum.hpp"

namespace gradflow {

/// The radius-free part of a cell's W: a base matrix and its spectral data, from which W = scale * base with
/// rho(W) = scale * rho(base) and ||W||_2 = scale * ||base||_2 exactly (scaling by a positive number scales
/// every eigenvalue and singular value).
struct RecurrentBase {
  Eigen::MatrixXd w;  // random kinds: radius 1; file: the matrix as read
  SpectralInfo info;  // rho and ||W||_2 of `w`, with how they were obtained
};

/// Identifies a base: random kinds by (kind, N, the seed of W's stream), file matrices by their address.
struct RecurrentKey {
  int kind = 0;
  Eigen::Index n = 0;
  std::uint64_t seed = 0;
  const void* matrix = nullptr;
  bool operator==(const RecurrentKey& o) const {
    return kind == o.kind && n == o.n && seed == o.seed && matrix == o.matrix;
  }
};

/// A small thread-safe store of bases shared by the cells of a sweep that differ only in spectrum.radius:
/// each base is built and solved once (a thread asking for a base another thread is building waits for it),
/// and the least recently used is dropped beyond `capacity` entries (memory: capacity x 8 N^2 bytes).
class RecurrentCache {
 public:
  explicit RecurrentCache(std::size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

  /// The base for `key`, from the cache or built by `build` (whose exception, if any, is rethrown to every
  /// caller waiting for that key, and the key is not cached).
  std::shared_ptr<const RecurrentBase> get(const RecurrentKey& key,
                                           const std::function<RecurrentBase()>& build);

  std::size_t builds() const;  // bases built so far (misses)
  std::size_t hits() const;    // requests served from the cache

 private:
  using Future = std::shared_future<std::shared_ptr<const RecurrentBase>>;
  struct Entry {
    RecurrentKey key;
    Future value;
  };
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::list<Entry> entries_;  // most recently used first
  std::size_t builds_ = 0, hits_ = 0;
};

}  // namespace gradflow
