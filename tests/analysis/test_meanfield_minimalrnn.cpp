// Mean-field theory of the minimalRNN (Chen, Pennington & Schoenholz 2018): its fixed point and chi against an
// independent Monte Carlo of the mean-field process, closed forms, the gate-bias limits, the critical line, and
// a large simulated network.
#include <cmath>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "gradflow/analysis/meanfield.hpp"
#include "gradflow/analysis/simulate.hpp"
#include "gradflow/engine/engine.hpp"
#include "gradflow/model/network.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using gradflow::test::kMeanFieldQuadTol;
using gradflow::test::kMinimalRnnAsymptoteTol;
using gradflow::test::kMinimalRnnFiniteNGrowthTol;
using gradflow::test::kMinimalRnnFiniteNQTol;
using gradflow::test::kMinimalRnnMonteCarloTol;
using gradflow::test::kMinimalRnnStatsTol;

namespace {

MeanFieldParams minimal(double gain, double gate_bias, double input_std, double bias_mean = 0.0,
                        double bias_std = 0.0) {
  MeanFieldParams p;
  p.cell = CellKind::minimalrnn;
  p.activation = Activation(ActivationKind::tanh);
  p.gain = gain;
  p.gate_bias = gate_bias;
  p.input_std = input_std;
  p.bias_mean = bias_mean;
  p.bias_std = bias_std;
  p.h0_sq = 0.0;
  return p;
}

double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

/// The mean-field process simulated directly: M independent units, each with its own b_z = c_i, a fresh input
/// xi each step, and a gate pre-activation e ~ N(b_u, gain^2 Q_t + sigma_v^2 R_t) drawn independently of the
/// unit (Q_t, R_t: the population's E[h^2] and E[z^2] at that step). It uses none of the theory's algebra
/// (E[h z], the P equation) nor its quadrature and root finding. Returns (E[h^2], chi) averaged over the
/// steps after the burn-in, chi = E[u^2 + gain^2 sigmoid'(e)^2 (h - z)^2].
std::pair<double, double> population(const MeanFieldParams& p, int units, int burn_in, int steps, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> c(units), h(units, 0.0), z(units);
  for (double& ci : c) ci = p.bias_mean + p.bias_std * normal(rng);
  double q_sum = 0.0, chi_sum = 0.0;
  for (int t = 0; t < burn_in + steps; ++t) {
    double q = 0.0, r = 0.0;
    for (int i = 0; i < units; ++i) {
      z[i] = std::tanh(c[i] + p.input_std * normal(rng));
      q += h[i] * h[i];
      r += z[i] * z[i];
    }
    q /= units;
    r /= units;
    const double sd = std::sqrt(p.gain * p.gain * q + p.gate_input_gain * p.gate_input_gain * r);
    double chi = 0.0;
    for (int i = 0; i < units; ++i) {
      const double e = p.gate_bias + sd * normal(rng);
      const double u = sigmoid(e), ds = u * sigmoid(-e), d = h[i] - z[i];
      chi += u * u + p.gain * p.gain * ds * ds * d * d;
      h[i] = u * h[i] + (1.0 - u) * z[i];
    }
    if (t >= burn_in) {
      q_sum += q;
      chi_sum += chi / units;
    }
  }
  return {q_sum / steps, chi_sum / steps};
}

}  // namespace

TEST_CASE("minimalRNN mean field: Q* and chi equal a Monte Carlo of the mean-field process (100k units)",
          "[meanfield][minimalrnn]") {
  struct Case {
    double gain, gate_bias, input_std, bias_mean, bias_std;
  };
  // Vanishing, near the critical line, chaotic, and a quenched input bias (m2 > 0).
  for (const Case& k : {Case{2.0, 0.0, 1.0, 0.0, 0.0}, Case{6.0, 2.0, 1.0, 0.0, 0.0}, Case{9.0, 3.0, 1.0, 0.0, 0.0},
                        Case{3.0, 1.0, 0.5, 0.4, 0.6}}) {
    const MeanFieldParams p = minimal(k.gain, k.gate_bias, k.input_std, k.bias_mean, k.bias_std);
    const MeanField mf = mean_field(p);
    const auto [q, chi] = population(p, 100000, 200, 200, 7);
    INFO("gain " << k.gain << " gate bias " << k.gate_bias << ": theory Q* " << mf.q << " chi " << mf.chi
                 << ", Monte Carlo " << q << ", " << chi);
    REQUIRE(mf.status == MeanFieldStatus::ok);
    CHECK(mf.q == Approx(q).epsilon(kMinimalRnnMonteCarloTol));
    CHECK(mf.chi == Approx(chi).epsilon(kMinimalRnnMonteCarloTol));
    CHECK(mf.growth == Approx(std::sqrt(mf.chi)).epsilon(1e-15));
    CHECK(mf.lyapunov == Approx(std::log(mf.growth)).epsilon(1e-15));
  }
}

TEST_CASE("minimalRNN mean field without input fluctuations: h settles on z and chi = E[u^2] in closed form",
          "[meanfield][minimalrnn][closed_form]") {
  // No input and f(b_z) = 0: z = 0, h -> 0, the gate sees e = b_u exactly, chi = sigmoid(b_u)^2 at every gain.
  for (double g : {0.5, 3.0, 20.0})
    for (double b : {-3.0, 0.0, 2.5}) {
      INFO("gain " << g << " gate bias " << b);
      const MeanField mf = mean_field(minimal(g, b, 0.0));
      CHECK(mf.q == 0.0);
      CHECK(mf.chi == Approx(sigmoid(b) * sigmoid(b)).epsilon(1e-14));
    }
  // A constant input map z = tanh(0.8) on every unit: h -> z, Q* = tanh(0.8)^2, E[(h - z)^2] = 0, and
  // chi = E[sigmoid(e)^2], e ~ N(b_u, (gain^2 + 1) Q*), here through the activation table's moments.
  const double z2 = std::tanh(0.8) * std::tanh(0.8);
  for (double g : {0.5, 4.0})
    for (double b : {-1.0, 1.5}) {
      INFO("gain " << g << " gate bias " << b);
      const MeanField mf = mean_field(minimal(g, b, 0.0, 0.8));
      CHECK(mf.q == Approx(z2).epsilon(1e-14));
      const double e_std = std::sqrt((g * g + 1.0) * z2);
      CHECK(mf.chi ==
            Approx(gaussian_moments(Activation(ActivationKind::sigmoid), b, e_std).second_moment).epsilon(kMeanFieldQuadTol));
    }
}

TEST_CASE("minimalRNN mean field: chi -> 1 as the gate bias -> +inf, chi -> 0 as it -> -inf, at their asymptotic rates",
          "[meanfield][minimalrnn][limits]") {
  // b_u -> +inf: u = 1 - v with v ~ e^{-e}, so 1 - chi = 2 E[v] + O(e^{-2 b}) ~ 2 e^{-b_u + q_e / 2}: ln(1 - chi)
  // falls by 1 per unit of bias. b_u -> -inf: u ~ e^{e}, chi ~ E[u^2] (1 + gain^2 E[(h - z)^2]) ~ e^{2 b_u}: ln growth
  // = ln sqrt(chi) falls by 1 per unit of bias, with every digit (chi ~ 1e-40 and below at b_u = -60).
  for (double g : {1.0, 6.0}) {
    INFO("gain " << g);
    const MeanField up10 = mean_field(minimal(g, 10.0, 1.0)), up15 = mean_field(minimal(g, 15.0, 1.0));
    CHECK(up10.chi < 1.0);
    CHECK(up15.chi < 1.0);
    CHECK(1.0 - up15.chi < 1e-5);
    CHECK(std::log(1.0 - up15.chi) - std::log(1.0 - up10.chi) == Approx(-5.0).epsilon(kMinimalRnnAsymptoteTol));
    const MeanField up40 = mean_field(minimal(g, 40.0, 1.0));
    CHECK(up40.chi <= 1.0);
    CHECK(up40.chi == Approx(1.0).epsilon(1e-15));
    // (At gain 6 q_e ~ 15: E[u^2] = E[e^{2 e}] is carried by e ~ b_u + 2 q_e, so the asymptote needs b_u << -30.)
    const MeanField down60 = mean_field(minimal(g, -60.0, 1.0)), down90 = mean_field(minimal(g, -90.0, 1.0));
    CHECK(down60.chi > 0.0);
    CHECK(down60.chi < 1e-20);
    CHECK(std::isfinite(down90.lyapunov));
    CHECK(down90.lyapunov - down60.lyapunov == Approx(-30.0).epsilon(kMinimalRnnAsymptoteTol));
  }
}

TEST_CASE("minimalRNN critical line: chi = 1 at the critical gain of each gate bias, none without input",
          "[meanfield][minimalrnn][critical]") {
  for (double b : {0.0, 2.0, 5.0}) {
    INFO("gate bias " << b);
    const CriticalGain c = critical_gain(minimal(1.0, b, 1.0), 0.1, 100.0);
    REQUIRE(c.gain);
    if (!c.gain_is_jump) {
      const MeanField at = mean_field(minimal(*c.gain, b, 1.0));
      CHECK(at.chi == Approx(1.0).epsilon(1e-9));
      CHECK(c.q == Approx(at.q).epsilon(1e-12));
    }
    CHECK(mean_field(minimal(0.99 * *c.gain, b, 1.0)).chi < 1.0);
    CHECK(mean_field(minimal(1.01 * *c.gain, b, 1.0)).chi > 1.0);
  }
  // At b_u = 2 chi passes continuously through 1; at b_u = 5 the fixed point reached from P_0 = 0 (the low
  // branch, P* ~ 0.003) disappears in a fold near gain 8.9 and P jumps to the high branch (P* ~ 0.16): chi jumps
  // across 1 there.
  CHECK_FALSE(critical_gain(minimal(1.0, 2.0, 1.0), 0.1, 100.0).gain_is_jump);
  CHECK(critical_gain(minimal(1.0, 5.0, 1.0), 0.1, 100.0).gain_is_jump);
  // No drive: chi = sigmoid(b_u)^2 < 1 at every gain.
  CHECK_FALSE(critical_gain(minimal(1.0, 2.0, 0.0), 0.1, 100.0).gain);
  // gru and lstm have no mean-field theory here.
  MeanFieldParams gru = minimal(1.0, 0.0, 1.0);
  gru.cell = CellKind::gru;
  CHECK(mean_field(gru).status == MeanFieldStatus::not_applicable);
  MeanFieldParams bad = minimal(1.0, std::nan(""), 1.0);
  CHECK_THROWS_AS(mean_field(bad), std::invalid_argument);
}

TEST_CASE("a large random minimalRNN (N = 512): mf_growth is its measured statistics' RMS factor and its "
          "measured growth rate and mf_q its E[h^2] at small gain",
          "[meanfield][minimalrnn][finite_n]") {
  struct Case {
    double radius, gate_bias;
  };
  // Vanishing (0.63 per step), near the critical line, and inside the chaotic band.
  for (const Case& k : {Case{2.0, 0.0}, Case{6.0, 2.0}, Case{9.0, 3.0}}) {
    Config c;
    c.seed = 41;
    c.network.cell = CellKind::minimalrnn;
    c.network.units = 512;
    c.network.steps = 200;
    c.network.batch = 4;
    c.spectrum.radius = k.radius;
    c.gates.bias = k.gate_bias;
    c.input.kind = InputKind::gaussian;
    c.input.std = 1.0;
    c.input.dim = 256;  // each unit's input variance within ~10 % of input.std^2
    c.analysis.burn_in = 200;
    const CellResult r = simulate_cell(c, 0, 0);
    const Model model = build_model(c, 0, 0, nullptr);
    const Drive drive = build_drive(c, 0, 0);
    const Tape<double> tape = forward_pass<double>(model, drive);
    const double h2 = tape.final_state.squaredNorm() / double(tape.final_state.size());
    REQUIRE(r.metrics.fit.growth_rate);
    REQUIRE(r.mean_field.status == MeanFieldStatus::ok);
    const double measured = *r.metrics.fit.growth_rate;
    // The RMS factor of the run's own Jacobian coefficients u and (h - z) sigmoid'(e) at the theory's gain.
    REQUIRE(r.trace.coef_rms.size() == 2);
    const double u_rms = r.trace.coef_rms[0], k_rms = r.trace.coef_rms[1];
    const double stats = std::sqrt(u_rms * u_rms + k_rms * k_rms * r.gain_rms * r.gain_rms);
    INFO("radius " << k.radius << " gate bias " << k.gate_bias << ": gain_rms " << r.gain_rms << ", E[h^2] " << h2
                   << " mf_q " << r.mean_field.q << "; growth_rate " << measured << " RMS factor " << stats
                   << " predictor_rms_cell " << r.metrics.predictor_rms_cell << " mf_growth " << r.mean_field.growth);
    // Q* is the annealed value (a fresh gate each step). With U_h fixed, a unit's gate is partly frozen in time,
    // and at large gain, where the gate pre-activation spreads over several units of e, units with a closed gate
    // average many inputs: E[h^2] falls well below Q* (0.094 against 0.156 at radius 6, N = 512), while chi, dominated by
    // E[(h - z)^2] ~ S, stays close.
    if (k.radius < 3) CHECK(r.mean_field.q == Approx(h2).epsilon(kMinimalRnnFiniteNQTol));
    else CHECK(h2 < r.mean_field.q);
    CHECK(r.mean_field.growth == Approx(stats).epsilon(kMinimalRnnStatsTol));
    CHECK(std::abs(std::log(measured) - r.mean_field.lyapunov) <= kMinimalRnnFiniteNGrowthTol);
  }
}
