#pragma once

#include <optional>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "gradflow/model/config.hpp"
#include "gradflow/numerics/activation.hpp"

namespace gradflow {

/// A random network in the mean-field (large N) picture: W_ij ~ N(0, gain^2 / N), an input current of
/// std input_std per unit and step, b_i ~ N(bias_mean, bias_std^2). Pre-activations are then Gaussian,
/// a ~ N(bias_mean, q), across units (Molgedey, Schuchhardt & Schuster 1992; Poole et al. 2016).
/// For cell = minimalrnn (Chen, Pennington & Schoenholz 2018) the same fields describe its blocks: gain is
/// sigma_h of U_h, input_std, bias_mean and bias_std those of the input map's a = W_x x_t + b_z (x_t fresh
/// each step, b_z fixed per unit), plus the update gate's gate_bias and gate_input_gain.
struct MeanFieldParams {
  Activation activation;
  double gain = 1.0;       // sigma_w = ||W||_F / sqrt(N) of the W actually built (>= 0); minimalrnn: of U_h
  double input_std = 0.0;  // std of (U x_t)_i (>= 0); minimalrnn: of (W_x x_t)_i
  double bias_mean = 0.0;  // minimalrnn: of b_z
  double bias_std = 0.0;   // (>= 0)
  CellKind cell = CellKind::vanilla;  // vanilla or minimalrnn; any other cell gives status not_applicable
  double gate_bias = 0.0;             // minimalrnn: b_u, the update gate's bias (gates.bias)
  double gate_input_gain = 1.0;       // minimalrnn: sigma_v = ||U_z||_F / sqrt(N) (gradflow draws U_z ~ N(0, 1/N))
  /// E[h_0^2] of the initial state: q_{n+1} = F(q_n) starts at q_0 = gain^2 h0_sq + input_std^2 +
  /// bias_std^2, the variance of the first pre-activation (a network at rest with no drive stays at 0).
  double h0_sq = 1.0;

  double initial_variance() const { return gain * gain * h0_sq + input_std * input_std + bias_std * bias_std; }
};

enum class MeanFieldStatus {
  ok,              // a finite fixed point q*
  q_diverges,      // q_{n+1} = F(q_n) grows without bound (e.g. ReLU at gain > sqrt 2): chi is its
                   // q -> infinity limit
  not_applicable,  // the theory is not defined here (residual, leaky, gru and lstm cells)
  overflow         // the data's variances overflow double (a file's values beyond ~1e154: their squares are
                   // infinite): no prediction, the cell's measured numbers stand
};
std::string to_string(MeanFieldStatus s);
MeanFieldStatus parse_mean_field_status(const std::string& name);

struct MeanField {
  MeanFieldStatus status = MeanFieldStatus::ok;
  double q = 0.0;         // q*: variance of a about bias_mean at the fixed point (unset when q diverges);
                          // minimalrnn: Q* = E[h^2], the state's second moment
  double chi = 0.0;       // gain^2 E[f'(a)^2], a ~ N(bias_mean, q*): the per-step factor of ||delta||^2
  double growth = 0.0;    // sqrt(chi): the per-step factor of a perturbation (and of ||g_t||)
  double lyapunov = 0.0;  // ln(growth): -inf when chi = 0
  std::string message;
};

/// The variance map F(q) = gain^2 E[f(a)^2] + input_std^2 + bias_std^2 with a ~ N(bias_mean, q): the
/// pre-activation variance one step after variance q (E[f^2] includes the mean of f: W has zero-mean
/// entries, so W h has variance gain^2 E[h^2]).
double mean_field_map(const MeanFieldParams& p, double q);

/// chi(q) = gain^2 E[f'(a)^2], a ~ N(bias_mean, q); at q = 0 its limit q -> 0+,
/// gain^2 (f'(bias_mean+)^2 + f'(bias_mean-)^2) / 2 (a state tending to a fixed point at a kink sees both
/// sides of it: ReLU at 0 gives gain^2 / 2).
double mean_field_chi(const MeanFieldParams& p, double q);

/// The fixed point q* = F(q*) that q_{n+1} = F(q_n) reaches from q_0 = p.initial_variance(): F is
/// increasing, so the iteration moves monotonically towards the nearest fixed point in the direction of
/// D(q) = F(q) - q. Found by scanning from q_0 (down by factors of 8 when D(q_0) < 0, up by factors of 4
/// when D(q_0) > 0) to a sign change of D, polished with Brent's method to 1e-14 relative; q* = 0 when
/// D < 0 down to 1e-100 and F(0) = 0 (tanh, gain < 1, no input, no bias). Then chi, growth = sqrt(chi),
/// lyapunov = ln growth. When D > 0 up to q = 1e30 the variance diverges: status q_diverges and
/// chi = gain^2 (f'(+inf)^2 + f'(-inf)^2) / 2. Throws std::invalid_argument on negative or non-finite
/// parameters. For p.cell = minimalrnn: minimalrnn_mean_field(p); other cells than vanilla: not_applicable.
MeanField mean_field(const MeanFieldParams& p);

/// The minimalRNN of Chen, Pennington & Schoenholz 2018, z = f(W_x x + b_z), u = sigmoid(U_h h + U_z z + b_u),
/// h' = u h + (1 - u) z, in the large-N limit: U_h, U_z with independent entries of variance gain^2 / N and
/// gate_input_gain^2 / N, x_t fresh each step, b_z,i = c_i ~ N(bias_mean, bias_std^2) fixed per unit. Then
/// z = f(c + xi), xi ~ N(0, input_std^2) fresh each step; the gate pre-activation is e ~ N(b_u, q_e),
/// q_e = gain^2 Q + gate_input_gain^2 R, independent of the unit's own h and z; with v = 1 - u = sigmoid(-e):
///   R = E[z^2],  m2 = E_c[(E_xi z)^2],  S = R - m2   (S: the variance of z about its unit's mean)
///   P = E[(h - E[h | c])^2] at the fixed point P = S E[v^2] / E[v (2 - v)]  (from P' = E[u^2] P + E[v^2] S),
///   Q* = m2 + P (the `q` of the result),  E[(h - z)^2] = P + S,
///   chi = E[u^2] + gain^2 E[sigmoid'(e)^2] (P + S)   (the mean squared singular value of the step Jacobian
///         J = diag(u) + diag((h - z) sigmoid'(e)) U_h, the factor of E||J^T g||^2 per step)
/// growth = sqrt(chi), lyapunov = ln growth. Every fixed point lies in 0 <= P <= S; the one taken is the nearest
/// to P_0 = h0_sq + m2 in the direction of P' - P (as for the vanilla cell). chi - 1 = gain^2 E[sigmoid'^2]
/// (P + S) - E[v (2 - v)] is computed without cancellation, so chi -> 1 as b_u -> +inf and chi -> 0 as
/// b_u -> -inf keep their digits. The state stays bounded (|h| <= max |z|): the status is always ok.
MeanField minimalrnn_mean_field(const MeanFieldParams& p);

/// Where chi(gain) = 1 (the edge of chaos of the mean-field theory), gain in [lo, hi].
struct CriticalGain {
  std::optional<double> gain;    // the smallest gain with chi = 1 (crossing or jump), to 1e-10 relative
  bool gain_is_jump = false;     // chi jumps across 1 at `gain` (see jumps)
  double q = 0.0;                // q* at that gain
  std::vector<double> crossings; // every gain in [lo, hi] where chi passes continuously through 1
  /// Gains where chi jumps across 1 because the fixed point reached from q_0 switches branch (bistable
  /// activations such as swish, whose q = 0 stays stable while a large-q branch diverges).
  std::vector<double> jumps;
  double lo = 0.0, hi = 0.0;     // the range searched
};

/// Scans gain geometrically over [lo, hi] (factor 1.05) for sign changes of chi(gain) - 1 and refines
/// each with Brent's method. With no input, no bias spread and f(bias_mean) = 0 (q* = 0 below the edge),
/// chi - 1 only grows as (gain - g0)^2 past the edge; the crossing is then the exact
/// g0 = 1 / sqrt(lim_{q->0+} E f'^2) where q = 0 loses stability (tanh: 1, ReLU: sqrt 2). p.gain is
/// ignored (q_0 follows it: gain^2 h0_sq + ...). Requires 0 < lo < hi. For p.cell = minimalrnn the gain is
/// sigma_h of U_h at the given gate bias, input and bias (chi - 1 from minimalrnn_mean_field).
CriticalGain critical_gain(const MeanFieldParams& p, double lo = 1e-2, double hi = 1e3);

/// ||W||_F / sqrt(N): the gain sigma_w of the mean-field theory for the W actually built.
double gain_rms(const Eigen::MatrixXd& w);

}  // namespace gradflow
