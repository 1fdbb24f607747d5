// Distributed sweeps: rank 0 dispatches (cell, replicate) pairs on request and writes every row; every
// rank's threads compute. Transport is MPI point-to-point (tags below); payloads are MessagePack
// (nlohmann::json::to_msgpack), so there is no hand-written wire format.
#include "gradflow/run/mpi_sweep.hpp"
#include "gradflow/model/recurrent_cache.hpp"

#include <mpi.h>
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <thread>

#include "gradflow/analysis/simulate.hpp"

namespace gradflow {

namespace {

using nlohmann::json;
using Pair = std::pair<std::int64_t, std::int64_t>;

// Worker thread -> rank 0, tag kTagRequest: MessagePack {"slot": s, optional "result": {cell, replicate, ok,
// cells, series | error}, optional "request": "idle" | "busy", optional "returned": [cell, replicate],
// optional "last": true}. A slot asks for its next cell while it computes the current one ("busy"), so the
// round trip hides behind the computation; near the end of the run rank 0 answers such prefetches with
// kLater, so that no cell waits behind another while a thread elsewhere is idle. "last" closes the slot.
constexpr int kTagRequest = 1;
// Rank 0 -> worker thread s, tag kTagWorkBase + s: int64[2] {cell, replicate}, or {kStop | kLater, -1}.
constexpr int kTagWorkBase = 16;
constexpr std::int64_t kStop = -1;   // no more cells
constexpr std::int64_t kLater = -2;  // no prefetch now: ask again when idle

/// MPI_THREAD_SERIALIZED: one MPI call at a time in this process. Every call is non-blocking (or a probe),
/// so the lock is held for microseconds; waiting is done by polling outside it.
std::mutex& mpi_mutex() {
  static std::mutex m;
  return m;
}
using Lock = std::lock_guard<std::mutex>;

/// Polling with exponential back-off (10 us .. 1 ms): idle ranks and threads sleep instead of spinning,
/// so a dispatcher sharing a core with a computing thread costs it little.
class Backoff {
 public:
  void reset() { micros_ = 0; }
  void idle() {
    micros_ = micros_ == 0 ? 10 : std::min(2 * micros_, 1000);
    std::this_thread::sleep_for(std::chrono::microseconds(micros_));
  }

 private:
  int micros_ = 0;
};

void wait_for(MPI_Request* request) {
  Backoff backoff;
  for (;;) {
    int done = 0;
    {
      Lock lock(mpi_mutex());
      MPI_Test(request, &done, MPI_STATUS_IGNORE);
    }
    if (done) return;
    backoff.idle();
  }
}

/// The (cell, replicate) pairs still to hand out, shared by rank 0's dispatcher and its own threads.
class WorkQueue {
 public:
  WorkQueue(std::vector<Pair> work, const std::atomic<bool>* stop) : work_(std::move(work)), stop_(stop) {}
  std::optional<Pair> take() {
    if ((stop_ && stop_->load()) || halted_.load()) return std::nullopt;
    {
      std::lock_guard<std::mutex> lock(returned_mutex_);
      if (!returned_.empty()) {
        const Pair p = returned_.back();
        returned_.pop_back();
        return p;
      }
    }
    const std::size_t i = next_.fetch_add(1);
    if (i >= work_.size()) return std::nullopt;
    return work_[i];
  }
  /// No more cells for anyone (a row could not be written): every request is answered kStop from now on.
  void halt() { halted_.store(true); }
  bool halted() const { return halted_.load(); }
  /// A cell handed out but not computed (its worker left): handed out again.
  void give_back(Pair p) {
    std::lock_guard<std::mutex> lock(returned_mutex_);
    returned_.push_back(p);
  }
  std::size_t remaining() {
    std::lock_guard<std::mutex> lock(returned_mutex_);
    const std::size_t taken = std::min(next_.load(), work_.size());
    return work_.size() - taken + returned_.size();
  }

 private:
  std::vector<Pair> work_;
  const std::atomic<bool>* stop_;
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> halted_{false};
  std::mutex returned_mutex_;
  std::vector<Pair> returned_;
};

/// Messages to rank 0 whose sends complete in the background (a large result completes only when rank 0
/// receives it): each buffer lives until its send is done, and the thread goes on computing meanwhile.
class Outbox {
 public:
  ~Outbox() { flush(); }
  void send(const json& message) {
    reap();
    items_.emplace_back(json::to_msgpack(message), MPI_REQUEST_NULL);
    auto& [bytes, request] = items_.back();
    Lock lock(mpi_mutex());
    MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, 0, kTagRequest, MPI_COMM_WORLD,
              &request);
  }
  void flush() {
    for (auto& item : items_) wait_for(&item.second);
    items_.clear();
  }

 private:
  void reap() {
    Lock lock(mpi_mutex());
    for (auto it = items_.begin(); it != items_.end();) {
      int done = 0;
      MPI_Test(&it->second, &done, MPI_STATUS_IGNORE);
      it = done ? items_.erase(it) : std::next(it);
    }
  }
  std::list<std::pair<std::vector<std::uint8_t>, MPI_Request>> items_;
};

/// Cells that differ only in spectrum.radius share W's base (Scenario::recurrent_family), exactly as in a
/// single-process sweep, so MPI runs draw the same W; one cache per process, shared by its threads.
CellResult simulate(const Scenario& scenario, std::int64_t cell, std::int64_t replicate) {
  static RecurrentCache cache(8);
  return simulate_cell(scenario.cell_config(cell), cell, replicate,
                       static_cast<std::uint64_t>(scenario.recurrent_family(cell)), &cache);
}

/// One cell on a worker, as the message rank 0 records.
json compute_remote(const Scenario& scenario, std::int64_t cell, std::int64_t replicate) {
  json r = {{"cell", cell}, {"replicate", replicate}};
  try {
    const CellResult result = simulate(scenario, cell, replicate);
    CellRows rows = format_cell_rows(scenario, cell, replicate, result);
    r["ok"] = true;
    r["cells"] = std::move(rows.cells);
    r["series"] = std::move(rows.series);
  } catch (const std::exception& e) {
    r["ok"] = false;
    r["error"] = e.what();
  }
  return r;
}

/// A worker thread: asks for a cell, and while computing it asks for the next one; sends every cell's rows;
/// stops when rank 0 answers kStop or this rank is told to stop (then the cell in flight is sent, and a
/// prefetched cell is returned uncomputed).
void worker_slot(const Scenario& scenario, int slot, const std::atomic<bool>* stop) {
  Outbox outbox;
  std::array<std::int64_t, 2> reply{kStop, -1};
  MPI_Request pending = MPI_REQUEST_NULL;
  // The reply's receive is posted before the request leaves, so rank 0's reply never waits on us.
  auto request = [&](const json& message) {
    {
      Lock lock(mpi_mutex());
      MPI_Irecv(reply.data(), 2, MPI_INT64_T, 0, kTagWorkBase + slot, MPI_COMM_WORLD, &pending);
    }
    outbox.send(message);
  };
  auto stopping = [&] { return stop && stop->load(); };

  request({{"slot", slot}, {"request", "idle"}});
  wait_for(&pending);
  for (;;) {
    if (reply[0] < 0) {  // kStop (an idle request is never answered with kLater)
      outbox.send({{"slot", slot}, {"last", true}});
      return;
    }
    const Pair cell{reply[0], reply[1]};
    const bool prefetch = !stopping();
    if (prefetch) request({{"slot", slot}, {"request", "busy"}});
    json message = {{"slot", slot}, {"result", compute_remote(scenario, cell.first, cell.second)}};
    if (prefetch) wait_for(&pending);
    if (!prefetch || stopping() || reply[0] == kStop) {
      if (prefetch && reply[0] >= 0) message["returned"] = {reply[0], reply[1]};
      message["last"] = true;
      outbox.send(message);
      return;
    }
    if (reply[0] == kLater) {
      message["request"] = "idle";
      request(message);
      wait_for(&pending);
      continue;
    }
    outbox.send(message);  // `reply` holds the next cell
  }
}

struct Tally {
  explicit Tally(int ranks) : per_rank(static_cast<std::size_t>(ranks), 0) {}
  std::atomic<std::int64_t> ran{0}, failed{0};
  std::atomic<std::int64_t> local{0};  // computed by rank 0's threads
  std::vector<std::int64_t> per_rank;  // computed by each rank (remote ones counted by the dispatcher)
};

/// Rank 0's dispatcher thread: answers requests from the worker threads and records their rows, until every
/// slot has closed ("last"; `open` counts them) and rank 0's own threads are done.
void dispatch(WorkQueue& queue, RunWriter& writer, std::atomic<int>& open, std::size_t all_slots,
              const std::atomic<bool>& local_done, Tally& tally) {
  std::list<std::pair<std::array<std::int64_t, 2>, MPI_Request>> replies;
  Backoff backoff;
  std::vector<std::uint8_t> buffer;
  while (open > 0 || !local_done.load()) {
    if (open == 0) {  // no worker left: only rank 0's threads to wait for
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    int arrived = 0;
    MPI_Status status;
    {
      Lock lock(mpi_mutex());
      MPI_Message handle;
      MPI_Improbe(MPI_ANY_SOURCE, kTagRequest, MPI_COMM_WORLD, &arrived, &handle, &status);
      if (arrived) {
        int size = 0;
        MPI_Get_count(&status, MPI_BYTE, &size);
        buffer.resize(static_cast<std::size_t>(size));
        MPI_Mrecv(buffer.data(), size, MPI_BYTE, &handle, MPI_STATUS_IGNORE);
      }
      for (auto it = replies.begin(); it != replies.end();) {
        int done = 0;
        MPI_Test(&it->second, &done, MPI_STATUS_IGNORE);
        it = done ? replies.erase(it) : std::next(it);
      }
    }
    if (!arrived) {
      backoff.idle();
      continue;
    }
    backoff.reset();
    const json message = json::from_msgpack(buffer);
    const int source = status.MPI_SOURCE;
    if (message.contains("result")) {
      const json& r = message["result"];
      const auto cell = r.at("cell").get<std::int64_t>(), replicate = r.at("replicate").get<std::int64_t>();
      if (r.at("ok").get<bool>()) {
        try {
          writer.write_rows(cell, replicate,
                            CellRows{r.at("cells").get<std::string>(), r.at("series").get<std::string>()});
          ++tally.ran;
          ++tally.per_rank[static_cast<std::size_t>(source)];
        } catch (const WriteError&) {
          queue.halt();  // disk full: the writer keeps the error, the cell stays pending, workers are stopped
        }
      } else {
        writer.record_failure(cell, replicate,
                              "rank " + std::to_string(source) + ": " + r.at("error").get<std::string>());
        ++tally.failed;
      }
    }
    if (message.contains("returned"))
      queue.give_back(
          {message["returned"][0].get<std::int64_t>(), message["returned"][1].get<std::int64_t>()});
    if (message.contains("request")) {
      std::array<std::int64_t, 2> answer{kStop, -1};
      if (message["request"] == "busy" && queue.remaining() <= all_slots) {
        answer[0] = kLater;  // the tail: a prefetched cell could wait while another thread idles
      } else if (const auto next = queue.take()) {
        answer = {next->first, next->second};
      }
      replies.emplace_back(answer, MPI_REQUEST_NULL);
      Lock lock(mpi_mutex());
      MPI_Isend(replies.back().first.data(), 2, MPI_INT64_T, source,
                kTagWorkBase + message.at("slot").get<int>(), MPI_COMM_WORLD, &replies.back().second);
    }
    if (message.contains("last")) --open;  // after "returned": rank 0's threads see the cell or an open slot
  }
  for (auto& r : replies) wait_for(&r.second);
}

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    throw std::runtime_error("the MPI library provides thread level " + std::to_string(provided) +
                             ", gradflow needs MPI_THREAD_SERIALIZED (worker threads make MPI calls)");
  }
}

MpiSession::~MpiSession() { MPI_Finalize(); }

void MpiSession::abort(const std::string& message) const {
  std::fprintf(stderr, "gradflow: rank %d: %s; aborting all ranks\n", rank_, message.c_str());
  std::fflush(stderr);
  {
    Lock lock(mpi_mutex());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  std::abort();
}

MpiSession::Start MpiSession::agree_to_start(int code, const std::string& error,
                                             const std::string& fingerprint) const {
  Lock lock(mpi_mutex());
  int root_code = code;
  MPI_Bcast(&root_code, 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::array<char, 64> root_print{};
  std::copy_n(fingerprint.begin(), std::min(fingerprint.size(), root_print.size() - 1), root_print.begin());
  MPI_Bcast(root_print.data(), static_cast<int>(root_print.size()), MPI_CHAR, 0, MPI_COMM_WORLD);
  const std::string root_fingerprint(root_print.data());
  const bool differs = rank_ != 0 && code == 0 && root_code == 0 && fingerprint != root_fingerprint;
  int mine = differs ? 2 : code, worst = 0;
  MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  Start start;
  if (root_code != 0) {
    start.code = root_code;
    if (rank_ == 0) start.message = error;
  } else if (worst != 0) {
    start.code = worst;
    if (differs)
      start.message = "rank " + std::to_string(rank_) + ": scenario hash " + fingerprint +
                      " differs from rank 0's " + root_fingerprint +
                      ": every rank must read the same scenario file and --set overrides";
    else if (code != 0)
      start.message = "rank " + std::to_string(rank_) + ": " + error;
  }
  return start;
}

SweepSummary run_sweep_mpi(const Scenario& scenario, RunWriter* writer, const SweepOptions& options,
                           const MpiSession& session) {
  const auto start = std::chrono::steady_clock::now();
  const int rank = session.rank(), ranks = session.size();
  const int threads = options.threads > 0 ? options.threads : omp_get_num_procs();
  if (rank == 0 && !writer) throw std::logic_error("run_sweep_mpi: rank 0 needs the RunWriter");

  // Every rank's thread count and host, for rank 0's dispatch and run.json.
  std::vector<int> all_threads(static_cast<std::size_t>(ranks), 0);
  std::array<char, MPI_MAX_PROCESSOR_NAME> host{};
  std::vector<char> hosts(static_cast<std::size_t>(ranks) * host.size());
  int tag_ub_ok = 1;
  {
    Lock lock(mpi_mutex());
    int length = 0;
    MPI_Get_processor_name(host.data(), &length);
    MPI_Gather(&threads, 1, MPI_INT, all_threads.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Gather(host.data(), static_cast<int>(host.size()), MPI_CHAR, hosts.data(),
               static_cast<int>(host.size()), MPI_CHAR, 0, MPI_COMM_WORLD);
    void* value = nullptr;
    int found = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &value, &found);
    if (found && kTagWorkBase + threads - 1 > *static_cast<int*>(value)) tag_ub_ok = 0;
  }
  if (!tag_ub_ok)
    session.abort("--threads " + std::to_string(threads) + " exceeds what MPI message tags can address here");

  const int saved_eigen = Eigen::nbThreads();
  Eigen::setNbThreads(1);  // parallel across cells on every rank: never inside a cell as well
  SweepSummary summary;
  const std::atomic<bool>* stop = options.stop;

  if (rank != 0) {
#pragma omp parallel num_threads(threads)
    {
      try {
        worker_slot(scenario, omp_get_thread_num(), stop);
      } catch (const std::exception& e) {
        session.abort(std::string("internal error in a worker thread: ") + e.what());
      }
    }
    Eigen::setNbThreads(saved_eigen);
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary;
  }

  json mpi = {{"ranks", ranks}, {"threads", all_threads}, {"hosts", json::array()}};
  for (int r = 0; r < ranks; ++r) mpi["hosts"].push_back(std::string(hosts.data() + r * host.size()));
  writer->annotate("mpi", mpi);

  WorkQueue queue(pending_work(scenario, *writer, &summary.skipped), stop);
  int remote_slots = 0;
  for (int r = 1; r < ranks; ++r) remote_slots += all_threads[static_cast<std::size_t>(r)];
  Tally tally(ranks);
  std::atomic<bool> local_done{false};
  std::atomic<int> open_slots{remote_slots};
  std::thread dispatcher([&] {
    try {
      dispatch(queue, *writer, open_slots, static_cast<std::size_t>(remote_slots + threads), local_done, tally);
    } catch (const std::exception& e) {
      session.abort(std::string("dispatcher: ") + e.what());
    }
  });
  // An interrupt is announced in run.json at once, since mpirun follows its SIGTERM with SIGKILL one second
  // later, and by a thread that makes no MPI call: when a rank dies in the middle of sending its rows, the
  // dispatcher can be held inside MPI receiving the rest of that message until the SIGKILL comes.
  std::atomic<bool> returned{false};
  std::thread announcer([&] {
    while (stop && !returned.load()) {
      if (stop->load()) {
        try {
          writer->finish("interrupted");
        } catch (const WriteError&) {
          queue.halt();  // the writer keeps the error: rank 0 reports it when the ranks have stopped
        }
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
#pragma omp parallel num_threads(threads)
  {
    // Until the queue is empty and no worker slot is open: a worker that leaves returns its prefetched cell.
    Backoff backoff;
    for (;;) {
      const auto work = queue.take();
      if (!work) {
        if ((stop && stop->load()) || queue.halted() || (open_slots.load() == 0 && queue.remaining() == 0))
          break;
        backoff.idle();
        continue;
      }
      backoff.reset();
      const auto [cell, replicate] = *work;
      try {
        writer->record(cell, replicate, simulate(scenario, cell, replicate));
        ++tally.ran;
        ++tally.local;
      } catch (const WriteError&) {
        queue.halt();
      } catch (const std::exception& e) {
        writer->record_failure(cell, replicate, "rank 0: " + std::string(e.what()));
        ++tally.failed;
      }
    }
  }
  local_done.store(true);
  dispatcher.join();
  returned.store(true);
  announcer.join();
  tally.per_rank[0] = tally.local;
  mpi["cells_per_rank"] = tally.per_rank;  // this invocation's cells (not those resumed)
  writer->annotate("mpi", mpi);
  Eigen::setNbThreads(saved_eigen);
  summary.ran = tally.ran;
  summary.failed = tally.failed;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace gradflow
