#include "gradflow/analysis/meanfield.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

namespace gradflow {

namespace detail {

/// Brent's method (Brent 1973, "Algorithms for Minimization without Derivatives", ch. 4): a root of f in
/// [a, b] given f(a) f(b) <= 0, by inverse quadratic interpolation, secant steps and bisection, to
/// |step| <= 2 eps |x| + tol / 2.
double brent_root(const std::function<double(double)>& f, double a, double b, double fa, double fb, double tol) {
  constexpr double eps = std::numeric_limits<double>::epsilon();
  if (fa == 0.0) return a;
  if (fb == 0.0) return b;
  double c = a, fc = fa, d = b - a, e = d;
  for (int iter = 0; iter < 200; ++iter) {
    if ((fb > 0) == (fc > 0)) {
      c = a;
      fc = fa;
      d = e = b - a;
    }
    if (std::abs(fc) < std::abs(fb)) {
      a = b, b = c, c = a;
      fa = fb, fb = fc, fc = fa;
    }
    const double tol1 = 2.0 * eps * std::abs(b) + 0.5 * tol;
    const double m = 0.5 * (c - b);
    if (std::abs(m) <= tol1 || fb == 0.0) return b;
    if (std::abs(e) >= tol1 && std::abs(fa) > std::abs(fb)) {
      double p, q;
      const double s = fb / fa;
      if (a == c) {
        p = 2.0 * m * s;  // secant
        q = 1.0 - s;
      } else {             // inverse quadratic interpolation
        const double qq = fa / fc, r = fb / fc;
        p = s * (2.0 * m * qq * (qq - r) - (b - a) * (r - 1.0));
        q = (qq - 1.0) * (r - 1.0) * (s - 1.0);
      }
      if (p > 0) q = -q;
      else p = -p;
      if (2.0 * p < std::min(3.0 * m * q - std::abs(tol1 * q), std::abs(e * q))) {
        e = d;
        d = p / q;
      } else {
        d = e = m;  // bisection
      }
    } else {
      d = e = m;
    }
    a = b;
    fa = fb;
    b += std::abs(d) > tol1 ? d : (m > 0 ? tol1 : -tol1);
    fb = f(b);
  }
  return b;
}

}  // namespace detail

std::string to_string(MeanFieldStatus s) {
  switch (s) {
    case MeanFieldStatus::ok: return "ok";
    case MeanFieldStatus::q_diverges: return "q_diverges";
    case MeanFieldStatus::not_applicable: return "not_applicable";
    case MeanFieldStatus::overflow: return "overflow";
  }
  return "unknown";
}

MeanFieldStatus parse_mean_field_status(const std::string& name) {
  if (name == "ok") return MeanFieldStatus::ok;
  if (name == "q_diverges") return MeanFieldStatus::q_diverges;
  if (name == "not_applicable") return MeanFieldStatus::not_applicable;
  if (name == "overflow") return MeanFieldStatus::overflow;
  throw std::invalid_argument("unknown mean-field status \"" + name +
                              "\": expected ok, q_diverges, not_applicable or overflow");
}

namespace {

void check(const MeanFieldParams& p) {
  p.activation.validate();
  auto bad = [](double x) { return !std::isfinite(x) || x < 0; };
  if (bad(p.gain)) throw std::invalid_argument("mean field: gain must satisfy gain >= 0 (finite)");
  if (bad(p.input_std)) throw std::invalid_argument("mean field: input_std must satisfy input_std >= 0 (finite)");
  if (bad(p.bias_std)) throw std::invalid_argument("mean field: bias_std must satisfy bias_std >= 0 (finite)");
  if (!std::isfinite(p.bias_mean)) throw std::invalid_argument("mean field: bias_mean must be finite");
  if (bad(p.h0_sq)) throw std::invalid_argument("mean field: h0_sq must satisfy h0_sq >= 0 (finite)");
}

/// lim_{q -> inf} E[f'(a)^2] = (f'(+inf)^2 + f'(-inf)^2) / 2: a ~ N(mu, q) lands on either tail with
/// probability 1/2 as q grows (every activation here has constant derivative limits on its tails).
double tail_mean_sq_deriv(const Activation& f) {
  constexpr double far = 1e8;
  const double up = f.derivative(far), down = f.derivative(-far);
  return 0.5 * (up * up + down * down);
}

/// lim_{q -> 0+} E[f'(a)^2], a ~ N(mu, q): (f'(mu+)^2 + f'(mu-)^2) / 2. A state that only tends to the
/// fixed point sits on either side of a kink at mu (ReLU at 0: 1/2, not f'(0)^2 = 1); f'(mu)^2 elsewhere.
double zero_variance_mean_sq_deriv(const Activation& f, double mu) {
  const double delta = 1e-14 * (1.0 + std::abs(mu));
  const double up = f.derivative(mu + delta), down = f.derivative(mu - delta);
  return 0.5 * (up * up + down * down);
}

/// Quadrature breaks: the kinks, plus points on the activation's own scale around 0 (where tanh, sigmoid,
/// swish ... bend). At large q the integrand's features are narrow in z; without breaks there the
/// Gauss-Kronrod nodes could step over them.
std::vector<double> breaks(const Activation& f) {
  std::vector<double> b = f.kinks();
  const double scale = (f.kind == ActivationKind::softplus || f.kind == ActivationKind::swish) ? 1.0 / f.beta : 1.0;
  b.push_back(0.0);
  for (double x = 0.125; x <= 64.0; x *= 2.0) {
    b.push_back(x * scale);
    b.push_back(-x * scale);
  }
  return b;
}

}  // namespace

double mean_field_map(const MeanFieldParams& p, double q) {
  const Activation& f = p.activation;
  const double second = gaussian_expectation(
      [&](double x) {
        const double v = f.value(x);
        return v * v;
      },
      p.bias_mean, std::sqrt(std::max(q, 0.0)), breaks(f));
  return p.gain * p.gain * second + p.input_std * p.input_std + p.bias_std * p.bias_std;
}

double mean_field_chi(const MeanFieldParams& p, double q) {
  const Activation& f = p.activation;
  if (!(q > 0)) return p.gain * p.gain * zero_variance_mean_sq_deriv(f, p.bias_mean);
  const double sq = gaussian_expectation(
      [&](double x) {
        const double d = f.derivative(x);
        return d * d;
      },
      p.bias_mean, std::sqrt(q), breaks(f));
  return p.gain * p.gain * sq;
}

MeanField mean_field(const MeanFieldParams& p) {
  if (p.cell == CellKind::minimalrnn) return minimalrnn_mean_field(p);
  if (p.cell != CellKind::vanilla) {
    MeanField mf;
    mf.status = MeanFieldStatus::not_applicable;
    mf.message = "mean-field theory of h = f(a) and of the minimalrnn only: not defined for the " +
                 to_string(p.cell) + " cell";
    return mf;
  }
  check(p);
  const double q0 = p.initial_variance();
  if (!std::isfinite(q0) || q0 < 0) throw std::invalid_argument("mean field: h0_sq must satisfy h0_sq >= 0");
  MeanField mf;
  auto finish = [&](double q) {
    mf.q = q;
    mf.chi = mean_field_chi(p, q);
    mf.growth = std::sqrt(mf.chi);
    mf.lyapunov = mf.growth > 0 ? std::log(mf.growth) : -std::numeric_limits<double>::infinity();
    return mf;
  };
  const auto gap = [&](double q) { return mean_field_map(p, q) - q; };
  constexpr double kTop = 1e30, kFloor = 1e-100;

  const double f0 = mean_field_map(p, q0);
  const double d0 = f0 - q0;
  if (d0 == 0) return finish(q0);
  if (d0 > 0) {
    // q0 < q*: F(q0) is a lower bound of q* (F increasing); scan up from it to D <= 0.
    double q_lo = q0, d_lo = d0;
    double q = f0, d = gap(q);
    while (d > 0) {
      q_lo = q, d_lo = d;
      q *= 4.0;
      if (q > kTop) {
        mf.status = MeanFieldStatus::q_diverges;
        mf.q = 0.0;
        mf.chi = p.gain * p.gain * tail_mean_sq_deriv(p.activation);
        mf.growth = std::sqrt(mf.chi);
        mf.lyapunov = mf.growth > 0 ? std::log(mf.growth) : -std::numeric_limits<double>::infinity();
        mf.message = "the pre-activation variance grows without bound (F(q) > q up to q = 1e30)";
        return mf;
      }
      d = gap(q);
    }
    return finish(d == 0 ? q : detail::brent_root(gap, q_lo, q, d_lo, d, 1e-14 * q_lo));
  }
  // q* < q0: F(q0) is an upper bound of q*; scan down from it to D >= 0.
  if (f0 == 0) return finish(0.0);
  double q_hi = q0, d_hi = d0;
  for (double q = f0; q >= kFloor; q /= 8.0) {
    const double d = gap(q);
    if (d >= 0) return finish(d == 0 ? q : detail::brent_root(gap, q, q_hi, d, d_hi, 1e-14 * q));
    q_hi = q, d_hi = d;
  }
  // F(q) < q all the way down: the fixed point is 0 (or below 1e-100, where F(0) is the answer).
  return finish(mean_field_map(p, 0.0));
}


namespace {

/// E[g(x)], x ~ N(mu, sigma^2), to the quadrature's relative tolerance also when E[g] is far below its
/// absolute tolerance (1e-14): the gate moments of the minimalRNN go like e^{-|b_u|} at large gate biases.
/// The integrand is scaled by the inverse of its largest weighted value on a coarse grid first.
double relative_expectation(const std::function<double(double)>& g, double mu, double sigma,
                            const std::vector<double>& breaks) {
  double peak = 0.0;
  for (double t = -12.0; t <= 12.0; t += 0.25) peak = std::max(peak, std::abs(g(mu + sigma * t)) * std::exp(-0.5 * t * t));
  if (!(peak > 1e-280) || peak >= 1.0) return gaussian_expectation(g, mu, sigma, breaks);
  const double scale = 1.0 / peak;
  return gaussian_expectation([&](double x) { return scale * g(x); }, mu, sigma, breaks) / scale;
}

/// The statistics of the input map z = f(c + xi) that the minimalRNN's theory needs (MinimalRnn below).
struct InputMap {
  double r = 0.0;   // R = E[z^2]
  double m2 = 0.0;  // E_c[(E_xi z)^2]
  double s = 0.0;   // S = R - m2 >= 0, the variance of z about its unit's mean
};

InputMap input_map(const MeanFieldParams& p) {
  const Activation& f = p.activation;
  const std::vector<double> b = breaks(f);
  InputMap m;
  m.r = gaussian_expectation(
      [&](double x) {
        const double v = f.value(x);
        return v * v;
      },
      p.bias_mean, std::hypot(p.input_std, p.bias_std), b);
  if (p.input_std == 0.0) {  // z is constant in time: E[z | c]^2 = z^2
    m.m2 = m.r;
    return m;
  }
  const auto unit_mean = [&](double c) { return gaussian_expectation([&](double x) { return f.value(x); }, c, p.input_std, b); };
  m.m2 = gaussian_expectation(
      [&](double c) {
        const double v = unit_mean(c);
        return v * v;
      },
      p.bias_mean, p.bias_std, b);
  m.s = std::max(0.0, m.r - m.m2);
  return m;
}

/// The minimalRNN's fixed point and chi (meanfield.hpp, minimalrnn_mean_field), with chi - 1 kept apart.
struct MinimalRnnSolution {
  double q = 0.0, chi = 0.0, excess = 0.0;  // Q*, chi, chi - 1
};

MinimalRnnSolution solve_minimalrnn(const MeanFieldParams& p, const InputMap& in) {
  const Activation sigmoid(ActivationKind::sigmoid);
  const std::vector<double> gate_breaks = breaks(sigmoid);
  const double g2 = p.gain * p.gain, v2 = p.gate_input_gain * p.gate_input_gain;
  const auto gate_std = [&](double pp) { return std::sqrt(g2 * (in.m2 + pp) + v2 * in.r); };
  const auto moment = [&](double pp, auto&& g) {
    return relative_expectation([&](double e) { return g(sigmoid.value(e), sigmoid.value(-e)); }, p.gate_bias,
                                gate_std(pp), gate_breaks);
  };
  const auto v_sq = [](double, double v) { return v * v; };
  const auto v_two = [](double, double v) { return v * (2.0 - v); };  // 1 - u^2
  // P' - P = E[v^2] S - E[v (2 - v)] P: >= 0 at P = 0, <= 0 at P = S.
  const auto gap = [&](double pp) { return moment(pp, v_sq) * in.s - moment(pp, v_two) * pp; };
  double pp = 0.0;
  if (in.s > 0) {
    const double start = std::min(p.h0_sq + in.m2, in.s);
    const double g0 = gap(start);
    // Scan from P_0 towards the end the gap points to (where its sign is known) for the nearest sign change.
    constexpr int kSteps = 8;
    const double end = g0 > 0 ? in.s : 0.0;
    double a = start, ga = g0;
    pp = start;
    for (int k = 1; k <= kSteps && ga != 0.0; ++k) {
      const double b = start + (end - start) * k / kSteps;
      const double gb = k == kSteps ? (g0 > 0 ? std::min(0.0, gap(b)) : std::max(0.0, gap(b))) : gap(b);
      if ((ga > 0) != (gb > 0) || gb == 0.0) {
        pp = gb == 0.0 ? b : detail::brent_root(gap, std::min(a, b), std::max(a, b), a < b ? ga : gb, a < b ? gb : ga,
                                                 1e-15 * in.s);
        break;
      }
      a = b, ga = gb;
    }
  }
  const double d = pp + in.s;  // E[(h - z)^2]
  const double slope = moment(pp, [](double u, double v) { return u * u * v * v; });  // E[sigmoid'(e)^2]
  MinimalRnnSolution out;
  out.q = in.m2 + pp;
  out.chi = moment(pp, [](double u, double) { return u * u; }) + g2 * slope * d;
  out.excess = g2 * slope * d - moment(pp, v_two);
  return out;
}

void check_minimalrnn(const MeanFieldParams& p) {
  check(p);
  if (!std::isfinite(p.gate_bias)) throw std::invalid_argument("mean field: gate_bias must be finite");
  if (!std::isfinite(p.gate_input_gain) || p.gate_input_gain < 0)
    throw std::invalid_argument("mean field: gate_input_gain must satisfy gate_input_gain >= 0 (finite)");
}

}  // namespace

MeanField minimalrnn_mean_field(const MeanFieldParams& p) {
  check_minimalrnn(p);
  const MinimalRnnSolution s = solve_minimalrnn(p, input_map(p));
  MeanField mf;
  mf.q = s.q;
  mf.chi = s.chi;
  mf.growth = std::sqrt(s.chi);
  mf.lyapunov = mf.growth > 0 ? std::log(mf.growth) : -std::numeric_limits<double>::infinity();
  return mf;
}

CriticalGain critical_gain(const MeanFieldParams& params, double lo, double hi) {
  if (!(lo > 0 && hi > lo && std::isfinite(hi)))
    throw std::invalid_argument("critical_gain: the range must satisfy 0 < lo < hi");
  MeanFieldParams p = params;
  p.gain = 1.0;
  check(p);
  CriticalGain out;
  out.lo = lo;
  out.hi = hi;
  const auto at = [&](double g) {
    MeanFieldParams pg = p;
    pg.gain = g;
    return mean_field(pg);
  };
  const bool minimal = p.cell == CellKind::minimalrnn;
  if (minimal) check_minimalrnn(p);
  const InputMap in = minimal ? input_map(p) : InputMap{};  // the input map does not depend on the gain
  const auto excess = [&](double g) {
    if (!minimal) return at(g).chi - 1.0;
    MeanFieldParams pg = p;
    pg.gain = g;
    return solve_minimalrnn(pg, in).excess;
  };
  // With no input, no bias spread and f(bias_mean) = 0, q = 0 is a fixed point at every gain and chi = 1
  // where it loses stability, at g0 = 1 / sqrt(lim_{q->0+} E f'^2), exactly; past g0, chi - 1 = O((g - g0)^2)
  // (tanh: 4/3 (g - 1)^2), too flat for a root finder at 1e-8: use g0 itself for the crossing it brackets.
  const bool zero_fixed_point = !minimal &&
      p.input_std == 0.0 && p.bias_std == 0.0 && p.activation.value(p.bias_mean) == 0.0;
  const double chi0 = zero_variance_mean_sq_deriv(p.activation, p.bias_mean);
  const double g0 = chi0 > 0 ? 1.0 / std::sqrt(chi0) : std::numeric_limits<double>::infinity();
  constexpr double kFactor = 1.05;
  constexpr double kJump = 1e-6;  // |chi - 1| left at a "root": chi jumped across 1 there
  double g_prev = lo, e_prev = excess(lo);
  for (double g = lo * kFactor;; g *= kFactor) {
    g = std::min(g, hi);
    const double e = excess(g);
    if ((e_prev < 0 && e >= 0) || (e_prev > 0 && e <= 0) || e_prev == 0) {
      double root = e_prev == 0 ? g_prev : detail::brent_root(excess, g_prev, g, e_prev, e, 1e-12 * g);
      bool jump = false;
      if (zero_fixed_point && g_prev <= g0 && g0 <= g) root = g0;
      else jump = std::abs(excess(root)) > kJump;
      auto& list = jump ? out.jumps : out.crossings;
      if (list.empty() || root > list.back() * (1 + 1e-9)) list.push_back(root);
    }
    g_prev = g;
    e_prev = e;
    if (g >= hi) break;
  }
  const bool have_c = !out.crossings.empty(), have_j = !out.jumps.empty();
  if (have_c || have_j) {
    out.gain_is_jump = have_j && (!have_c || out.jumps.front() < out.crossings.front());
    out.gain = out.gain_is_jump ? out.jumps.front() : out.crossings.front();
    out.q = zero_fixed_point && *out.gain == g0 ? 0.0 : at(*out.gain).q;  // q = 0 up to g0 by construction
  }
  return out;
}

double gain_rms(const Eigen::MatrixXd& w) {
  if (w.rows() == 0) return 0.0;
  return w.norm() / std::sqrt(static_cast<double>(w.rows()));
}

}  // namespace gradflow
