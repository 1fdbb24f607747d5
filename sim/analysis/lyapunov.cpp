#include "gradflow/analysis/lyapunov.hpp"

#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>

#include <Eigen/QR>

#include "gradflow/numerics/random.hpp"
#include "gradflow/engine/cell.hpp"

namespace gradflow {

std::string to_string(LyapunovStatus s) {
  switch (s) {
    case LyapunovStatus::ok: return "ok";
    case LyapunovStatus::annihilated: return "annihilated";
    case LyapunovStatus::too_short: return "too_short";
  }
  return "unknown";
}

LyapunovStatus parse_lyapunov_status(const std::string& name) {
  if (name == "ok") return LyapunovStatus::ok;
  if (name == "annihilated") return LyapunovStatus::annihilated;
  if (name == "too_short") return LyapunovStatus::too_short;
  throw std::invalid_argument("unknown Lyapunov status \"" + name + "\": expected ok, annihilated or too_short");
}

template <class Scalar>
LyapunovResult lyapunov_spectrum(const Model& model, const Tape<Scalar>& tape, const LyapunovOptions& options) {
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Index = Eigen::Index;
  const Index k = options.count;
  const Index batch = tape.batch;
  const Index horizon = tape.horizon;
  const Index burn_in = options.burn_in;
  if (burn_in < 0) throw std::invalid_argument("lyapunov_spectrum: burn_in must satisfy burn_in >= 0");
  if (options.interval < 1) throw std::invalid_argument("lyapunov_spectrum: interval must satisfy interval >= 1");
  if (batch < 1) throw std::invalid_argument("lyapunov_spectrum: the tape must hold B >= 1 trajectories");
  if (k < 1)
    throw std::invalid_argument("lyapunov_spectrum: count must satisfy 1 <= k <= N (k = " + std::to_string(k) + ")");
  const std::unique_ptr<Cell<Scalar>> cell = make_cell<Scalar>(model, Pass::tangent, batch * k);
  const Index n = cell->state_size();  // the frames live in state space (2N for a cell with two state vectors)
  const Index rows = cell->tape_rows();
  if (k > n)
    throw std::invalid_argument("lyapunov_spectrum: count must satisfy 1 <= k <= N (k = " + std::to_string(k) +
                                ", N = " + std::to_string(n) + ")");
  if (tape.data.rows() != rows || tape.data.cols() < batch * horizon)
    throw std::invalid_argument("lyapunov_spectrum: the tape must hold tape_rows x (B * horizon) scalars");

  LyapunovResult res;
  res.per_trajectory = Eigen::MatrixXd::Zero(k, batch);
  if (horizon - burn_in < 1) {
    res.status = LyapunovStatus::too_short;
    res.message = "tape of " + std::to_string(horizon) + " steps is not longer than the tangent burn-in of " +
                  std::to_string(burn_in) + " steps";
    return res;
  }


  // Frames of all trajectories side by side: columns [b k, (b + 1) k) belong to trajectory b, so that one
  // GEMM with W advances every frame.
  Eigen::HouseholderQR<Mat> qr(n, k);
  const Mat thin_identity = Mat::Identity(n, k);
  Mat q(n, batch * k);
  Eigen::MatrixXd log_sum = Eigen::MatrixXd::Zero(k, batch);
  auto orthonormalise = [&](bool accumulate) {
    for (Index b = 0; b < batch; ++b) {
      auto block = q.middleCols(b * k, k);
      qr.compute(block);
      if (accumulate) {
        for (Index i = 0; i < k; ++i) {
          // |R_ii| = 0 exactly: the frame lost a direction (every unit dead): ln 0 = -inf, reported as such.
          const double r = std::abs(static_cast<double>(qr.matrixQR()(i, i)));
          log_sum(i, b) += r > 0.0 ? std::log(r) : -std::numeric_limits<double>::infinity();
        }
      }
      block.noalias() = qr.householderQ() * thin_identity;
    }
  };

  Rng rng(options.seed);
  for (Index b = 0; b < batch; ++b) q.middleCols(b * k, k) = gaussian_matrix(n, k, 1.0, rng).cast<Scalar>();
  orthonormalise(false);

  // Between scheduled re-orthonormalisations a frame may grow or shrink by many orders: force one before a
  // column norm leaves [lo, hi] (fourth roots of the largest and smallest normal Scalar).
  const double hi = std::pow(static_cast<double>(std::numeric_limits<Scalar>::max()), 0.25);
  const double lo = std::pow(static_cast<double>(std::numeric_limits<Scalar>::min()), 0.25);
  Index since = 0;  // steps since the last re-orthonormalisation
  for (Index t = 1; t <= horizon; ++t) {
    // Q <- J_t Q, per trajectory with its own J_t.
    cell->tangent(tape.data.data() + (t - 1) * rows * batch, q, k);
    ++since;
    bool due = t == horizon || t == burn_in || since >= options.interval;
    if (!due) {
      for (Index j = 0; j < q.cols() && !due; ++j) {
        const double c = static_cast<double>(q.col(j).norm());
        due = !(c < hi && c > lo);
      }
    }
    if (due) {
      orthonormalise(t > burn_in);
      since = 0;
    }
  }

  res.steps = horizon - burn_in;
  res.per_trajectory = log_sum / static_cast<double>(res.steps);
  res.exponents.assign(k, 0.0);
  res.exponents_std.assign(k, 0.0);
  res.status = LyapunovStatus::ok;
  for (Index i = 0; i < k; ++i) {
    double sum = 0.0, sum_sq = 0.0;
    int finite = 0;
    bool annihilated = false;
    for (Index b = 0; b < batch; ++b) {
      const double v = res.per_trajectory(i, b);
      if (std::isfinite(v)) {
        sum += v;
        ++finite;
      } else {
        annihilated = true;
      }
    }
    const double mean = finite > 0 ? sum / finite : 0.0;
    for (Index b = 0; b < batch; ++b) {
      const double v = res.per_trajectory(i, b);
      if (std::isfinite(v)) sum_sq += (v - mean) * (v - mean);
    }
    res.exponents_std[i] = finite > 1 ? std::sqrt(sum_sq / (finite - 1)) : 0.0;
    if (annihilated) {
      res.exponents[i] = -std::numeric_limits<double>::infinity();
      res.status = LyapunovStatus::annihilated;
    } else {
      res.exponents[i] = mean;
    }
  }
  if (res.status == LyapunovStatus::annihilated)
    res.message = "a tangent direction was annihilated exactly (f'(a_t) = 0 on every unit): exponent -inf";
  return res;
}

template LyapunovResult lyapunov_spectrum<float>(const Model&, const Tape<float>&, const LyapunovOptions&);
template LyapunovResult lyapunov_spectrum<double>(const Model&, const Tape<double>&, const LyapunovOptions&);

}  // namespace gradflow
