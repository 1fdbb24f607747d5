#pragma once
// Helpers for tests that run the gradflow executable (directly or under mpirun) and compare run directories.

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace gradflow::test {

namespace fs = std::filesystem;

// Exit codes of the gradflow executable (sim/main.cpp, README "Exit codes").
inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitWriteFailed = 74;  // EX_IOERR: an output file could not be written
inline constexpr int kExitInterrupted = 130;

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> lines;
  std::stringstream s(read_file(p));
  for (std::string l; std::getline(s, l);) lines.push_back(l);
  return lines;
}

inline std::size_t row_count(const fs::path& p) { return fs::exists(p) ? lines_of(p).size() : 0; }

inline std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> f;
  std::stringstream s(line);
  for (std::string x; std::getline(s, x, ',');) f.push_back(x);
  if (!line.empty() && line.back() == ',') f.push_back("");
  return f;
}

/// cells.csv without its wall-time columns (`seconds`, and any `seconds_*`): the only fields that depend on
/// the machine's load.
inline std::vector<std::string> cells_without_timing(const fs::path& p) {
  auto lines = lines_of(p);
  if (lines.empty()) return lines;
  const auto header = split_csv(lines[0]);
  std::vector<bool> timing(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) timing[i] = header[i].rfind("seconds", 0) == 0;
  for (auto& l : lines) {
    const auto f = split_csv(l);
    std::string joined;
    bool first = true;
    for (std::size_t i = 0; i < f.size(); ++i) {
      if (i < timing.size() && timing[i]) continue;
      joined += (first ? "" : ",") + f[i];
      first = false;
    }
    l = joined;
  }
  return lines;
}

/// run.json without what depends on when, where and how it ran (times, threads, ranks, merge sources).
inline nlohmann::json run_json_without_volatile(const fs::path& dir) {
  auto j = nlohmann::json::parse(read_file(dir / "run.json"));
  for (const char* k : {"start_time", "end_time", "wall_seconds", "threads", "mpi", "merged_from"})
    j.erase(k);
  return j;
}

/// Every file under dir/heatmaps, by name.
inline std::vector<std::pair<std::string, std::string>> heatmaps_of(const fs::path& dir) {
  std::vector<std::pair<std::string, std::string>> files;
  if (!fs::is_directory(dir / "heatmaps")) return files;
  for (const auto& e : fs::directory_iterator(dir / "heatmaps"))
    files.emplace_back(e.path().filename().string(), read_file(e.path()));
  std::sort(files.begin(), files.end());
  return files;
}

/// Starts `program args...` with stdout to /dev/null and stderr to `err` (or /dev/null).
inline pid_t spawn(const std::string& program, const std::vector<std::string>& args,
                   const fs::path& err = {}) {
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // own process group: a test's signals reach only what it started
    const int devnull = open("/dev/null", O_WRONLY);
    const int errfd = err.empty() ? devnull : open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(devnull, STDOUT_FILENO);
    dup2(errfd, STDERR_FILENO);
    std::vector<char*> argv{const_cast<char*>(program.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(program.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

/// Exit code, or 128 + signal.
inline int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

/// Runs the gradflow executable under test (GRADFLOW_CLI) with `args`, stderr to `err` (or /dev/null); its
/// exit code, or 128 + signal.
inline int gradflow_run(const std::vector<std::string>& args, const fs::path& err = {}) {
  return wait_exit(spawn(GRADFLOW_CLI, args, err));
}

/// Waits until `file` has at least `lines` lines (or 60 s pass).
inline void wait_for_lines(const fs::path& file, std::size_t lines) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (row_count(file) < lines && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

/// A fresh temporary directory, removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& prefix) {
    static int counter = 0;
    path = fs::temp_directory_path() / (prefix + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return path / name;
  }
};

/// A tmpfs mounted on a fresh directory, unmounted (lazily, so that it always goes) at scope exit.
class Tmpfs {
 public:
  explicit Tmpfs(fs::path dir) : dir_(std::move(dir)) {
    fs::create_directories(dir_);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=64k,mode=0755") == 0)
      mounted_ = true;
    else
      error_ = std::strerror(errno);
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  /// New size (bytes, rounded up to pages by the kernel); fails when smaller than what is in use.
  bool resize(std::size_t bytes) { return remount(0, "size=" + std::to_string(bytes)); }
  /// Read-only (true) or writable again.
  bool read_only(bool on) { return remount(on ? MS_RDONLY : 0, ""); }

 private:
  bool remount(unsigned long flags, const std::string& options) {
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT | flags, options.c_str()) == 0;
  }

  fs::path dir_;
  bool mounted_ = false;
  std::string error_;
};

}  // namespace gradflow::test
