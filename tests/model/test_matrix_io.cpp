#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gradflow/model/matrix_io.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using gradflow::MatrixFileError;
using gradflow::read_matrix;
using gradflow::write_matrix;

namespace {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    const auto tag = (std::uint64_t(rd()) << 32) ^ rd();
    path = fs::temp_directory_path() / ("gradflow_test_matrix_io_" + std::to_string(tag));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  fs::path write(const std::string& name, const std::string& bytes) const {
    const fs::path p = path / name;
    std::ofstream out(p, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
    return p;
  }
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Raw IEEE / two's-complement bytes in an explicit byte order, independent of the host's.
std::string encode_bits(std::uint64_t bits, int size, bool little) {
  std::string out(static_cast<std::size_t>(size), '\0');
  for (int k = 0; k < size; ++k) out[little ? k : size - 1 - k] = static_cast<char>((bits >> (8 * k)) & 0xff);
  return out;
}
std::string f8(double v, bool little = true) {
  std::uint64_t b;
  std::memcpy(&b, &v, 8);
  return encode_bits(b, 8, little);
}
std::string f4(float v, bool little = true) {
  std::uint32_t b;
  std::memcpy(&b, &v, 4);
  return encode_bits(b, 4, little);
}
std::string i8(std::int64_t v) { return encode_bits(static_cast<std::uint64_t>(v), 8, true); }
std::string i4(std::int32_t v) { return encode_bits(static_cast<std::uint32_t>(v), 4, true); }

// A .npy file built by hand: preamble for `version` (1, 2 or 3), the dict text, space padding to a
// 64-byte boundary and '\n', then `data`.
std::string npy(const std::string& dict, const std::string& data, int version = 1) {
  const std::size_t prefix = version == 1 ? 10 : 12;
  std::string header = dict;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY", 6);
  out.push_back(static_cast<char>(version));
  out.push_back('\0');
  out += encode_bits(header.size(), version == 1 ? 2 : 4, true);
  return out + header + data;
}

// Message of the MatrixFileError that reading `p` throws; fails the test if none is thrown.
std::string error_of(const fs::path& p) {
  try {
    read_matrix(p);
  } catch (const MatrixFileError& e) {
    return e.what();
  }
  FAIL("read_matrix(" << p << ") did not throw MatrixFileError");
  return {};
}

void check_error(const fs::path& p, std::initializer_list<const char*> fragments) {
  const std::string msg = error_of(p);
  INFO("message: " << msg);
  CHECK_THAT(msg, StartsWith(p.string()));
  for (const char* f : fragments) CHECK_THAT(msg, Contains(f));
}

bool bit_equal(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return false;
  return std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0;
}

// 7 x 5 standard normal, plus entries whose text or bits are easy to get wrong.
Eigen::MatrixXd random_7x5() {
  std::mt19937_64 rng(20240611);
  std::normal_distribution<double> normal(0.0, 1.0);
  Eigen::MatrixXd m(7, 5);
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i) m(i, j) = normal(rng);
  m(0, 0) = 0.1;
  m(1, 1) = -0.0;
  m(2, 2) = std::numeric_limits<double>::denorm_min();
  m(3, 3) = std::numeric_limits<double>::max();
  m(4, 4) = -std::numeric_limits<double>::min();
  m(6, 0) = 1.0 / 3.0;
  return m;
}

// 2 x 3 matrix [[1, 2, 3], [4, 5, 6]] used by the hand-made files.
Eigen::MatrixXd m23() {
  Eigen::MatrixXd m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  return m;
}

}  // namespace

TEST_CASE("write_matrix then read_matrix round-trips a 7x5 matrix bit-exactly as .npy", "[matrix_io]") {
  TempDir dir;
  const Eigen::MatrixXd m = random_7x5();
  const fs::path p = dir.path / "w.npy";
  write_matrix(p, m);
  CHECK(bit_equal(read_matrix(p), m));

  // v1.0 layout: the data starts on a 64-byte boundary and the header ends with '\n'.
  const std::string bytes = read_bytes(p);
  REQUIRE(bytes.size() > 10);
  CHECK(bytes.compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)) == 0);
  const std::size_t header_len =
      static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  CHECK((10 + header_len) % 64 == 0);
  CHECK(bytes[10 + header_len - 1] == '\n');
  CHECK(bytes.size() == 10 + header_len + 7 * 5 * 8);
  const std::string header = bytes.substr(10, header_len);
  CHECK_THAT(header,
             Contains("'descr': '<f8'") && Contains("'fortran_order': True") && Contains("'shape': (7, 5)"));
  CHECK(bytes.substr(10 + header_len, 8) == f8(m(0, 0)));  // Fortran order: column 0 first
  CHECK(bytes.substr(10 + header_len + 8, 8) == f8(m(1, 0)));
}

TEST_CASE("write_matrix then read_matrix round-trips a 7x5 matrix bit-exactly as .mtx", "[matrix_io]") {
  TempDir dir;
  const Eigen::MatrixXd m = random_7x5();
  const fs::path p = dir.path / "w.mtx";
  write_matrix(p, m);
  CHECK(bit_equal(read_matrix(p), m));
  CHECK_THAT(read_bytes(p), StartsWith("%%MatrixMarket matrix array real general\n"));
}

TEST_CASE("npy C order and Fortran order of the same 2x3 matrix read identically", "[matrix_io]") {
  TempDir dir;
  const Eigen::MatrixXd want = m23();
  std::string c_data, f_data;
  for (Eigen::Index i = 0; i < 2; ++i)
    for (Eigen::Index j = 0; j < 3; ++j) c_data += f8(want(i, j));
  for (Eigen::Index j = 0; j < 3; ++j)
    for (Eigen::Index i = 0; i < 2; ++i) f_data += f8(want(i, j));
  const auto c =
      dir.write("c.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", c_data));
  const auto f =
      dir.write("f.npy", npy("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", f_data));
  // Same content with a v2.0 preamble (4-byte header length) and the terse spelling of the dict.
  const auto v2 =
      dir.write("v2.npy", npy("{\"descr\":\"<f8\",\"fortran_order\":False,\"shape\":(2,3)}", c_data, 2));
  CHECK(read_matrix(c) == want);
  CHECK(read_matrix(f) == want);
  CHECK(read_matrix(v2) == want);
}

TEST_CASE("npy dtypes <f4, >f8, >f4, <i8, <i4 convert exactly to double", "[matrix_io]") {
  TempDir dir;
  const float vals[] = {1.5f, -0.25f, 3.0e-3f, 1.0e20f, -7.0f, 0.1f};
  Eigen::MatrixXd want_f(2, 3);
  std::string le4, be4, be8;
  for (Eigen::Index i = 0; i < 2; ++i)
    for (Eigen::Index j = 0; j < 3; ++j) {
      const float v = vals[i * 3 + j];
      want_f(i, j) = static_cast<double>(v);
      le4 += f4(v);
      be4 += f4(v, false);
    }
  const Eigen::MatrixXd want_d = m23() * 0.1;  // values whose low bits matter
  for (Eigen::Index i = 0; i < 2; ++i)
    for (Eigen::Index j = 0; j < 3; ++j) be8 += f8(want_d(i, j), false);

  SECTION("little-endian float32") {
    CHECK(read_matrix(dir.write(
              "a.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", le4))) == want_f);
  }
  SECTION("big-endian float32") {
    CHECK(read_matrix(dir.write(
              "a.npy", npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", be4))) == want_f);
  }
  SECTION("big-endian float64") {
    CHECK(bit_equal(read_matrix(dir.write("a.npy", npy("{'descr': '>f8', 'fortran_order': False, "
                                                       "'shape': (2, 3), }",
                                                       be8))),
                    want_d));
  }
  SECTION("int64 and int32") {
    const std::int64_t ints[] = {-3, 0, 9007199254740992LL};  // 2^53 is exact in double
    std::string d8, d4;
    for (auto v : ints) d8 += i8(v);
    for (auto v : {-3, 0, 2147483647}) d4 += i4(v);
    const Eigen::MatrixXd a = read_matrix(dir.write("i8.npy", npy("{'descr': '<i8', 'fortran_order': False, "
                                                                  "'shape': (1, 3), }",
                                                                  d8)));
    const Eigen::MatrixXd b = read_matrix(dir.write("i4.npy", npy("{'descr': '<i4', 'fortran_order': False, "
                                                                  "'shape': (3,), }",
                                                                  d4)));
    REQUIRE(a.rows() == 1);
    REQUIRE(a.cols() == 3);
    CHECK(a(0, 0) == -3.0);
    CHECK(a(0, 2) == 9007199254740992.0);
    REQUIRE(b.rows() == 3);
    REQUIRE(b.cols() == 1);
    CHECK(b(2, 0) == 2147483647.0);
  }
}

TEST_CASE("npy 1-D shape (4,) reads as a 4x1 column", "[matrix_io]") {
  TempDir dir;
  const auto p = dir.write("v.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }",
                                        f8(1) + f8(-2) + f8(3.5) + f8(0.25)));
  const Eigen::MatrixXd m = read_matrix(p);
  REQUIRE(m.rows() == 4);
  REQUIRE(m.cols() == 1);
  CHECK(m(0, 0) == 1.0);
  CHECK(m(1, 0) == -2.0);
  CHECK(m(2, 0) == 3.5);
  CHECK(m(3, 0) == 0.25);
}

TEST_CASE("mtx coordinate symmetric 3x3 mirrors the stored lower triangle", "[matrix_io]") {
  TempDir dir;
  const auto p = dir.write("s.mtx",
                           "%%MatrixMarket matrix coordinate real symmetric\n"
                           "% lower triangle only\n"
                           "\n"
                           "3 3 4\n"
                           "1 1 2.0\n"
                           "2 1 -1.5\n"
                           "3 2 4e-1\n"
                           "3 3 +7\n");
  Eigen::MatrixXd want(3, 3);
  want << 2.0, -1.5, 0.0, -1.5, 0.0, 0.4, 0.0, 0.4, 7.0;
  CHECK(read_matrix(p) == want);

  const auto skew = dir.write("k.mtx",
                              "%%MatrixMarket matrix coordinate integer skew-symmetric\n"
                              "2 2 1\n"
                              "2 1 5\n");
  Eigen::MatrixXd want_skew(2, 2);
  want_skew << 0, -5, 5, 0;
  CHECK(read_matrix(skew) == want_skew);

  const auto arr = dir.write("a.mtx",
                             "%%MatrixMarket matrix array real symmetric\n"
                             "2 2\n"
                             "1\n2\n3\n");  // column-major lower triangle: (1,1) (2,1) (2,2)
  Eigen::MatrixXd want_arr(2, 2);
  want_arr << 1, 2, 2, 3;
  CHECK(read_matrix(arr) == want_arr);
}

TEST_CASE("mtx coordinate pattern 3x2 gives ones at the listed entries", "[matrix_io]") {
  TempDir dir;
  const auto p = dir.write("p.mtx",
                           "%%MatrixMarket matrix coordinate pattern general\r\n"
                           "3 2 3\r\n"
                           "1 1\r\n"
                           "3 2\r\n"
                           "2 1\r\n");
  Eigen::MatrixXd want(3, 2);
  want << 1, 0, 1, 0, 0, 1;
  CHECK(read_matrix(p) == want);
}

TEST_CASE("mtx coordinate duplicates are summed", "[matrix_io]") {
  TempDir dir;
  const auto p = dir.write("d.mtx",
                           "%%MatrixMarket matrix coordinate real general\n"
                           "2 2 4\n"
                           "1 2 1.25\n"
                           "2 2 3\n"
                           "1 2 0.5\n"
                           "1 2 -0.25\n");
  Eigen::MatrixXd want(2, 2);
  want << 0, 1.5, 0, 3;
  CHECK(read_matrix(p) == want);
}

TEST_CASE("npy errors name the file and the problem", "[matrix_io]") {
  TempDir dir;
  const std::string ok_dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  std::string six;
  for (int k = 0; k < 6; ++k) six += f8(k);

  SECTION("truncated data") {
    check_error(dir.write("t.npy", npy(ok_dict, six.substr(0, 40))),
                {"truncated", "expected 48 bytes", "found 40"});
  }
  SECTION("trailing data") {
    check_error(dir.write("t.npy", npy(ok_dict, six + f8(6))), {"expected 48 bytes", "found 56"});
  }
  SECTION("bad magic") {
    std::string bytes = npy(ok_dict, six);
    bytes[1] = 'X';
    check_error(dir.write("m.npy", bytes), {"magic"});
  }
  SECTION("3-D shape") {
    check_error(
        dir.write("3d.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2, 3), }", six)),
        {"3-D", "expected shape (n,) or (rows, cols)"});
  }
  SECTION("complex descr") {
    check_error(dir.write("c.npy", npy("{'descr': '<c16', 'fortran_order': False, 'shape': (1, 3), }", six)),
                {"complex", "'<c16'", "supported"});
  }
  SECTION("bool and object descr") {
    check_error(
        dir.write("b.npy", npy("{'descr': '|b1', 'fortran_order': False, 'shape': (6,), }", "abcdef")),
        {"boolean", "'|b1'"});
    check_error(dir.write("o.npy", npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", six)),
                {"object"});
  }
  SECTION("malformed headers") {
    check_error(dir.write("h1.npy", npy("{'descr': '<f8', 'shape': (2, 3), }", six)),
                {"malformed", "'fortran_order'"});
    check_error(dir.write("h2.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (6), }", six)),
                {"malformed", "(n,)"});
    check_error(dir.write("h3.npy", npy("{'descr': '<f8', 'fortran_order': false, 'shape': (2, 3), }", six)),
                {"malformed", "True or False"});
    check_error(
        dir.write("h4.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", six)),
        {"malformed", "unexpected key 'x'"});
    check_error(dir.write("h5.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)", six)),
                {"malformed"});
  }
  SECTION("unsupported version") {
    std::string bytes = npy(ok_dict, six);
    bytes[6] = '\x04';
    check_error(dir.write("v.npy", bytes), {"version 4.0"});
  }
  SECTION("NaN entry") {
    std::string data;
    for (double v : {1.0, 2.0, 3.0, 4.0, 5.0, std::nan("")}) data += f8(v);
    check_error(dir.write("n.npy", npy(ok_dict, data)), {"row 2, col 3", "NaN", "finite"});
  }
  SECTION("infinite entry in Fortran order") {
    std::string data;
    for (double v : {1.0, -HUGE_VAL, 3.0, 4.0, 5.0, 6.0}) data += f8(v);
    check_error(dir.write("i.npy", npy("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", data)),
                {"row 2, col 1", "infinite"});
  }
}

TEST_CASE("mtx errors name the file, the line and the problem", "[matrix_io]") {
  TempDir dir;
  const std::string coord = "%%MatrixMarket matrix coordinate real general\n% comment\n2 2 2\n";

  SECTION("bad banner") {
    check_error(dir.write("b.mtx", "%%MatrixMarket matrix coordinate real\n2 2 0\n"), {"b.mtx:1:", "banner"});
    check_error(dir.write("b2.mtx", "2 2 0\n"), {"b2.mtx:1:", "not a Matrix Market file"});
  }
  SECTION("complex field") {
    check_error(dir.write("c.mtx", "%%MatrixMarket matrix coordinate complex general\n1 1 1\n1 1 1 0\n"),
                {"c.mtx:1:", "complex"});
  }
  SECTION("bad size line") {
    check_error(dir.write("s.mtx", "%%MatrixMarket matrix coordinate real general\n2 2\n"),
                {"s.mtx:2:", "size line", "'rows cols entries'"});
  }
  SECTION("NaN entry") {
    check_error(dir.write("n.mtx", coord + "1 1 1\n2 1 nan\n"), {"n.mtx:5:", "row 2, col 1", "finite"});
    check_error(dir.write("na.mtx", "%%MatrixMarket matrix array real general\n2 1\n1\ninf\n"),
                {"na.mtx:4:", "row 2, col 1", "finite"});
  }
  SECTION("non-numeric entry") {
    check_error(dir.write("x.mtx", coord + "1 1 abc\n2 2 1\n"), {"x.mtx:4:", "cannot parse 'abc'"});
    check_error(dir.write("xi.mtx", "%%MatrixMarket matrix array integer general\n1 1\n1.5\n"),
                {"xi.mtx:3:", "an integer"});
  }
  SECTION("index out of range") {
    check_error(dir.write("r.mtx", coord + "1 1 1\n3 1 2\n"), {"r.mtx:5:", "out of range", "(3, 1)"});
    check_error(dir.write("r0.mtx", coord + "0 1 1\n2 2 1\n"), {"r0.mtx:4:", "out of range"});
  }
  SECTION("too few entries") {
    check_error(dir.write("f.mtx", coord + "1 1 1\n"),
                {"f.mtx:", "too few entries", "promises 2", "found 1"});
    check_error(dir.write("fa.mtx", "%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n"),
                {"fa.mtx:", "too few entries", "expected 4"});
  }
  SECTION("too many entries") {
    check_error(dir.write("m.mtx", coord + "1 1 1\n2 2 1\n1 2 1\n"), {"m.mtx:6:", "too many entries"});
  }
  SECTION("upper triangle in a symmetric file") {
    check_error(dir.write("u.mtx", "%%MatrixMarket matrix coordinate real symmetric\n2 2 1\n1 2 1\n"),
                {"u.mtx:3:", "above the diagonal"});
  }
}

TEST_CASE("missing file, directory and unknown extension are reported", "[matrix_io]") {
  TempDir dir;
  check_error(dir.path / "absent.npy", {"no such file"});
  check_error(dir.path / "absent.mtx", {"no such file"});
  fs::create_directory(dir.path / "d.npy");
  check_error(dir.path / "d.npy", {"is a directory"});
  const auto txt = dir.write("w.txt", "1 2 3\n");
  check_error(txt, {"'.txt'", ".npy", ".mtx"});
  try {
    write_matrix(dir.path / "w.csv", Eigen::MatrixXd::Zero(2, 2));
    FAIL("write_matrix accepted a .csv path");
  } catch (const MatrixFileError& e) {
    CHECK_THAT(std::string(e.what()), StartsWith((dir.path / "w.csv").string()) && Contains(".npy"));
  }
  CHECK_FALSE(fs::exists(dir.path / "w.csv"));
}

TEST_CASE("the caller's shape check sees the declared size before anything is read or allocated", "[matrix_io]") {
  TempDir dir;
  std::vector<std::pair<Eigen::Index, Eigen::Index>> asked;
  const gradflow::ShapeCheck only_8x4 = [&](Eigen::Index rows, Eigen::Index cols) {
    asked.emplace_back(rows, cols);
    return rows == 8 && cols == 4 ? std::string() : "U: holds " + std::to_string(rows) + " x " + std::to_string(cols);
  };
  auto shape_error = [&](const fs::path& p) -> std::string {
    try {
      read_matrix(p, only_8x4);
    } catch (const gradflow::MatrixShapeError& e) {
      return e.what();
    }
    FAIL("read_matrix(" << p << ") did not throw MatrixShapeError");
    return {};
  };
  SECTION("a .npy header: refused on its shape although its data is truncated") {
    const auto p = dir.write("big.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }",
                                            f8(1.0)));
    CHECK(shape_error(p) == "U: holds 1000000 x 1000000");
    // Without the caller's check the same file is refused for its length.
    check_error(p, {"truncated data", "expected 8000000000000 bytes"});
  }
  SECTION("a 1-D .npy is asked as a column") {
    shape_error(dir.write("v.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                                       f8(1.0) + f8(2.0) + f8(3.0))));
    REQUIRE(asked.size() == 1);
    CHECK(asked[0] == std::make_pair(Eigen::Index(3), Eigen::Index(1)));
  }
  SECTION("a coordinate .mtx whose size line is plausible for the file but not for the caller") {
    const auto p = dir.write("c.mtx", "%%MatrixMarket matrix coordinate real general\n20000 20000 1\n1 1 1.5\n");
    CHECK(shape_error(p) == "U: holds 20000 x 20000");
    CHECK(gradflow::read_matrix_file(p).is_sparse());  // kept sparse without a check: 20000 x 20000 stays cheap
  }
  SECTION("an accepted shape reads exactly as without a check") {
    Eigen::MatrixXd m(8, 4);
    for (Eigen::Index k = 0; k < m.size(); ++k) m.data()[k] = 0.5 * double(k) - 3.0;
    for (const char* name : {"u.npy", "u.mtx"}) {
      write_matrix(dir.path / name, m);
      CHECK(bit_equal(read_matrix(dir.path / name, only_8x4), m));
      CHECK(bit_equal(read_matrix(dir.path / name), m));
    }
    CHECK(asked.size() == 2);
  }
}

TEST_CASE("mtx files with fewer lines than the values their size line promises are refused before allocating",
          "[matrix_io]") {
  TempDir dir;
  // Each is refused at the size line (line 2), not after filling a dense matrix of the declared size.
  check_error(dir.write("sym.mtx", "%%MatrixMarket matrix array real symmetric\n15000 15000\n1.5\n"),
              {"sym.mtx:2:", "too few entries", "expected 112507500 values", "symmetric", "found 1 lines"});
  check_error(dir.write("skew.mtx", "%%MatrixMarket matrix array real skew-symmetric\n4 4\n1\n2\n3\n4\n5\n"),
              {"skew.mtx:2:", "expected 6 values", "found 5 lines"});
  check_error(dir.write("dense.mtx", "%%MatrixMarket matrix array real general\n1000000 1000000\n1\n2"),
              {"dense.mtx:2:", "expected 1000000000000 values", "found 2 lines"});
  check_error(dir.write("coord.mtx", "%%MatrixMarket matrix coordinate pattern general\n9 9 1000000000000\n1 1\n"),
              {"coord.mtx:2:", "promises 1000000000000", "found 1 lines"});
  // Exactly enough lines (the last without its newline) is not refused early.
  CHECK(read_matrix(dir.write("ok.mtx", "%%MatrixMarket matrix array real skew-symmetric\n3 3\n1\n2\n3")).rows() == 3);
}
