// libFuzzer target: the npy reader. Malformed bytes must come out as MatrixFileError and nothing else.
#include <cstdint>
#include <string>

#include "gradflow/model/matrix_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    gradflow::parse_matrix(bytes, "fuzz.npy");
  } catch (const gradflow::MatrixFileError&) {
  }
  return 0;
}
