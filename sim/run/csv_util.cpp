#include "csv_util.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <charconv>
#include <fstream>
#include <sstream>

namespace gradflow::detail {

std::string join_fields(const std::vector<std::string>& fields) {
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) line += ',';
    line += fields[i];
  }
  return line;
}

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> f;
  std::size_t start = 0;
  for (std::size_t comma; (comma = line.find(',', start)) != std::string::npos; start = comma + 1)
    f.push_back(line.substr(start, comma - start));
  f.push_back(line.substr(start));
  return f;
}

bool row_key(const std::string& line, std::int64_t* cell, std::int64_t* replicate) {
  const char* p = line.data();
  const char* end = p + line.size();
  auto r1 = std::from_chars(p, end, *cell);
  if (r1.ec != std::errc() || r1.ptr == end || *r1.ptr != ',') return false;
  auto r2 = std::from_chars(r1.ptr + 1, end, *replicate);
  return r2.ec == std::errc() && (r2.ptr == end || *r2.ptr == ',');
}

std::vector<std::string> read_complete_lines(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  return lines;
}

std::optional<std::size_t> column_index(const std::vector<std::string>& header, const std::string& name) {
  const auto it = std::find(header.begin(), header.end(), name);
  if (it == header.end()) return std::nullopt;
  return static_cast<std::size_t>(it - header.begin());
}

nlohmann::json value_json(const Value& value) {
  struct Visitor {
    nlohmann::json operator()(std::monostate) const { return nullptr; }
    nlohmann::json operator()(bool b) const { return b; }
    nlohmann::json operator()(std::int64_t i) const { return i; }
    nlohmann::json operator()(double d) const { return d; }
    nlohmann::json operator()(const std::string& s) const { return s; }
  };
  return std::visit(Visitor{}, value);
}


std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace gradflow::detail
