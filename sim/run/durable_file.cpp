#include "durable_file.hpp"

#include "stream_csv.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace gradflow {

namespace fs = std::filesystem;

namespace detail {

bool write_all(int fd, std::string_view text) {
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) {  // no progress and no error: report it as the I/O error it is
      errno = EIO;
      return false;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

void write_atomically(const fs::path& file, const std::string& content) {
  // The one-piece case of AtomicFile: FILE.tmp (never through a symlink or FIFO), renamed over FILE.
  AtomicFile out(file, 1);  // a 1-byte buffer: the content goes to write() as it is, never copied
  out.write(content);
  out.commit();
}

namespace {

std::string lock_holder_text(int fd) {
  std::string text(512, '\0');
  const ssize_t n = ::pread(fd, text.data(), text.size() - 1, 0);
  text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
  return text;
}

}  // namespace

DirLock::DirLock(const fs::path& dir, const std::string& what) : path_(dir / ".gradflow.lock") {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) throw WriteError(path_, errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      if (e == EINTR) {
        ::close(fd);
        continue;
      }
      const std::string holder = lock_holder_text(fd);
      ::close(fd);
      if (e == EWOULDBLOCK)
        throw InputError(dir.string() + ": in use by another gradflow (" +
                         (holder.empty() ? std::string("holder not recorded yet") : holder) +
                         "); wait for it to finish, stop it, or choose another -o");
      throw WriteError(path_, e);
    }
    // Locked: make sure the file is still the one at path_ (a holder that was releasing may have removed
    // it, and a third process may already hold a new one there).
    struct stat held {}, now {};
    if (::fstat(fd, &held) == 0 && ::stat(path_.c_str(), &now) == 0 && held.st_dev == now.st_dev &&
        held.st_ino == now.st_ino) {
      fd_ = fd;
      break;
    }
    ::close(fd);
  }
  if (fd_ < 0) throw WriteError(path_, EAGAIN);
  // A lock left by a dead process is taken over here: its text is replaced by ours.
  char host[256] = "unknown";
  ::gethostname(host, sizeof host - 1);
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  const std::string text = "pid " + std::to_string(::getpid()) + " on host " + host + ", started " + when +
                           ", " + what + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) < 0) {
    // The lock is held all the same; only the holder's description could not be recorded (a full disk).
  }
}

DirLock::~DirLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still locked: a process waiting on this file retries on a new one
  ::close(fd_);
}

}  // namespace detail

WriteError::WriteError(const fs::path& file, int error)
    : std::runtime_error(file.string() + ": " + std::strerror(error)), file_(file), error_(error) {}

std::string WriteError::reason() const { return std::strerror(error_); }

void write_text_file(const fs::path& file, const std::string& text) {
  // 0666 before the umask, as std::ofstream creates files.
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw InputError(file.string() + ": cannot be written");
  const bool ok = detail::write_all(fd, text);
  const int write_errno = errno;
  const bool closed = ::close(fd) == 0;
  if (!ok) throw WriteError(file, write_errno);
  if (!closed) throw WriteError(file, errno);
}

}  // namespace gradflow
