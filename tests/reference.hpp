#pragma once

// Dense reference solves with plain Eigen, independent of the code under test (gradflow's Spectra paths and
// their fallbacks). Compiled once, in tests/reference.cpp, and linked into every test program: each of Eigen's
// dense eigenvalue and SVD solvers costs a file that instantiates it 30-110 s of compile time under ASan.
// A solve that does not converge throws std::runtime_error, which fails the test that asked for it.
#include <Eigen/Core>

namespace gradflow::test {

/// All eigenvalues of a square W (Eigen::EigenSolver, no eigenvectors), in Eigen's order: a complex pair as
/// consecutive conjugates.
Eigen::VectorXcd dense_eigenvalues(const Eigen::MatrixXd& w);

/// The eigenvalues of a symmetric S (Eigen::SelfAdjointEigenSolver on its lower triangle), ascending.
Eigen::VectorXd symmetric_eigenvalues(const Eigen::MatrixXd& s);

/// |lambda_i(W)|, largest first.
Eigen::VectorXd sorted_moduli(const Eigen::MatrixXd& w);

/// rho(W) = max |lambda_i(W)|; by the symmetric solver when W equals its transpose (same answer, ~10x faster
/// at N = 500).
double dense_rho(const Eigen::MatrixXd& w);

/// ||W||_2, the largest singular value of a W of any shape (Eigen::BDCSVD: as accurate as JacobiSVD for
/// sigma_max, ~20x faster at N = 300).
double dense_norm(const Eigen::MatrixXd& w);

}  // namespace gradflow::test
