#include "gradflow/engine/cell.hpp"

#include <stdexcept>

#include "cells.hpp"

namespace gradflow {

template <class Scalar>
std::unique_ptr<Cell<Scalar>> make_cell(const Model& model, Pass pass, Eigen::Index columns) {
  if (columns < 1) throw std::invalid_argument("make_cell: columns must satisfy columns >= 1");
  switch (model.cell) {
    case CellKind::vanilla:
    case CellKind::residual:
    case CellKind::leaky:
      return detail::make_carry_cell<Scalar>(model, pass, columns);
    case CellKind::gru:
      return detail::make_gru_cell<Scalar>(model, pass, columns);
    case CellKind::lstm:
      return detail::make_lstm_cell<Scalar>(model, pass, columns);
    case CellKind::minimalrnn:
      return detail::make_minimalrnn_cell<Scalar>(model, pass, columns);
  }
  throw std::invalid_argument("make_cell: unknown cell kind");
}

template std::unique_ptr<Cell<float>> make_cell<float>(const Model&, Pass, Eigen::Index);
template std::unique_ptr<Cell<double>> make_cell<double>(const Model&, Pass, Eigen::Index);

}  // namespace gradflow
