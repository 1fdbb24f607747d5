#include "gradflow/model/config.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace gradflow {

std::string to_string(Precision p) { return p == Precision::float32 ? "float" : "double"; }
std::string to_string(InputKind k) {
  return k == InputKind::none ? "none" : k == InputKind::gaussian ? "gaussian" : "file";
}
std::string to_string(InitState s) {
  return s == InitState::zero ? "zero" : s == InitState::gaussian ? "gaussian" : "file";
}
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
  if (name == "file") return InputKind::file;
  unknown("input kind", name, "none, gaussian or file");
}
InitState parse_init_state(const std::string& name) {
  if (name == "zero") return InitState::zero;
  if (name == "gaussian") return InitState::gaussian;
  if (name == "file") return InitState::file;
  unknown("initial state", name, "zero, gaussian or file");
}
LossKind parse_loss_kind(const std::string& name) {
  if (name == "final_state") return LossKind::final_state;
  if (name == "random") return LossKind::random;
  unknown("loss kind", name, "final_state or random");
}

double expected_nonzeros(const Config& config) {
  const auto& sc = config.spectrum;
  const double n = static_cast<double>(config.network.units);
  switch (sc.kind) {
    case SpectrumKind::sparse:
      return sc.sparse.density > 0.0 ? sc.sparse.density * n * n : static_cast<double>(sc.sparse.in_degree) * n;
    case SpectrumKind::chain:
      return std::max(0.0, n - 1.0);
    case SpectrumKind::file:
      if (sc.sparse_matrix) return static_cast<double>(sc.sparse_matrix->nonZeros());
      if (sc.matrix) return static_cast<double>((sc.matrix->array() != 0.0).count());
      return n * n;
    default:
      return n * n;
  }
}

Storage expected_storage(const Config& config) {
  return choose_storage(config.spectrum.storage, config.network.units, expected_nonzeros(config));
}

double cell_memory_bytes(const Config& c) {
  const double scalar = c.network.precision == Precision::float32 ? 4.0 : 8.0;
  const double n = double(c.network.units), b = double(c.network.batch), t = double(c.network.steps);
  const double dim = double(c.input.dim);
  double w_bytes;
  if (expected_storage(c) == Storage::sparse) {
    // W (double values + int indices), then one more copy at a time: the run's precision (forward) or W^T
    // (backward); building a random sparse W holds its row arrays and the matrix once more.
    const double nnz = expected_nonzeros(c);
    // + the Krylov basis of the radius solve (ncv = 100); two above the dense fallback, where the confirming
    // run can go beside the first.
    const double bases = c.network.units > kSparseDenseFallbackMax ? 2.0 : 1.0;
    w_bytes = nnz * (12.0 + 12.0) + 8.0 * n + bases * 8.0 * n * 101.0;
  } else {
    // gated cells: G stacked blocks (minimalrnn: U_h and U_z). Every copy a cell holds at once, 8 N^2
    // bytes each: W as read or drawn, its cached base, the cell's scaled copy and the engine's packed copy
    // (in float: 4 N^2 packed plus the 4 N^2 float W it is packed from).
    const double blocks = c.network.cell == CellKind::minimalrnn ? 2.0 : double(gate_blocks(c.network.cell));
    w_bytes = blocks * 32.0 * n * n;
  }
  double inputs = 0.0;
  if (c.input.kind == InputKind::file) inputs = 8.0 * double(c.analysis.burn_in + c.network.steps) * dim;
  const double lyapunov = 2.0 * n * b * double(c.analysis.lyapunov) * scalar;  // Lyapunov tangent frames
  const double tape_rows = tape_rows_per_unit(c.network.cell);
  // The tape is its own mapping, rounded up to 2 MiB (huge pages).
  const double huge_page = 2.0 * 1024.0 * 1024.0;
  const double tape = std::ceil(tape_rows * n * b * t * scalar / huge_page) * huge_page;
  return tape + w_bytes + 8.0 * n * b * scalar + n * dim * (8.0 + scalar) + inputs + lyapunov;
}

std::string to_string(CellKind k) {
  switch (k) {
    case CellKind::vanilla: return "vanilla";
    case CellKind::residual: return "residual";
    case CellKind::leaky: return "leaky";
    case CellKind::gru: return "gru";
    case CellKind::lstm: return "lstm";
    case CellKind::minimalrnn: return "minimalrnn";
  }
  return "unknown";
}

CellKind parse_cell_kind(const std::string& name) {
  if (name == "vanilla") return CellKind::vanilla;
  if (name == "residual") return CellKind::residual;
  if (name == "leaky") return CellKind::leaky;
  if (name == "gru") return CellKind::gru;
  if (name == "lstm") return CellKind::lstm;
  if (name == "minimalrnn") return CellKind::minimalrnn;
  throw std::invalid_argument("unknown cell \"" + name + "\": expected vanilla, residual, leaky, gru, lstm or minimalrnn");
}

bool is_gated(CellKind k) { return k == CellKind::gru || k == CellKind::lstm || k == CellKind::minimalrnn; }
int gate_blocks(CellKind k) { return k == CellKind::gru ? 3 : k == CellKind::lstm ? 4 : 1; }
int tape_rows_per_unit(CellKind k) {
  switch (k) {
    case CellKind::gru: return 4;
    case CellKind::lstm: return 6;
    case CellKind::minimalrnn: return 2;
    case CellKind::vanilla:
    case CellKind::residual:
    case CellKind::leaky: return 1;
  }
  return 1;
}
int candidate_block(CellKind k) { return k == CellKind::gru || k == CellKind::lstm ? 2 : 0; }
int memory_block(CellKind k) {
  return k == CellKind::gru || k == CellKind::lstm ? 1 : k == CellKind::minimalrnn ? 0 : -1;
}
int state_vectors(CellKind k) { return k == CellKind::lstm ? 2 : 1; }

}  // namespace gradflow
