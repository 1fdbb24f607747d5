#include "stream_csv.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "gradflow/run/output.hpp"
#include "csv_util.hpp"
#include "durable_file.hpp"

namespace gradflow {

namespace fs = std::filesystem;

namespace detail {

LineReader::LineReader(const fs::path& file, std::size_t buffer) : buf_(std::max<std::size_t>(buffer, 1)) {
  fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
}

LineReader::~LineReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool LineReader::next(std::string& line, std::uint64_t* offset) {
  if (fd_ < 0) return false;
  std::size_t scanned = begin_;  // bytes before it hold no '\n'
  for (;;) {
    const auto* nl = static_cast<const char*>(std::memchr(buf_.data() + scanned, '\n', end_ - scanned));
    if (nl) {
      const auto at = static_cast<std::size_t>(nl - buf_.data());
      line.assign(buf_.data() + begin_, at - begin_);
      if (offset) *offset = base_ + begin_;
      begin_ = at + 1;
      return true;
    }
    if (eof_) return false;
    // Keep the unfinished line at the front; grow only when it fills the whole buffer.
    const std::size_t kept = end_ - begin_;
    std::memmove(buf_.data(), buf_.data() + begin_, kept);
    base_ += begin_;
    begin_ = 0;
    end_ = kept;
    scanned = kept;
    if (end_ == buf_.size()) buf_.resize(2 * buf_.size());
    ssize_t n;
    do n = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    while (n < 0 && errno == EINTR);
    if (n <= 0) eof_ = true;  // the end, or an error (EAGAIN of an empty FIFO): what was read is what there is
    else end_ += static_cast<std::size_t>(n);
  }
}

AtomicFile::AtomicFile(fs::path file, std::size_t buffer)
    : file_(std::move(file)), tmp_(file_.string() + ".tmp"), buffer_(std::max<std::size_t>(buffer, 1)) {
  // As write_atomically: never through a symlink planted at FILE.tmp, never blocking on a FIFO there.
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  if (fd_ < 0) throw WriteError(file_, errno);  // named by the file meant, not its temporary
  pending_.reserve(buffer_);
}

AtomicFile::~AtomicFile() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(tmp_.c_str());
}

void AtomicFile::fail(int error) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());  // it may hold the space the next attempt needs
  throw WriteError(file_, error);
}

void AtomicFile::flush() {
  if (pending_.empty()) return;
  if (!write_all(fd_, pending_)) fail(errno);
  pending_.clear();
}

void AtomicFile::write(std::string_view text) {
  if (pending_.size() + text.size() > buffer_) flush();
  if (text.size() >= buffer_) {
    if (!write_all(fd_, text)) fail(errno);
  } else {
    pending_.append(text);
  }
}

void AtomicFile::copy(int fd, std::uint64_t offset, std::uint64_t bytes) {
  flush();
  std::string chunk;
  while (bytes > 0) {
    chunk.resize(static_cast<std::size_t>(std::min<std::uint64_t>(bytes, buffer_)));
    const ssize_t n = ::pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(n < 0 ? errno : EIO);  // the file shrank under us: an I/O error of this rewrite
    chunk.resize(static_cast<std::size_t>(n));
    if (!write_all(fd_, chunk)) fail(errno);
    offset += static_cast<std::uint64_t>(n);
    bytes -= static_cast<std::uint64_t>(n);
  }
}

void AtomicFile::commit() {
  flush();
  const bool closed = ::close(fd_) == 0;  // NFS and quotas report some failures only at close
  const int close_errno = errno;
  fd_ = -1;
  if (!closed) {
    ::unlink(tmp_.c_str());
    throw WriteError(file_, close_errno);
  }
  if (::rename(tmp_.c_str(), file_.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp_.c_str());
    throw WriteError(file_, e);
  }
}

RangeReader::RangeReader(const fs::path& file, bool unused) : file_(file) {
  if (unused) return;
  fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) throw InputError(file.string() + ": cannot be read");
}

RangeReader::~RangeReader() {
  if (fd_ >= 0) ::close(fd_);
}

std::string RangeReader::read(std::uint64_t offset, std::uint64_t bytes) const {
  std::string text(static_cast<std::size_t>(bytes), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::pread(fd_, text.data() + got, text.size() - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw InputError(file_.string() + ": cannot be read (changed while it was read?)");
    got += static_cast<std::size_t>(n);
  }
  return text;
}

std::size_t field_count(std::string_view line) {
  return static_cast<std::size_t>(std::count(line.begin(), line.end(), ',')) + 1;
}

std::pair<std::int64_t, std::int64_t> sort_key(const std::string& line) {
  std::int64_t cell = 0, replicate = 0;
  row_key(line, &cell, &replicate);  // a row it cannot read keeps what it read: the in-memory sort's order
  return {cell, replicate};
}

RowIndex index_rows(const fs::path& file, std::int64_t replicates, bool runs, std::size_t buffer) {
  RowIndex index;
  LineReader in(file, buffer);
  index.readable = in.is_open();
  std::string line;
  std::uint64_t at = 0;
  while (in.next(line, &at)) {
    const std::uint64_t bytes = line.size() + 1;
    index.whole_bytes = at + bytes;
    if (index.lines++ == 0) {
      index.header_bytes = bytes;
      continue;
    }
    const auto key = sort_key(line);
    if (!index.blocks.empty()) {
      RowBlock& b = index.blocks.back();
      const auto& last = b.last;
      const auto next = last.second + 1 < replicates ? std::make_pair(last.first, last.second + 1)
                                                     : std::make_pair(last.first + 1, std::int64_t{0});
      if (key == last || (runs && key == next)) {
        b.last = key;
        b.bytes += bytes;
        continue;
      }
    }
    index.blocks.push_back(RowBlock{key, key, at, bytes});
  }
  return index;
}

}  // namespace detail

void sort_rows(const fs::path& file, std::int64_t replicates, std::size_t buffer) {
  using detail::RowBlock;
  // Blocks sorted by (first key, file offset) give the stable sort of the rows when no two blocks' key
  // ranges interleave; runs of successive keys almost never do (only a row repeated elsewhere makes
  // them), and blocks of one key never can: the exact index is the fallback.
  auto by_key = [](const RowBlock& a, const RowBlock& b) {
    return std::tie(a.first, a.offset) < std::tie(b.first, b.offset);
  };
  auto disjoint = [](const std::vector<RowBlock>& sorted) {
    for (std::size_t i = 1; i < sorted.size(); ++i)
      if (!(sorted[i - 1].last < sorted[i].first)) return false;
    return true;
  };
  detail::RowIndex index = detail::index_rows(file, replicates, true, buffer);
  if (index.lines < 2) return;
  std::stable_sort(index.blocks.begin(), index.blocks.end(), by_key);
  if (!disjoint(index.blocks)) {
    index = detail::index_rows(file, replicates, false, buffer);
    std::stable_sort(index.blocks.begin(), index.blocks.end(), by_key);
  }
  // Already in order and whole: the rewrite would copy the file as it is.
  bool in_order = true;
  for (std::size_t i = 1; i < index.blocks.size() && in_order; ++i)
    in_order = index.blocks[i - 1].offset < index.blocks[i].offset;
  std::error_code ec;
  if (in_order && fs::file_size(file, ec) == index.whole_bytes && !ec) return;

  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw WriteError(file, errno);
  try {
    detail::AtomicFile out(file, buffer);
    out.copy(fd, 0, index.header_bytes);
    // Blocks that follow each other in the file too are copied as one range.
    std::uint64_t from = 0, bytes = 0;
    for (const RowBlock& b : index.blocks) {
      if (bytes > 0 && from + bytes == b.offset) {
        bytes += b.bytes;
        continue;
      }
      if (bytes > 0) out.copy(fd, from, bytes);
      from = b.offset;
      bytes = b.bytes;
    }
    if (bytes > 0) out.copy(fd, from, bytes);
    out.commit();
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

}  // namespace gradflow
