#pragma once
// Output files read and rewritten in bounded memory: whole lines read through a fixed buffer, files replaced
// atomically from a stream of pieces, and the (cell, replicate) sort of cells.csv / series.csv done by
// reordering blocks of rows (memory O(blocks), never O(file)). Internal to the run layer: not installed.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace gradflow::detail {

/// Bytes read or written at a time by the streaming passes unless a caller says otherwise.
inline constexpr std::size_t kStreamBuffer = std::size_t{1} << 20;

/// The whole lines of a file, one at a time, through a buffer of `buffer` bytes (grown only for a line
/// longer than it). A last line without '\n' (a write cut short by a kill) is not returned, as in
/// read_complete_lines. A file that cannot be opened has no lines; a FIFO is never waited for.
class LineReader {
 public:
  LineReader(const std::filesystem::path& file, std::size_t buffer = kStreamBuffer);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  bool is_open() const { return fd_ >= 0; }
  /// The next whole line without its '\n' into `line`, and the byte offset where it starts; false at the end.
  bool next(std::string& line, std::uint64_t* offset = nullptr);

 private:
  int fd_ = -1;
  std::vector<char> buf_;
  std::size_t begin_ = 0, end_ = 0;  // unread bytes are buf_[begin_, end_)
  std::uint64_t base_ = 0;           // file offset of buf_[0]
  bool eof_ = false;
};

/// A file replaced atomically from pieces (the streaming form of write_atomically): FILE.tmp is written
/// through a buffer, commit() renames it over FILE. Until commit() FILE is untouched; a failure, or
/// destruction without commit(), removes the temporary file. Throws WriteError naming FILE.
class AtomicFile {
 public:
  AtomicFile(std::filesystem::path file, std::size_t buffer = kStreamBuffer);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view text);
  /// Appends `bytes` bytes of the open file `fd` from `offset` (pread, `buffer` bytes at a time).
  void copy(int fd, std::uint64_t offset, std::uint64_t bytes);
  void commit();

 private:
  void flush();
  [[noreturn]] void fail(int error);

  std::filesystem::path file_, tmp_;
  int fd_ = -1;
  std::string pending_;
  std::size_t buffer_;
};

/// Byte ranges of a file read back (the series rows of one cell). Throws InputError "FILE: cannot be read"
/// when it cannot be opened or a range is not there.
class RangeReader {
 public:
  /// `unused`: nothing will be read; the file is not opened (it may not exist).
  RangeReader(const std::filesystem::path& file, bool unused = false);
  ~RangeReader();
  RangeReader(const RangeReader&) = delete;
  RangeReader& operator=(const RangeReader&) = delete;
  std::string read(std::uint64_t offset, std::uint64_t bytes) const;

 private:
  std::filesystem::path file_;
  int fd_ = -1;
};

/// The number of ',' separated fields of a line (split_fields(line).size() without the copies).
std::size_t field_count(std::string_view line);

/// (cell, replicate) of a row as the completion sort orders it: row_key's values, (0, 0) or the leading
/// integer it could read when the row does not start with two integers.
std::pair<std::int64_t, std::int64_t> sort_key(const std::string& line);

/// The byte ranges of a file's rows after its header grouped into blocks: maximal runs of consecutive rows
/// whose keys are equal or (with `runs`) each the successor of the one before ((c, r + 1), or (c + 1, 0)
/// after the last replicate). A cell's series rows are written as one contiguous block, and cells finish
/// roughly in order, so a file holds few blocks: the index is O(cells), often O(threads).
struct RowBlock {
  std::pair<std::int64_t, std::int64_t> first, last;  // keys of its first and last row
  std::uint64_t offset = 0, bytes = 0;                // where its rows are in the file, '\n' included
};
struct RowIndex {
  bool readable = false;
  std::uint64_t header_bytes = 0;  // the first line with its '\n'
  std::uint64_t lines = 0;         // whole lines, header included
  std::uint64_t whole_bytes = 0;   // bytes of whole lines (a cut last line excluded)
  std::vector<RowBlock> blocks;    // in file order
};
RowIndex index_rows(const std::filesystem::path& file, std::int64_t replicates, bool runs, std::size_t buffer);

}  // namespace gradflow::detail
