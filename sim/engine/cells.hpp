#pragma once
// The cell kinds the engine knows, one factory each (make_cell in cell.cpp picks one). Internal to the engine.

#include <memory>

#include <Eigen/Core>

#include "gradflow/engine/cell.hpp"

namespace gradflow::detail {

/// vanilla, residual and leaky: h_t = c h_{t-1} + s f(W h_{t-1} + U x_t + b) (carry_cell.cpp).
template <class Scalar>
std::unique_ptr<Cell<Scalar>> make_carry_cell(const Model& model, Pass pass, Eigen::Index columns);

/// torch.nn.GRU's cell (gru_cell.cpp).
template <class Scalar>
std::unique_ptr<Cell<Scalar>> make_gru_cell(const Model& model, Pass pass, Eigen::Index columns);

/// torch.nn.LSTM's cell, state (h, c) (lstm_cell.cpp).
template <class Scalar>
std::unique_ptr<Cell<Scalar>> make_lstm_cell(const Model& model, Pass pass, Eigen::Index columns);

/// Chen, Pennington & Schoenholz's minimalRNN (minimalrnn_cell.cpp).
template <class Scalar>
std::unique_ptr<Cell<Scalar>> make_minimalrnn_cell(const Model& model, Pass pass, Eigen::Index columns);

}  // namespace gradflow::detail
