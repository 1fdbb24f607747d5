// Distributed sweeps: rank 0 dispatches (cell, replicate) pairs on request and writes every row; every
// rank's threads compute. Transport is MPI point-to-point (tags below); payloads are MessagePack
// (nlohmann::json::to_msgpack), so there is no hand-written wire format.
#include "gradflow/mpi_sweep.hpp"

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

#include "gradflow/cell.hpp"

namespace gradflow {

namespace {

using nlohmann::json;
using Pair = std::pair<std::int64_t, std::int64_t>;

// Worker thread -> rank 0: MessagePack {"slot": s, "leaving": bool, "result": {cell, replicate, ok, cells,
// series | error}} (no result in a slot's first request).
constexpr int kTagRequest = 1;
// Rank 0 -> worker thread s, tag kTagWorkBase + s: int64[2] {cell, replicate}; cell < 0 means "no more".
constexpr int kTagWorkBase = 16;

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
    if (stop_ && stop_->load()) return std::nullopt;
    const std::size_t i = next_.fetch_add(1);
    if (i >= work_.size()) return std::nullopt;
    return work_[i];
  }

 private:
  std::vector<Pair> work_;
  const std::atomic<bool>* stop_;
  std::atomic<std::size_t> next_{0};
};

/// One cell on a worker, as the message rank 0 records.
json compute_remote(const Scenario& scenario, std::int64_t cell, std::int64_t replicate) {
  json r = {{"cell", cell}, {"replicate", replicate}};
  try {
    const CellResult result = simulate_cell(scenario.cell_config(cell), cell, replicate);
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

/// A worker thread: request, compute, send the rows with the next request, until rank 0 says "no more"
/// or this rank is told to stop (then the cell in flight is sent with "leaving").
void worker_slot(const Scenario& scenario, int slot, const std::atomic<bool>* stop) {
  json result;
  for (;;) {
    const bool leaving = stop && stop->load();
    json message = {{"slot", slot}, {"leaving", leaving}};
    if (!result.is_null()) message["result"] = std::move(result);
    result = json();
    const std::vector<std::uint8_t> bytes = json::to_msgpack(message);
    std::array<std::int64_t, 2> next{-1, -1};
    MPI_Request receive = MPI_REQUEST_NULL, send = MPI_REQUEST_NULL;
    {
      Lock lock(mpi_mutex());
      // The reply's receive is posted before the request leaves, so rank 0's reply never waits on us.
      if (!leaving) MPI_Irecv(next.data(), 2, MPI_INT64_T, 0, kTagWorkBase + slot, MPI_COMM_WORLD, &receive);
      MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, 0, kTagRequest, MPI_COMM_WORLD,
                &send);
    }
    wait_for(&send);
    if (leaving) return;
    wait_for(&receive);
    if (next[0] < 0) return;
    result = compute_remote(scenario, next[0], next[1]);
  }
}

struct Tally {
  explicit Tally(int ranks) : per_rank(static_cast<std::size_t>(ranks), 0) {}
  std::atomic<std::int64_t> ran{0}, failed{0};
  std::atomic<std::int64_t> local{0};  // computed by rank 0's threads
  std::vector<std::int64_t> per_rank;  // computed by each rank (remote ones counted by the dispatcher)
};

/// Rank 0's dispatcher thread: answers requests from `remote_slots` worker threads until each has been told
/// "no more" (or left), and records their rows. Also announces an interrupt in run.json at once, since
/// mpirun follows its SIGTERM with SIGKILL one second later (odls_base_sigkill_timeout).
void dispatch(WorkQueue& queue, RunWriter& writer, int remote_slots, const std::atomic<bool>* stop,
              const std::atomic<bool>& local_done, Tally& tally) {
  int open = remote_slots;
  bool announced = false;
  std::list<std::pair<std::array<std::int64_t, 2>, MPI_Request>> replies;
  Backoff backoff;
  std::vector<std::uint8_t> buffer;
  while (open > 0 || !local_done.load()) {
    if (stop && stop->load() && !announced) {
      writer.finish("interrupted");
      announced = true;
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
    if (message.contains("result")) {
      const json& r = message["result"];
      const auto cell = r.at("cell").get<std::int64_t>(), replicate = r.at("replicate").get<std::int64_t>();
      if (r.at("ok").get<bool>()) {
        writer.write_rows(cell, replicate,
                          CellRows{r.at("cells").get<std::string>(), r.at("series").get<std::string>()});
        ++tally.ran;
        ++tally.per_rank[static_cast<std::size_t>(status.MPI_SOURCE)];
      } else {
        writer.record_failure(
            cell, replicate,
            "rank " + std::to_string(status.MPI_SOURCE) + ": " + r.at("error").get<std::string>());
        ++tally.failed;
      }
    }
    if (message.at("leaving").get<bool>()) {
      --open;
      continue;
    }
    const int slot = message.at("slot").get<int>();
    const auto next = queue.take();
    replies.emplace_back(std::array<std::int64_t, 2>{next ? next->first : -1, next ? next->second : -1},
                         MPI_REQUEST_NULL);
    {
      Lock lock(mpi_mutex());
      MPI_Isend(replies.back().first.data(), 2, MPI_INT64_T, status.MPI_SOURCE, kTagWorkBase + slot,
                MPI_COMM_WORLD, &replies.back().second);
    }
    if (!next) --open;
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
    summary.interrupted = stop && stop->load();
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
  std::thread dispatcher([&] {
    try {
      dispatch(queue, *writer, remote_slots, stop, local_done, tally);
    } catch (const std::exception& e) {
      session.abort(std::string("dispatcher: ") + e.what());
    }
  });
#pragma omp parallel num_threads(threads)
  {
    while (const auto work = queue.take()) {
      const auto [cell, replicate] = *work;
      try {
        writer->record(cell, replicate, simulate_cell(scenario.cell_config(cell), cell, replicate));
        ++tally.ran;
        ++tally.local;
      } catch (const std::exception& e) {
        writer->record_failure(cell, replicate, "rank 0: " + std::string(e.what()));
        ++tally.failed;
      }
    }
  }
  local_done.store(true);
  dispatcher.join();
  tally.per_rank[0] = tally.local;
  mpi["cells_per_rank"] = tally.per_rank;  // this invocation's cells (not those resumed)
  writer->annotate("mpi", mpi);
  Eigen::setNbThreads(saved_eigen);
  summary.ran = tally.ran;
  summary.failed = tally.failed;
  summary.interrupted = stop && stop->load() && writer->done_count() < writer->total();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace gradflow
