#pragma once
// Cooperative cancellation and a heartbeat for long computations: one process-wide stop flag that a signal
// handler may set, polled by the engine's passes and the eigen-solvers every few steps, and the latest
// position reached (phase, step of total), which a progress display may read from another thread.
// Header-only, lock-free: request_stop() is async-signal-safe.

#include <atomic>
#include <cstdint>
#include <exception>

namespace gradflow {

/// Thrown by poll_stop() once a stop was requested: the computation in progress is abandoned (its partial
/// results are meaningless); callers that run cells turn it into "cell not finished". Deliberately not a
/// std::runtime_error, so that handlers of numerical failures (a solver that broke down) do not catch it.
class Interrupted : public std::exception {
 public:
  const char* what() const noexcept override { return "interrupted"; }
};

namespace detail {
inline std::atomic<bool> g_stop_requested{false};
inline std::atomic<const char*> g_phase{nullptr};  // a string literal, or null before any poll
inline std::atomic<std::int64_t> g_step{0};
inline std::atomic<std::int64_t> g_total{0};
}  // namespace detail

/// Asks every computation polling the flag to stop. Async-signal-safe.
inline void request_stop() noexcept { detail::g_stop_requested.store(true, std::memory_order_relaxed); }
inline bool stop_requested() noexcept { return detail::g_stop_requested.load(std::memory_order_relaxed); }
/// Clears the flag (tests; a library user running again after a stop).
inline void clear_stop() noexcept { detail::g_stop_requested.store(false, std::memory_order_relaxed); }

/// Throws Interrupted when a stop was requested, and records the position reached every 64th step
/// (`phase` must be a string literal: it is kept by pointer). Cheap (one relaxed load; the shared position
/// is written rarely, so threads polling at once do not contend): call it every step.
inline void poll_stop(const char* phase, std::int64_t step, std::int64_t total) {
  if (stop_requested()) throw Interrupted();
  if ((step & 63) == 0) {
    detail::g_phase.store(phase, std::memory_order_relaxed);
    detail::g_step.store(step, std::memory_order_relaxed);
    detail::g_total.store(total, std::memory_order_relaxed);
  }
}

/// The latest position recorded by poll_stop() on any thread (phase null before the first poll).
struct Heartbeat {
  const char* phase = nullptr;
  std::int64_t step = 0;
  std::int64_t total = 0;  // 0 when the phase has no known length (solver iterations)
};
inline Heartbeat last_heartbeat() noexcept {
  return {detail::g_phase.load(std::memory_order_relaxed), detail::g_step.load(std::memory_order_relaxed),
          detail::g_total.load(std::memory_order_relaxed)};
}

}  // namespace gradflow
