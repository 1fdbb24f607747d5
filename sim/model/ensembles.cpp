#include "gradflow/model/ensembles.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "gradflow/model/spectrum.hpp"

namespace gradflow {
namespace {

/// `count` distinct column indices of 0..n-1, uniformly at random, sorted ascending.
void sample_columns(Eigen::Index n, Eigen::Index count, Rng& rng, std::vector<int>& out) {
  out.clear();
  if (count <= 0) return;
  if (4 * count > n) {
    // Selection sampling (Knuth, TAOCP vol. 2, Algorithm S): O(n), for dense rows.
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    Eigen::Index chosen = 0;
    for (Eigen::Index j = 0; j < n && chosen < count; ++j)
      if (static_cast<double>(n - j) * unit(rng) < static_cast<double>(count - chosen)) {
        out.push_back(static_cast<int>(j));
        ++chosen;
      }
    return;
  }
  // Sparse rows: iid uniform draws until `count` distinct values have been seen. The process is symmetric
  // under relabelling the columns, so the resulting set is a uniform `count`-subset.
  std::uniform_int_distribution<Eigen::Index> pick(0, n - 1);
  while (static_cast<Eigen::Index>(out.size()) < count) {
    const Eigen::Index missing = count - static_cast<Eigen::Index>(out.size());
    for (Eigen::Index k = 0; k < missing; ++k) out.push_back(static_cast<int>(pick(rng)));
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
}

}  // namespace

SparseMatrix sparse_gaussian(Eigen::Index n, const SparseOptions& o, Rng& rng) {
  if (n < 1) throw std::invalid_argument("sparse_gaussian: n must satisfy n >= 1, got " + std::to_string(n));
  if (n > Eigen::Index(std::numeric_limits<int>::max()))
    throw std::invalid_argument("sparse_gaussian: n must be < 2^31 (int column indices)");
  const bool by_density = o.density > 0.0;
  if (by_density == (o.in_degree > 0))
    throw std::invalid_argument("sparse_gaussian: exactly one of density (0 < p <= 1) and in_degree (K >= 1) "
                                "must be set");
  if (by_density && !(o.density <= 1.0))
    throw std::invalid_argument("sparse_gaussian: density must satisfy 0 < p <= 1, got " + std::to_string(o.density));
  if (!by_density && o.in_degree > n)
    throw std::invalid_argument("sparse_gaussian: in_degree must satisfy 1 <= K <= N = " + std::to_string(n) +
                                ", got " + std::to_string(o.in_degree));

  const double per_row = by_density ? o.density * static_cast<double>(n) : static_cast<double>(o.in_degree);
  const double scale = 1.0 / std::sqrt(std::max(per_row, 1e-300));
  std::binomial_distribution<Eigen::Index> row_count(n, by_density ? o.density : 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);

  std::vector<int> outer(static_cast<std::size_t>(n) + 1, 0), inner, cols;
  std::vector<double> values;
  const double expected = per_row * static_cast<double>(n);
  inner.reserve(static_cast<std::size_t>(expected * 1.01) + 16);
  values.reserve(inner.capacity());
  for (Eigen::Index i = 0; i < n; ++i) {
    const Eigen::Index count = by_density ? row_count(rng) : o.in_degree;
    sample_columns(n, count, rng, cols);
    for (int j : cols) {
      inner.push_back(j);
      values.push_back(scale * normal(rng));
    }
    if (inner.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
      throw std::invalid_argument("sparse_gaussian: more than 2^31 nonzeros");
    outer[static_cast<std::size_t>(i) + 1] = static_cast<int>(inner.size());
  }
  const Eigen::Map<const SparseMatrix> map(n, n, static_cast<Eigen::Index>(inner.size()), outer.data(), inner.data(),
                                           values.data());
  return SparseMatrix(map);
}

SparseMatrix delay_chain(Eigen::Index n) {
  if (n < 1) throw std::invalid_argument("delay_chain: n must satisfy n >= 1, got " + std::to_string(n));
  SparseMatrix w(n, n);
  w.reserve(Eigen::VectorXi::Constant(n, 1));
  for (Eigen::Index i = 1; i < n; ++i) w.insert(i, i - 1) = 1.0;
  w.makeCompressed();
  return w;
}

Eigen::MatrixXd nonnormal_matrix(Eigen::Index n, double radius, double s, Rng& rng) {
  if (n < 1) throw std::invalid_argument("nonnormal_matrix: n must satisfy n >= 1, got " + std::to_string(n));
  if (!(std::isfinite(radius) && radius >= 0.0))
    throw std::invalid_argument("nonnormal_matrix: radius must satisfy radius >= 0, got " + std::to_string(radius));
  if (!(std::isfinite(s) && s >= 0.0))
    throw std::invalid_argument("nonnormal_matrix: nonnormality must satisfy s >= 0, got " + std::to_string(s));
  const double dn = static_cast<double>(n);

  // Eigenvalues of a Ginibre matrix (circular law), as a real block diagonal: a real lambda as a 1 x 1 block,
  // a pair alpha +- i beta as the normal block [[alpha, beta], [-beta, alpha]].
  const Eigen::MatrixXd g = gaussian_matrix(n, n, 1.0 / std::sqrt(dn), rng);
  // eigenvalues() (spectrum.cpp) is Eigen::EigenSolver, instantiated there once for the library.
  Eigen::VectorXcd ev;
  try {
    ev = eigenvalues(g);
  } catch (const std::runtime_error&) {
    throw std::runtime_error("nonnormal_matrix: the dense eigenvalue solve of the Ginibre draw did not converge");
  }
  Eigen::MatrixXd d = Eigen::MatrixXd::Zero(n, n);
  std::vector<Eigen::Index> block_end(static_cast<std::size_t>(n));  // last index of the block holding i
  double max_modulus = 0.0;
  for (Eigen::Index i = 0; i < n;) {
    if (ev[i].imag() == 0.0 || i + 1 == n) {
      d(i, i) = ev[i].real();
      max_modulus = std::max(max_modulus, std::abs(ev[i].real()));
      block_end[static_cast<std::size_t>(i)] = i;
      i += 1;
    } else {
      // EigenSolver lists a complex pair as consecutive conjugates.
      const double a = ev[i].real(), b = std::abs(ev[i].imag());
      d(i, i) = a;
      d(i, i + 1) = b;
      d(i + 1, i) = -b;
      d(i + 1, i + 1) = a;
      max_modulus = std::max(max_modulus, std::hypot(a, b));
      block_end[static_cast<std::size_t>(i)] = block_end[static_cast<std::size_t>(i) + 1] = i + 1;
      i += 2;
    }
  }
  // The moduli are |lambda| = hypot(alpha, beta) exactly: scaling makes the largest equal radius to rounding.
  if (max_modulus > 0.0) d *= radius / max_modulus;

  // Strictly block-upper-triangular R: D + s R keeps D's eigenvalues for every s.
  Eigen::MatrixXd m = d;
  if (s > 0.0) {
    std::normal_distribution<double> normal(0.0, 1.0);
    const double sd = s / std::sqrt(dn);
    for (Eigen::Index j = 0; j < n; ++j)
      for (Eigen::Index i = 0; i < j; ++i)
        if (block_end[static_cast<std::size_t>(i)] < j) m(i, j) += sd * normal(rng);
  }
  const Eigen::MatrixXd q = random_recurrent(SpectrumKind::orthogonal, n, 1.0, rng);
  return q * m * q.transpose();
}

Eigen::Index dale_excitatory_count(Eigen::Index n, double fraction) {
  Eigen::Index ne = static_cast<Eigen::Index>(std::llround(fraction * static_cast<double>(n)));
  if (n >= 2) ne = std::clamp<Eigen::Index>(ne, 1, n - 1);
  return ne;
}

Eigen::MatrixXd dale_matrix(Eigen::Index n, const DaleOptions& o, Rng& rng) {
  if (n < 1) throw std::invalid_argument("dale_matrix: n must satisfy n >= 1, got " + std::to_string(n));
  if (!(o.excitatory > 0.0 && o.excitatory < 1.0))
    throw std::invalid_argument("dale_matrix: excitatory fraction must satisfy 0 < f < 1");
  if (!(o.std_e >= 0.0 && o.std_i >= 0.0 && o.mean_e >= 0.0 && o.mean_i <= 0.0))
    throw std::invalid_argument("dale_matrix: needs mean_e >= 0, mean_i <= 0, std_e >= 0, std_i >= 0");
  const Eigen::Index ne = dale_excitatory_count(n, o.excitatory);
  const double inv_sqrt_n = 1.0 / std::sqrt(static_cast<double>(n));
  Eigen::MatrixXd w = gaussian_matrix(n, n, 1.0, rng);
  for (Eigen::Index j = 0; j < n; ++j) {
    const bool exc = j < ne;
    const double mean = (exc ? o.mean_e : o.mean_i) * inv_sqrt_n, sd = (exc ? o.std_e : o.std_i) * inv_sqrt_n;
    w.col(j) = (w.col(j).array() * sd + mean).matrix();
  }
  if (o.balance) {
    const Eigen::VectorXd row_mean = w.rowwise().mean();
    w.colwise() -= row_mean;
  }
  return w;
}

DaleSpectrum dale_prediction(Eigen::Index n, const DaleOptions& o) {
  const Eigen::Index ne = dale_excitatory_count(n, o.excitatory);
  const double dn = static_cast<double>(n), f = static_cast<double>(ne) / dn;
  DaleSpectrum p;
  p.bulk_radius = std::sqrt(f * o.std_e * o.std_e + (1.0 - f) * o.std_i * o.std_i);
  p.outlier = o.balance ? 0.0 : (static_cast<double>(ne) * o.mean_e + static_cast<double>(n - ne) * o.mean_i) / std::sqrt(dn);
  return p;
}

}  // namespace gradflow
