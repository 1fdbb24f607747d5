#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include <Eigen/Core>

#include "gradflow/model/sparse.hpp"

namespace gradflow {

/// A matrix file that cannot be used: the message names the file and the problem.
class MatrixFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A matrix file whose declared size its caller refused (see ShapeCheck): what() is the caller's message alone,
/// which knows the key and the shape it needs.
class MatrixShapeError : public MatrixFileError {
 public:
  using MatrixFileError::MatrixFileError;
};

/// The caller's expectation of a file's shape, asked with the size the file declares (the .npy header, the .mtx
/// size line; a 1-D .npy of n values is n x 1) before anything is allocated: returns what is wrong with
/// rows x cols, or "" when the shape is acceptable. A non-empty answer is thrown as MatrixShapeError.
using ShapeCheck = std::function<std::string(Eigen::Index rows, Eigen::Index cols)>;

/// Reads a dense matrix from NumPy .npy (float32/float64, little or big endian, C or Fortran order,
/// 1-D arrays as a column) or Matrix Market .mtx (array or coordinate, real/integer/pattern, general or
/// symmetric/skew-symmetric), chosen by extension. Throws MatrixFileError on a missing, unreadable,
/// malformed, truncated or non-finite file. Declared sizes are checked before allocating: against `expected`
/// (when given), against the file's length (a .npy holds rows * cols values; a .mtx array value needs >= 2
/// bytes, a coordinate entry >= 4 bytes 'i j\n', >= 6 with a value) and against this machine's memory.
Eigen::MatrixXd read_matrix(const std::filesystem::path& file, const ShapeCheck& expected = {});

/// The same from the file's bytes; `name` chooses the format by extension and names it in messages.
Eigen::MatrixXd parse_matrix(const std::string& bytes, const std::filesystem::path& name,
                             const ShapeCheck& expected = {});
/// A matrix as its file stores it: Matrix Market coordinate files in `sparse` (no dense N x N is formed, so a
/// 1e5 x 1e5 connectome with 1e7 entries takes ~120 MB), NumPy and Matrix Market array files in `dense`.
struct MatrixFile {
  Eigen::MatrixXd dense;
  std::shared_ptr<const SparseMatrix> sparse;
  bool is_sparse() const { return sparse != nullptr; }
  Eigen::Index rows() const { return sparse ? sparse->rows() : dense.rows(); }
  Eigen::Index cols() const { return sparse ? sparse->cols() : dense.cols(); }
};
/// As read_matrix(), with the same checks and messages, keeping coordinate .mtx files sparse.
MatrixFile read_matrix_file(const std::filesystem::path& file, const ShapeCheck& expected = {});

/// Writes W as .npy (float64, Fortran order) or .mtx (array, real general), chosen by extension.
void write_matrix(const std::filesystem::path& file, const Eigen::MatrixXd& m);

}  // namespace gradflow
