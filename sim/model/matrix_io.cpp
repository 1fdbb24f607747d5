#include "gradflow/model/matrix_io.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <unistd.h>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <Eigen/SparseCore>

namespace gradflow {
namespace detail {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSupported = "supported extensions: .npy (NumPy), .mtx (Matrix Market)";

enum class Format { npy, mtx };

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw MatrixFileError(file.string() + ": " + what);
}

[[noreturn]] void fail_at(const fs::path& file, std::size_t line, const std::string& what) {
  throw MatrixFileError(file.string() + ":" + std::to_string(line) + ": " + what);
}

Format format_of(const fs::path& file) {
  std::string ext = file.extension().string();
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (ext == ".npy") return Format::npy;
  if (ext == ".mtx") return Format::mtx;
  fail(file, "unknown extension '" + file.extension().string() + "'; " + std::string(kSupported));
}

/// Physical memory in bytes (0 when unknown); fuzz builds cap it under libFuzzer's RSS limit.
double machine_memory() {
  double memory = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
#ifdef GRADFLOW_FUZZ_MEMORY_CAP
  memory = std::min(memory, double(GRADFLOW_FUZZ_MEMORY_CAP));
#endif
  return memory > 0 ? memory : 0.0;
}

std::string slurp(const fs::path& file) {
  std::error_code ec;
  const fs::file_status st = fs::status(file, ec);
  if (st.type() == fs::file_type::not_found) fail(file, "no such file");
  if (ec) fail(file, "cannot be read: " + ec.message());
  if (st.type() == fs::file_type::directory) fail(file, "is a directory, expected a matrix file");
  // A device or FIFO (/dev/zero, a pipe) would never end or never fill; only regular files are matrices.
  if (st.type() != fs::file_type::regular) fail(file, "is not a regular file, expected a matrix file");
  // The bytes are held while parsing: a file larger than memory (e.g. a sparse file of 1 TB) is refused unread.
  const std::uintmax_t size = fs::file_size(file, ec);
  if (!ec && machine_memory() > 0 && double(size) > 0.5 * machine_memory())
    fail(file, "is " + std::to_string(size / 1000000000u) + " GB, more than half of this machine's memory; expected a "
               "matrix file that fits in memory");

  errno = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> fp(std::fopen(file.c_str(), "rb"), &std::fclose);
  if (!fp) fail(file, std::string("cannot be read: ") + (errno ? std::strerror(errno) : "open failed"));
  std::string bytes;
  char buf[1 << 16];
  for (;;) {
    const std::size_t got = std::fread(buf, 1, sizeof buf, fp.get());
    bytes.append(buf, got);
    if (got < sizeof buf) break;
  }
  if (std::ferror(fp.get()))
    fail(file, std::string("cannot be read: ") + (errno ? std::strerror(errno) : "read error"));
  return bytes;
}

// Entries are reported 1-based in both formats so messages are unambiguous whatever the source.
// One pass over the stored entries (column-major): a declared shape with a zero dimension, e.g. 3e18 x 0, holds
// nothing and costs nothing (a row-by-row loop spun 3e18 times on it; found by fuzz_mtx).
void require_finite(const fs::path& file, const Eigen::MatrixXd& m) {
  const double* x = m.data();
  for (Eigen::Index k = 0; k < m.size(); ++k)
    if (!std::isfinite(x[k])) {
      const Eigen::Index i = k % m.rows(), j = k / m.rows();
      fail(file, "entry (row " + std::to_string(i + 1) + ", col " + std::to_string(j + 1) + ") is " +
                     (std::isnan(x[k]) ? "NaN" : "infinite") +
                     "; expected finite values only (rows and columns counted from 1)");
    }
}

/// The caller's verdict on the declared shape, before anything of that size is allocated (a 60-byte .mtx
/// declaring 15000 x 15000 would otherwise cost 1.8 GB before the caller sees the shape).
void check_declared_shape(const ShapeCheck& expected, std::uint64_t rows, std::uint64_t cols) {
  if (!expected) return;
  const std::string why = expected(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  if (!why.empty()) throw MatrixShapeError(why);
}

// ---------------------------------------------------------------------------------------------------
// NumPy .npy

// The header is a Python dict literal, e.g. "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }".
// numpy writes it in one fixed layout; the scanner accepts the literal grammar that layout belongs to
// (any whitespace, either quote, optional trailing commas) and nothing else.
class HeaderScanner {
 public:
  HeaderScanner(const fs::path& file, std::string_view text) : file_(file), text_(text) {}

  struct Header {
    std::string descr;
    bool fortran_order = false;
    std::vector<std::uint64_t> shape;
  };

  Header parse() {
    Header h;
    bool have_descr = false, have_order = false, have_shape = false;
    skip_ws();
    expect('{', "'{' opening the header dict");
    for (;;) {
      skip_ws();
      if (peek() == '}') break;
      const std::string key = string_literal("a quoted key");
      skip_ws();
      expect(':', "':' after key '" + key + "'");
      skip_ws();
      if (key == "descr") {
        if (have_descr) bad("duplicate key 'descr'");
        if (peek() == '[')
          bad("structured dtype (a list 'descr') is not supported; expected a plain numeric dtype");
        h.descr = string_literal("a quoted dtype string for 'descr'");
        have_descr = true;
      } else if (key == "fortran_order") {
        if (have_order) bad("duplicate key 'fortran_order'");
        h.fortran_order = boolean();
        have_order = true;
      } else if (key == "shape") {
        if (have_shape) bad("duplicate key 'shape'");
        h.shape = tuple();
        have_shape = true;
      } else {
        bad("unexpected key '" + key + "'; expected only 'descr', 'fortran_order' and 'shape'");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') bad("expected ',' or '}' after the value of '" + key + "'");
    }
    ++pos_;  // '}'
    skip_ws();
    if (pos_ != text_.size()) bad("unexpected text after the closing '}'");
    if (!have_descr || !have_order || !have_shape) {
      std::string missing;
      if (!have_descr) missing += " 'descr'";
      if (!have_order) missing += " 'fortran_order'";
      if (!have_shape) missing += " 'shape'";
      bad("missing key(s)" + missing + "; expected 'descr', 'fortran_order' and 'shape'");
    }
    return h;
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail(file_, "malformed .npy header at character " + std::to_string(pos_) + ": " + what);
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }

  void skip_ws() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  void expect(char c, const std::string& what) {
    if (peek() != c) bad("expected " + what);
    ++pos_;
  }

  std::string string_literal(const std::string& what) {
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected " + what);
    const std::size_t start = ++pos_;
    while (pos_ < text_.size() && text_[pos_] != q) {
      if (text_[pos_] == '\\' || text_[pos_] == '\n') bad("unsupported character in string literal");
      ++pos_;
    }
    if (pos_ >= text_.size()) bad("unterminated string literal");
    return std::string(text_.substr(start, pos_++ - start));
  }

  bool boolean() {
    if (text_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (text_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    bad("expected True or False for 'fortran_order'");
  }

  std::uint64_t integer() {
    const char* first = text_.data() + pos_;
    const char* last = text_.data() + text_.size();
    std::uint64_t v = 0;
    const auto [ptr, ec] = std::from_chars(first, last, v);
    if (ec == std::errc::result_out_of_range) bad("shape dimension too large");
    if (ec != std::errc() || ptr == first) bad("expected a non-negative integer in 'shape'");
    pos_ += static_cast<std::size_t>(ptr - first);
    if (peek() == 'L') ++pos_;  // Python 2 long literal, found in files written by old numpy
    return v;
  }

  // Python tuple of non-negative ints: "()", "(n,)", "(a, b)", "(a, b,)". "(n)" is an int, not a tuple.
  std::vector<std::uint64_t> tuple() {
    expect('(', "a tuple for 'shape'");
    std::vector<std::uint64_t> dims;
    bool trailing_comma = false;
    for (;;) {
      skip_ws();
      if (peek() == ')') break;
      dims.push_back(integer());
      skip_ws();
      trailing_comma = false;
      if (peek() == ',') {
        ++pos_;
        trailing_comma = true;
      } else if (peek() != ')') {
        bad("expected ',' or ')' in 'shape'");
      }
    }
    if (dims.size() == 1 && !trailing_comma) bad("'shape' (n) is not a tuple; expected (n,)");
    ++pos_;  // ')'
    return dims;
  }

  const fs::path& file_;
  std::string_view text_;
  std::size_t pos_ = 0;
};

struct Dtype {
  bool little_endian;
  bool is_float;
  std::size_t size;
};

Dtype parse_descr(const fs::path& file, const std::string& descr) {
  const std::string supported = "supported: '<f8', '>f8', '<f4', '>f4', '<i8', '>i8', '<i4', '>i4'";
  if (descr.size() == 3 && (descr[0] == '<' || descr[0] == '>') && (descr[1] == 'f' || descr[1] == 'i') &&
      (descr[2] == '4' || descr[2] == '8'))
    return Dtype{descr[0] == '<', descr[1] == 'f', static_cast<std::size_t>(descr[2] - '0')};
  const char kind =
      descr.size() >= 2 && (descr[0] == '<' || descr[0] == '>' || descr[0] == '|' || descr[0] == '=')
          ? descr[1]
          : (descr.empty() ? '\0' : descr[0]);
  std::string what;
  switch (kind) {
    case 'c':
      what = "complex";
      break;
    case 'b':
      what = "boolean";
      break;
    case 'O':
      what = "object";
      break;
    case 'U':
    case 'S':
    case 'a':
      what = "string";
      break;
    default:
      what = "unsupported";
      break;
  }
  fail(file, what + " dtype '" + descr + "' cannot be read as a real matrix; " + supported);
}

std::uint64_t read_le(const unsigned char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t k = 0; k < n; ++k) v |= std::uint64_t(p[k]) << (8 * k);
  return v;
}

// Decoding from explicit byte order keeps the reader independent of the host's endianness.
double decode(const unsigned char* p, const Dtype& t) {
  unsigned char b[8];
  for (std::size_t k = 0; k < t.size; ++k) b[k] = t.little_endian ? p[k] : p[t.size - 1 - k];
  const std::uint64_t bits = read_le(b, t.size);
  if (t.is_float && t.size == 8) {
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  if (t.is_float) {
    const auto b32 = static_cast<std::uint32_t>(bits);
    float f;
    std::memcpy(&f, &b32, sizeof f);
    return static_cast<double>(f);
  }
  if (t.size == 8) {
    std::int64_t i;
    std::memcpy(&i, &bits, sizeof i);
    return static_cast<double>(i);  // exact for |i| <= 2^53
  }
  const auto b32 = static_cast<std::uint32_t>(bits);
  std::int32_t i;
  std::memcpy(&i, &b32, sizeof i);
  return static_cast<double>(i);
}

Eigen::MatrixXd read_npy(const fs::path& file, const std::string& bytes, const ShapeCheck& expected_shape) {
  static constexpr char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 6 || bytes.compare(0, 6, kMagic, 6) != 0)
    fail(file, "not a NumPy .npy file: expected the magic string \\x93NUMPY at byte 0");
  if (bytes.size() < 10)
    fail(file, "truncated .npy preamble: expected at least 10 bytes, found " + std::to_string(bytes.size()));
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned major = u[6], minor = u[7];
  if (major < 1 || major > 3 || minor != 0)
    fail(file, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                   "; expected 1.0, 2.0 or 3.0");
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  const std::size_t prefix = 8 + len_bytes;
  if (bytes.size() < prefix)
    fail(file, "truncated .npy preamble: expected " + std::to_string(prefix) + " bytes, found " +
                   std::to_string(bytes.size()));
  const std::uint64_t header_len = read_le(u + 8, len_bytes);
  if (bytes.size() - prefix < header_len)
    fail(file, "truncated .npy header: expected " + std::to_string(header_len) + " header bytes, found " +
                   std::to_string(bytes.size() - prefix));
  const std::string_view header(bytes.data() + prefix, static_cast<std::size_t>(header_len));
  for (const char ch : header)
    if (static_cast<unsigned char>(ch) >= 0x80 || (ch < 0x20 && ch != '\n' && ch != '\t' && ch != '\r'))
      fail(file, "malformed .npy header: expected printable ASCII text");

  const HeaderScanner::Header h = HeaderScanner(file, header).parse();
  const Dtype dtype = parse_descr(file, h.descr);

  std::uint64_t rows = 0, cols = 1;
  if (h.shape.size() == 1) {
    rows = h.shape[0];
  } else if (h.shape.size() == 2) {
    rows = h.shape[0];
    cols = h.shape[1];
  } else {
    fail(file, std::to_string(h.shape.size()) +
                   "-D array cannot be read as a matrix; expected shape (n,) or "
                   "(rows, cols)");
  }
  const std::uint64_t max_index = static_cast<std::uint64_t>(std::numeric_limits<Eigen::Index>::max());
  const std::uint64_t max_bytes = std::numeric_limits<std::uint64_t>::max() / dtype.size;
  if (rows > max_index || cols > max_index || (cols != 0 && rows > max_bytes / cols))
    fail(file, "shape (" + std::to_string(rows) + ", " + std::to_string(cols) + ") is too large");
  check_declared_shape(expected_shape, rows, cols);
  const std::uint64_t expected = rows * cols * dtype.size;
  const std::uint64_t found = bytes.size() - prefix - header_len;
  if (found != expected)
    fail(file, std::string(found < expected ? "truncated data" : "trailing bytes after the data") +
                   ": expected " + std::to_string(expected) + " bytes (" + std::to_string(rows) + " x " +
                   std::to_string(cols) + " of '" + h.descr + "'), found " + std::to_string(found));

  Eigen::MatrixXd m(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  const unsigned char* data = u + prefix + header_len;
  // One pass over the stored elements in file order: a shape with a zero dimension, e.g. (1e16, 0), holds
  // nothing and costs nothing (a row-by-row loop spun 1e16 times on it; found by fuzz_npy).
  for (std::uint64_t k = 0; k < rows * cols; ++k) {
    const std::uint64_t i = h.fortran_order ? k % rows : k / cols;
    const std::uint64_t j = h.fortran_order ? k / rows : k % cols;
    m(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = decode(data + k * dtype.size, dtype);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------------
// Matrix Market .mtx

enum class MtxField { real, integer, pattern };
enum class MtxSymmetry { general, symmetric, skew };

std::vector<std::string_view> tokens(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// Reads the text line by line, remembering 1-based line numbers for messages.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {}

  bool next(std::string_view& line) {
    if (pos_ >= text_.size()) return false;
    std::size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    line = text_.substr(pos_, end - pos_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = end + 1;
    ++number_;
    return true;
  }

  // Next line that holds data: comments ('%') and blank lines are skipped.
  bool next_data(std::string_view& line) {
    while (next(line)) {
      const std::size_t first = line.find_first_not_of(" \t");
      if (first != std::string_view::npos && line[first] != '%') return true;
    }
    return false;
  }

  std::size_t number() const { return number_; }
  /// Bytes consumed so far (the start of the next line).
  std::size_t offset() const { return pos_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t number_ = 0;
};

bool parse_u64(std::string_view tok, std::uint64_t& v) {
  const auto [ptr, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  return ec == std::errc() && ptr == tok.data() + tok.size();
}

// from_chars is locale-independent and correctly rounded; it does not take a leading '+', which the
// Matrix Market format (C scanf conventions) allows.
bool parse_double(std::string_view tok, double& v) {
  if (tok.size() > 1 && tok[0] == '+' && tok[1] != '-' && tok[1] != '+') tok.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  return ec == std::errc() && ptr == tok.data() + tok.size();
}

bool parse_int_value(std::string_view tok, double& v) {
  if (tok.size() > 1 && tok[0] == '+' && tok[1] != '-' && tok[1] != '+') tok.remove_prefix(1);
  std::int64_t i = 0;
  const auto [ptr, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), i);
  if (ec != std::errc() || ptr != tok.data() + tok.size()) return false;
  v = static_cast<double>(i);
  return true;
}

std::string entry_name(std::uint64_t i, std::uint64_t j) {
  return "(" + std::to_string(i) + ", " + std::to_string(j) + ")";
}

/// A parsed .mtx file: array files (and coordinate files unless `sparse` was asked for) as `dense`, coordinate
/// files read with `sparse` as triplets (duplicates not yet summed), so that no dense N x N is formed.
struct MtxData {
  Eigen::Index rows = 0, cols = 0;
  bool coordinate = false;
  Eigen::MatrixXd dense;
  std::vector<Eigen::Triplet<double>> triplets;
};

MtxData read_mtx(const fs::path& file, const std::string& bytes, bool sparse, const ShapeCheck& expected_shape) {
  LineReader in(bytes);
  std::string_view line;
  const std::string banner_form =
      "expected '%%MatrixMarket matrix array|coordinate real|integer|pattern "
      "general|symmetric|skew-symmetric'";
  if (!in.next(line)) fail_at(file, 1, "empty file; " + banner_form);
  const auto b = tokens(line);
  if (b.empty() || lower(b[0]) != "%%matrixmarket")
    fail_at(file, 1, "not a Matrix Market file: " + banner_form);
  if (b.size() != 5) fail_at(file, 1, "bad banner: " + banner_form);
  if (lower(b[1]) != "matrix")
    fail_at(file, 1, "bad banner: object '" + std::string(b[1]) + "' is not supported; " + banner_form);
  const std::string format = lower(b[2]), field_s = lower(b[3]), symmetry_s = lower(b[4]);
  if (format != "array" && format != "coordinate")
    fail_at(file, 1, "bad banner: format '" + std::string(b[2]) + "'; expected array or coordinate");
  const bool coordinate = format == "coordinate";

  MtxField field;
  if (field_s == "real")
    field = MtxField::real;
  else if (field_s == "integer")
    field = MtxField::integer;
  else if (field_s == "pattern")
    field = MtxField::pattern;
  else if (field_s == "complex")
    fail_at(file, 1, "complex matrices are not supported; expected field real, integer or pattern");
  else
    fail_at(file, 1, "bad banner: field '" + std::string(b[3]) + "'; expected real, integer or pattern");
  if (field == MtxField::pattern && !coordinate)
    fail_at(file, 1, "bad banner: field pattern requires coordinate format");

  MtxSymmetry symmetry;
  if (symmetry_s == "general")
    symmetry = MtxSymmetry::general;
  else if (symmetry_s == "symmetric")
    symmetry = MtxSymmetry::symmetric;
  else if (symmetry_s == "skew-symmetric")
    symmetry = MtxSymmetry::skew;
  else if (symmetry_s == "hermitian")
    fail_at(file, 1, "hermitian matrices are not supported; expected general, symmetric or skew-symmetric");
  else
    fail_at(
        file, 1,
        "bad banner: symmetry '" + std::string(b[4]) + "'; expected general, symmetric or skew-symmetric");
  if (symmetry == MtxSymmetry::skew && field == MtxField::pattern)
    fail_at(file, 1, "bad banner: a pattern matrix cannot be skew-symmetric");

  const std::string size_form = coordinate ? "'rows cols entries'" : "'rows cols'";
  if (!in.next_data(line)) fail_at(file, in.number() + 1, "missing size line; expected " + size_form);
  const std::size_t size_line = in.number();
  const auto s = tokens(line);
  std::uint64_t rows = 0, cols = 0, nnz = 0;
  if (s.size() != (coordinate ? 3u : 2u) || !parse_u64(s[0], rows) || !parse_u64(s[1], cols) ||
      (coordinate && !parse_u64(s[2], nnz)))
    fail_at(file, size_line,
            "bad size line '" + std::string(line) + "'; expected " + size_form + " as non-negative integers");
  const auto max_index = static_cast<std::uint64_t>(std::numeric_limits<Eigen::Index>::max());
  if (rows > max_index || cols > max_index || (cols != 0 && rows > max_index / cols))
    fail_at(file, size_line,
            "matrix size " + std::to_string(rows) + " x " + std::to_string(cols) + " is too large");
  if (symmetry != MtxSymmetry::general && rows != cols)
    fail_at(file, size_line,
            "a " + symmetry_s + " matrix must be square; size line says " + std::to_string(rows) + " x " +
                std::to_string(cols));

  // Refuse before allocating (found by fuzzing: "3 2222122222222" asked for 53 TB): first the shape the caller
  // needs, then the file's length, then memory.
  check_declared_shape(expected_shape, rows, cols);
  // Stored values: an array file lists every value of its stored triangle, a coordinate file its nnz entries,
  // one per line; a file with fewer lines left is refused before the values' storage is allocated.
  std::uint64_t values = nnz;
  if (!coordinate) {
    // Column-major; symmetric stores the lower triangle with diagonal, skew the strict lower triangle (rows *
    // cols <= 2^63 was checked, so these do not overflow).
    values = rows * cols;
    if (symmetry == MtxSymmetry::symmetric) values = rows * (rows + 1) / 2;
    if (symmetry == MtxSymmetry::skew) values = rows == 0 ? 0 : rows * (rows - 1) / 2;
  }
  const std::string_view rest = std::string_view(bytes).substr(std::min(bytes.size(), in.offset()));
  const auto lines_left = static_cast<std::uint64_t>(std::count(rest.begin(), rest.end(), '\n')) +
                          (!rest.empty() && rest.back() != '\n' ? 1u : 0u);
  if (lines_left < values)
    fail_at(file, size_line,
            "too few entries: " +
                (coordinate ? "the size line promises " + std::to_string(values)
                            : "expected " + std::to_string(values) + " values for a " + std::to_string(rows) + " x " +
                                  std::to_string(cols) + " " + symmetry_s + " array") +
                ", found " + std::to_string(lines_left) + " lines after the size line (one entry per line)");
  // The dense result must fit in memory. A coordinate file read sparse needs its triplets (24 bytes, twice for
  // symmetric storage) and the compressed matrix (12 bytes per nonzero and 8 per row) instead of the dense N x N.
  const bool as_triplets = coordinate && sparse;
  const double stored = double(nnz) * (symmetry == MtxSymmetry::general ? 1.0 : 2.0);
  const double needed = as_triplets ? 36.0 * stored + 8.0 * (double(rows) + 1.0) : 8.0 * double(rows) * double(cols);
  const double memory = machine_memory();
  if (memory > 0 && needed > 0.9 * memory)
    fail_at(file, size_line,
            "matrix size " + std::to_string(rows) + " x " + std::to_string(cols) + " needs " +
                std::to_string(static_cast<long long>(needed / 1e9)) + (as_triplets ? " GB as a sparse matrix, more than " : " GB as a dense matrix, more than ") +
                "this machine's memory");
  MtxData out;
  out.rows = static_cast<Eigen::Index>(rows);
  out.cols = static_cast<Eigen::Index>(cols);
  out.coordinate = coordinate;
  if (!as_triplets) out.dense = Eigen::MatrixXd::Zero(out.rows, out.cols);
  Eigen::MatrixXd& m = out.dense;
  const double mirror = symmetry == MtxSymmetry::skew ? -1.0 : 1.0;

  auto value_of = [&](std::string_view tok, std::uint64_t i, std::uint64_t j) {
    double v = 0.0;
    const bool ok = field == MtxField::integer ? parse_int_value(tok, v) : parse_double(tok, v);
    if (!ok)
      fail_at(file, in.number(),
              "entry " + entry_name(i, j) + ": cannot parse '" + std::string(tok) + "' as " +
                  (field == MtxField::integer ? "an integer" : "a real number"));
    if (!std::isfinite(v))
      fail_at(file, in.number(),
              "entry (row " + std::to_string(i) + ", col " + std::to_string(j) + ") is " + std::string(tok) +
                  "; expected finite values only");
    return v;
  };

  if (!coordinate) {
    const std::uint64_t expected = values;
    std::uint64_t i = 0, j = 0, count = 0;
    auto first_row = [&](std::uint64_t col) {
      return symmetry == MtxSymmetry::general ? 0 : (symmetry == MtxSymmetry::symmetric ? col : col + 1);
    };
    i = first_row(0);
    while (in.next_data(line)) {
      const auto t = tokens(line);
      if (count == expected)
        fail_at(file, in.number(),
                "too many entries: expected " + std::to_string(expected) + " values for a " +
                    std::to_string(rows) + " x " + std::to_string(cols) + " " + symmetry_s + " array");
      if (t.size() != 1)
        fail_at(file, in.number(),
                "expected one value per line in array format, found " + std::to_string(t.size()) + " fields");
      const double v = value_of(t[0], i + 1, j + 1);
      const auto ii = static_cast<Eigen::Index>(i), jj = static_cast<Eigen::Index>(j);
      m(ii, jj) = v;
      if (symmetry != MtxSymmetry::general && i != j) m(jj, ii) = mirror * v;
      ++count;
      if (++i >= rows) i = first_row(++j);
    }
    if (count < expected)
      fail_at(file, in.number() + 1,
              "too few entries: expected " + std::to_string(expected) + " values for a " +
                  std::to_string(rows) + " x " + std::to_string(cols) + " " + symmetry_s + " array, found " +
                  std::to_string(count) + " before the end of file");
    return out;
  }

  const std::size_t want_fields = field == MtxField::pattern ? 2 : 3;
  const std::string entry_form = field == MtxField::pattern ? "'row col'" : "'row col value'";
  std::uint64_t count = 0;
  while (in.next_data(line)) {
    const auto t = tokens(line);
    if (count == nnz)
      fail_at(file, in.number(), "too many entries: the size line promises " + std::to_string(nnz));
    if (t.size() != want_fields)
      fail_at(file, in.number(),
              "expected " + entry_form + " (1-based), found " + std::to_string(t.size()) + " fields");
    std::uint64_t i = 0, j = 0;
    if (!parse_u64(t[0], i) || !parse_u64(t[1], j))
      fail_at(file, in.number(),
              "cannot parse indices '" + std::string(t[0]) + " " + std::string(t[1]) +
                  "'; expected positive integers");
    if (i < 1 || i > rows || j < 1 || j > cols)
      fail_at(file, in.number(),
              "index out of range: entry " + entry_name(i, j) + " outside 1.." + std::to_string(rows) +
                  " x 1.." + std::to_string(cols));
    if (symmetry != MtxSymmetry::general && j > i)
      fail_at(file, in.number(),
              "entry " + entry_name(i, j) + " lies above the diagonal; a " + symmetry_s +
                  " file stores only the lower triangle (row >= col)");
    if (symmetry == MtxSymmetry::skew && i == j)
      fail_at(file, in.number(),
              "diagonal entry " + entry_name(i, j) +
                  " in a skew-symmetric file; its diagonal is zero and not stored");
    const double v = field == MtxField::pattern ? 1.0 : value_of(t[2], i, j);
    const auto ii = static_cast<Eigen::Index>(i - 1), jj = static_cast<Eigen::Index>(j - 1);
    if (as_triplets) {
      out.triplets.emplace_back(ii, jj, v);  // duplicates are summed by setFromTriplets
      if (symmetry != MtxSymmetry::general && i != j) out.triplets.emplace_back(jj, ii, mirror * v);
    } else {
      m(ii, jj) += v;  // duplicates are summed
      if (symmetry != MtxSymmetry::general && i != j) m(jj, ii) += mirror * v;
    }
    ++count;
  }
  if (count < nnz)
    fail_at(file, in.number() + 1,
            "too few entries: the size line promises " + std::to_string(nnz) + ", found " +
                std::to_string(count) + " before the end of file");
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Writers

void write_bytes(const fs::path& file, const std::string& bytes) {
  errno = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> fp(std::fopen(file.c_str(), "wb"), &std::fclose);
  if (!fp)
    fail(file,
         std::string("cannot be opened for writing: ") + (errno ? std::strerror(errno) : "open failed"));
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), fp.get()) == bytes.size();
  std::FILE* raw = fp.release();
  if (std::fclose(raw) != 0 || !ok)
    fail(file, std::string("write failed: ") + (errno ? std::strerror(errno) : "I/O error"));
}

std::string npy_bytes(const Eigen::MatrixXd& m) {
  std::string dict = "{'descr': '<f8', 'fortran_order': True, 'shape': (" + std::to_string(m.rows()) + ", " +
                     std::to_string(m.cols()) + "), }";
  // v1.0: magic(6) + version(2) + uint16 length(2) + dict padded with spaces and ended by '\n' so the
  // data starts on a 64-byte boundary.
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>((dict.size() >> 8) & 0xff));
  out += dict;
  out.reserve(out.size() + static_cast<std::size_t>(m.size()) * 8);
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i) {
      std::uint64_t bits;
      const double v = m(i, j);
      std::memcpy(&bits, &v, sizeof bits);
      for (int k = 0; k < 8; ++k) out.push_back(static_cast<char>((bits >> (8 * k)) & 0xff));
    }
  return out;
}

std::string mtx_bytes(const Eigen::MatrixXd& m) {
  std::string out = "%%MatrixMarket matrix array real general\n% written by gradflow\n" +
                    std::to_string(m.rows()) + " " + std::to_string(m.cols()) + "\n";
  char buf[40];
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i) {
      std::snprintf(buf, sizeof buf, "%.17g\n", m(i, j));
      out += buf;
    }
  return out;
}

}  // namespace
}  // namespace detail

Eigen::MatrixXd parse_matrix(const std::string& bytes, const std::filesystem::path& name, const ShapeCheck& expected) {
  const detail::Format format = detail::format_of(name);
  Eigen::MatrixXd m = format == detail::Format::npy ? detail::read_npy(name, bytes, expected)
                                                    : detail::read_mtx(name, bytes, /*sparse=*/false, expected).dense;
  detail::require_finite(name, m);
  return m;
}

Eigen::MatrixXd read_matrix(const std::filesystem::path& file, const ShapeCheck& expected) {
  detail::format_of(file);  // an unknown extension is reported before reading anything
  return parse_matrix(detail::slurp(file), file, expected);
}

MatrixFile read_matrix_file(const std::filesystem::path& file, const ShapeCheck& expected) {
  const detail::Format format = detail::format_of(file);
  const std::string bytes = detail::slurp(file);
  MatrixFile out;
  if (format == detail::Format::npy) {
    out.dense = detail::read_npy(file, bytes, expected);
    detail::require_finite(file, out.dense);
    return out;
  }
  detail::MtxData d = detail::read_mtx(file, bytes, /*sparse=*/true, expected);
  if (!d.coordinate) {
    out.dense = std::move(d.dense);
    detail::require_finite(file, out.dense);  // array values were checked while parsing; kept for symmetry
    return out;
  }
  auto w = std::make_shared<SparseMatrix>(d.rows, d.cols);
  w->setFromTriplets(d.triplets.begin(), d.triplets.end());  // sums duplicates, as the dense reader does
  w->makeCompressed();
  // Every entry was checked while parsing, but duplicates are summed, and a sum can overflow.
  for (Eigen::Index i = 0; i < w->outerSize(); ++i)
    for (SparseMatrix::InnerIterator it(*w, i); it; ++it)
      if (!std::isfinite(it.value()))
        detail::fail(file, "entry (row " + std::to_string(it.row() + 1) + ", col " + std::to_string(it.col() + 1) +
                               ") is " + (std::isnan(it.value()) ? "NaN" : "infinite") +
                               ": its duplicate entries, which are summed, overflow; expected a finite sum");
  out.sparse = std::move(w);
  return out;
}

void write_matrix(const std::filesystem::path& file, const Eigen::MatrixXd& m) {
  const detail::Format format = detail::format_of(file);
  detail::write_bytes(file, format == detail::Format::npy ? detail::npy_bytes(m) : detail::mtx_bytes(m));
}

}  // namespace gradflow
