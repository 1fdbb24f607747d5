#include "reference.hpp"

#include <algorithm>
#include <functional>
#include <stdexcept>

#include <Eigen/Eigenvalues>
#include <Eigen/SVD>

namespace gradflow::test {

Eigen::VectorXcd dense_eigenvalues(const Eigen::MatrixXd& w) {
  Eigen::EigenSolver<Eigen::MatrixXd> es(w, /*computeEigenvectors=*/false);
  if (es.info() != Eigen::Success) throw std::runtime_error("reference: Eigen::EigenSolver did not converge");
  return es.eigenvalues();
}

Eigen::VectorXd symmetric_eigenvalues(const Eigen::MatrixXd& s) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(s, Eigen::EigenvaluesOnly);
  if (es.info() != Eigen::Success)
    throw std::runtime_error("reference: Eigen::SelfAdjointEigenSolver did not converge");
  return es.eigenvalues();
}

Eigen::VectorXd sorted_moduli(const Eigen::MatrixXd& w) {
  Eigen::VectorXd m = w == w.transpose() ? symmetric_eigenvalues(w).cwiseAbs().eval()
                                         : dense_eigenvalues(w).cwiseAbs().eval();
  std::sort(m.data(), m.data() + m.size(), std::greater<double>());
  return m;
}

double dense_rho(const Eigen::MatrixXd& w) { return w.size() == 0 ? 0.0 : sorted_moduli(w)(0); }

double dense_norm(const Eigen::MatrixXd& w) {
  Eigen::BDCSVD<Eigen::MatrixXd> svd(w);
  if (svd.info() != Eigen::Success) throw std::runtime_error("reference: Eigen::BDCSVD did not converge");
  return svd.singularValues()(0);
}

}  // namespace gradflow::test
