#include "gradflow/config.hpp"

#include <stdexcept>

namespace gradflow {

std::string to_string(Precision p) { return p == Precision::float32 ? "float" : "double"; }
std::string to_string(InputKind k) { return k == InputKind::none ? "none" : "gaussian"; }
std::string to_string(InitState s) { return s == InitState::zero ? "zero" : "gaussian"; }
std::string to_string(LossKind k) { return k == LossKind::final_state ? "final_state" : "random"; }

namespace {
[[noreturn]] void unknown(const std::string& what, const std::string& name, const std::string& accepted) {
  throw std::invalid_argument("unknown " + what + " \"" + name + "\": expected " + accepted);
}
}  // namespace

Precision parse_precision(const std::string& name) {
  if (name == "float" || name == "float32") return Precision::float32;
  if (name == "double" || name == "float64") return Precision::float64;
  unknown("precision", name, "float or double");
}
InputKind parse_input_kind(const std::string& name) {
  if (name == "none") return InputKind::none;
  if (name == "gaussian") return InputKind::gaussian;
  unknown("input kind", name, "none or gaussian");
}
InitState parse_init_state(const std::string& name) {
  if (name == "zero") return InitState::zero;
  if (name == "gaussian") return InitState::gaussian;
  unknown("initial state", name, "zero or gaussian");
}
LossKind parse_loss_kind(const std::string& name) {
  if (name == "final_state") return LossKind::final_state;
  if (name == "random") return LossKind::random;
  unknown("loss kind", name, "final_state or random");
}

}  // namespace gradflow
