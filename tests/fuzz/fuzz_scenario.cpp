// libFuzzer target: the scenario loader with full validation. Bad input must come out as InputError and
// nothing else: any other exception, crash, leak or hang is a finding.
#include <cstdint>
#include <string>

#include "gradflow/run/scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    // Relative matrix paths resolve in a folder that does not exist: the fuzzer reads no real files.
    gradflow::parse_scenario(text, "fuzz.toml", {}, "/nonexistent-gradflow-fuzz");
  } catch (const gradflow::InputError&) {
  }
  return 0;
}
