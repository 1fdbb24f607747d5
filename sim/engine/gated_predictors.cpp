// The rules of thumb of the gated cells' per-step factor (engine/cell.hpp, CellPredictors), from the statistics
// of the coefficients their forward steps report (the orders of coefficient_names() in gru_cell.cpp,
// lstm_cell.cpp and minimalrnn_cell.cpp).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>

#include "gradflow/engine/cell.hpp"
#include "gradflow/model/spectrum.hpp"

namespace gradflow {
namespace {

/// rho, rho and ||.||_2 of each N x N block of the stacked weights.
struct BlockSpectra {
  std::vector<double> rho, norm;
};

/// A block drawn by gradflow has them from its construction (Model::block_rho, block_norm: the exact radius and
/// the scaled base's norm, which the solves would only approximate); imported blocks are solved here.
BlockSpectra block_spectra(const Model& model) {
  const Eigen::MatrixXd& w = model.w;
  const Eigen::Index n = w.cols();
  const auto blocks = static_cast<std::size_t>(n > 0 ? w.rows() / n : 0);
  const auto known = [blocks](const std::vector<double>& v) {
    return v.size() == blocks && std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
  };
  BlockSpectra s;
  if (known(model.block_rho) && known(model.block_norm)) {
    s.rho = model.block_rho;
    s.norm = model.block_norm;
    return s;
  }
  for (Eigen::Index k = 0; k * n < w.rows(); ++k) {
    const Eigen::MatrixXd block = w.middleRows(k * n, n);
    s.rho.push_back(spectral_radius(block));
    s.norm.push_back(spectral_norm(block));
  }
  return s;
}

Eigen::MatrixXd block(const Eigen::MatrixXd& w, int k) { return w.middleRows(k * w.cols(), w.cols()); }

}  // namespace

CellPredictors gated_predictors(const Model& model, const std::vector<double>& mean, const std::vector<double>& rms,
                                const std::vector<double>& max_abs) {
  const Eigen::MatrixXd& w = model.w;
  const Eigen::Index n = w.cols();
  const Eigen::MatrixXd eye = Eigen::MatrixXd::Identity(n, n);
  const BlockSpectra s = block_spectra(model);
  CellPredictors p;
  switch (model.cell) {
    case CellKind::gru: {
      // coefficients z, r, hz, cn_rg, cn_r: J = diag(z) + diag(hz) W_hz + diag(cn rg) W_hr + diag(cn r) W_hn.
      if (mean.size() != 5) break;
      const Eigen::MatrixXd j = mean[0] * eye + mean[2] * block(w, 1) + mean[3] * block(w, 0) + mean[4] * block(w, 2);
      p.predictor = spectral_radius(j);
      p.predictor_rms = std::sqrt(rms[0] * rms[0] + rms[2] * rms[2] * s.rho[1] * s.rho[1] +
                                  rms[3] * rms[3] * s.rho[0] * s.rho[0] + rms[4] * rms[4] * s.rho[2] * s.rho[2]);
      p.bound = max_abs[0] + max_abs[2] * s.norm[1] + max_abs[3] * s.norm[0] + max_abs[4] * s.norm[2];
      return p;
    }
    case CellKind::lstm: {
      // coefficients f, i, o, oc, po, cf, gi, ig; K = cf W_hf + gi W_hi + ig W_hg;
      // J = [[po W_ho + oc K, oc f], [K, f]] on (h, c).
      if (mean.size() != 8) break;
      const Eigen::MatrixXd k = mean[5] * block(w, 1) + mean[6] * block(w, 0) + mean[7] * block(w, 2);
      Eigen::MatrixXd j(2 * n, 2 * n);
      j.topLeftCorner(n, n) = mean[4] * block(w, 3) + mean[3] * k;
      j.topRightCorner(n, n) = mean[3] * mean[0] * eye;
      j.bottomLeftCorner(n, n) = k;
      j.bottomRightCorner(n, n) = mean[0] * eye;
      p.predictor = spectral_radius(j);
      // Mean field on (E|q_h|^2, E|q_c|^2): E|dc'|^2 = a |q_c|^2 + b |q_h|^2, E|dh'|^2 = E[po^2] rho_o^2 |q_h|^2
      // + E[oc^2] E|dc'|^2; the factor is sqrt of the 2 x 2 growth matrix's largest eigenvalue.
      const double a = rms[0] * rms[0];
      const double b = rms[5] * rms[5] * s.rho[1] * s.rho[1] + rms[6] * rms[6] * s.rho[0] * s.rho[0] +
                       rms[7] * rms[7] * s.rho[2] * s.rho[2];
      const double oc2 = rms[3] * rms[3], po2 = rms[4] * rms[4] * s.rho[3] * s.rho[3];
      Eigen::Matrix2d m;
      m << po2 + oc2 * b, oc2 * a, b, a;
      p.predictor_rms = std::sqrt(m.eigenvalues().cwiseAbs().maxCoeff());
      // ||J||_2 <= sqrt of the sum of the squared bounds of its four blocks.
      const double kb = max_abs[5] * s.norm[1] + max_abs[6] * s.norm[0] + max_abs[7] * s.norm[2];
      const double hh = max_abs[4] * s.norm[3] + max_abs[3] * kb, hc = max_abs[3] * max_abs[0], cc = max_abs[0];
      p.bound = std::sqrt(hh * hh + hc * hc + kb * kb + cc * cc);
      return p;
    }
    case CellKind::minimalrnn: {
      // coefficients u, hu: J = diag(u) + diag(hu) U_h.
      if (mean.size() != 2) break;
      // u near 1 and a small hu put every eigenvalue of J near |z| = u: solved on U_h (shifted_spectral_radius).
      p.predictor = shifted_spectral_radius(w, mean[0], mean[1], s.rho[0]);
      p.predictor_rms = std::sqrt(rms[0] * rms[0] + rms[1] * rms[1] * s.rho[0] * s.rho[0]);
      p.bound = max_abs[0] + max_abs[1] * s.norm[0];
      return p;
    }
    default:
      break;
  }
  throw std::invalid_argument("gated_predictors: needs a gated cell and its coefficient statistics");
}

}  // namespace gradflow
