#include "durable_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gradflow {

namespace fs = std::filesystem;

namespace detail {

bool write_all(int fd, const std::string& text) {
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
  const fs::path tmp = file.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw WriteError(file, errno);  // named by the file meant, not its temporary
  const bool ok = write_all(fd, content);
  const int write_errno = errno;
  const bool closed = ::close(fd) == 0;  // NFS and quotas report some failures only at close
  const int close_errno = errno;
  if (!ok || !closed) {
    ::unlink(tmp.c_str());
    throw WriteError(file, !ok ? write_errno : close_errno);
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw WriteError(file, e);
  }
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
