#pragma once
// The durability protocol of the output files: whole rows appended with write(2) and cut back on failure,
// whole files replaced atomically (FILE.tmp renamed over FILE). Internal to the run layer: not installed.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>

#include <filesystem>
#include <string>
#include <string_view>

#include "gradflow/run/output.hpp"

namespace gradflow::detail {

/// Writes all of `text` to fd at its current offset, retrying short writes; false (errno set) on failure.
bool write_all(int fd, std::string_view text);

/// Replaces `file` by `content` atomically: FILE.tmp is written, then renamed over FILE. On failure the
/// temporary file is removed (it may hold the space the next attempt needs) and FILE is untouched. Throws
/// WriteError naming `file`.
void write_atomically(const std::filesystem::path& file, const std::string& content);

/// The advisory lock of an output directory: OUTDIR/.gradflow.lock, held with flock(2) for the life of the
/// object, holding "pid host start-time command" of its holder. The kernel drops a flock when its process
/// dies (even by SIGKILL), so the lock of a dead process is simply taken over; the file is removed when the
/// holder releases it, and a lock whose file was removed or replaced under us is retried on the new file.
/// Throws InputError naming the holder when another process holds it (exit 2), WriteError when the file
/// cannot be created.
class DirLock {
 public:
  DirLock(const std::filesystem::path& dir, const std::string& what);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

/// An output CSV opened for appending whole rows with write(2): no stream buffer that could write part
/// of a row later (at close, or once space is freed), and the OS error of a failure is at hand.
class AppendFile {
 public:
  AppendFile(std::filesystem::path path, bool truncate) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
                             (truncate ? O_TRUNC : 0), 0644);
    if (fd_ < 0) throw WriteError(path_, errno);
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      const int e = errno;
      ::close(fd_);
      throw WriteError(path_, e);
    }
    size_ = st.st_size;
  }
  ~AppendFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  /// Size of the file after the last successful append: only whole rows before it.
  off_t size() const { return size_; }
  /// Appends `text` whole, or cuts the file back to size() and throws WriteError.
  void append(const std::string& text) {
    if (write_all(fd_, text)) {
      size_ += static_cast<off_t>(text.size());
      return;
    }
    const int e = errno;
    rollback(size_);
    throw WriteError(path_, e);
  }
  /// Cuts the file back to `size` bytes (a row of a cell that did not finish). Shrinking needs no space.
  void rollback(off_t size) {
    if (::ftruncate(fd_, size) == 0) size_ = size;
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  off_t size_ = 0;
};

}  // namespace gradflow::detail
