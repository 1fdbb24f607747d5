// gradflow critical: the mean-field critical gain of a random network (chi = 1); for the minimalrnn, its critical
// line: the critical gain of U_h at each gate bias.
#include <cstdio>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "gradflow/analysis/meanfield.hpp"
#include "gradflow/numerics/activation.hpp"
#include "gradflow/run/scenario.hpp"

namespace gradflow::cli {
namespace {

struct CriticalArgs {
  std::string activation;
  std::string cell = "vanilla";
  std::vector<double> gate_biases;  // minimalrnn: the line's gate biases (default kDefaultGateBiases)
  double gate_input_gain = 1.0;     // minimalrnn: sigma_v of U_z
  bool gate_flags_given = false;
  double input_std = 0.0, bias_mean = 0.0, bias_std = 0.0, alpha = 0.01, beta = 1.0;
  double init_std = 0.0;  // init.state = "zero", the scenarios' default
  double lo = 1e-2, hi = 1e3;
  bool alpha_given = false, json = false;
};

/// A fixed point this many times the scale of the drive (1 + q0 + F(0)) is a rounding artefact of a divergence.
constexpr double kDivergedRatio = 1e10;

/// The gate biases of the minimalrnn's line when --gate-bias is not given: -4, -3, ..., 8.
std::vector<double> default_gate_biases() {
  std::vector<double> b;
  for (int k = -4; k <= 8; ++k) b.push_back(k);
  return b;
}

/// The minimalrnn's critical line: for each gate bias b_u, the gains sigma_h of U_h where chi = 1.
int print_minimalrnn_line(const CriticalArgs& a, MeanFieldParams p) {
  nlohmann::json line = nlohmann::json::array();
  bool any_none = false;
  if (!a.json) {
    std::printf("cell            minimalrnn (z = f(W_x x + b_z), u = sigmoid(U_h h + U_z z + b_u), h' = u h + (1 - u) z)\n");
    std::printf("activation      %s (alpha %g, beta %g)\n", to_string(p.activation.kind).c_str(), p.activation.alpha,
                p.activation.beta);
    std::printf("input std       %g   b_z ~ N(%g, %g^2)   init std %g   U_z gain %g\n", a.input_std, a.bias_mean,
                a.bias_std, a.init_std, a.gate_input_gain);
    std::printf("critical line   chi = E[u^2] + gain^2 E[sigmoid'(e)^2] E[(h - z)^2] = 1; gain = ||U_h||_F / sqrt(N) ~ "
                "radius for Ginibre U_h\n");
    std::printf("%12s  %16s  %14s  %s\n", "gate bias", "critical gain", "Q* there", "other crossings");
  }
  for (double b : a.gate_biases) {
    p.gate_bias = b;
    const CriticalGain c = critical_gain(p, a.lo, a.hi);
    double q = 0.0;
    if (c.gain) {
      MeanFieldParams at = p;
      at.gain = *c.gain;
      q = mean_field(at).q;
    }
    if (a.json) {
      line.push_back({{"gate_bias", b},
                      {"critical_gain", c.gain ? nlohmann::json(*c.gain) : nlohmann::json(nullptr)},
                      {"q_star", c.gain ? nlohmann::json(q) : nlohmann::json(nullptr)},
                      {"gain_is_jump", c.gain_is_jump}, {"crossings", c.crossings}, {"jumps", c.jumps}});
      continue;
    }
    if (!c.gain) {
      any_none = true;
      std::printf("%12g  %16s  %14s\n", b, "none", "-");
      continue;
    }
    std::string others;
    for (double g : c.crossings)
      if (g != *c.gain) others += " " + std::to_string(g);
    std::printf("%12g  %16.10f  %14.8g %s%s\n", b, *c.gain, q, others.c_str(),
                c.gain_is_jump ? " (chi jumps across 1: Q* switches branch)" : "");
  }
  if (a.json) {
    const nlohmann::json j = {{"cell", "minimalrnn"}, {"activation", to_string(p.activation.kind)},
                              {"alpha", p.activation.alpha}, {"beta", p.activation.beta}, {"input_std", a.input_std},
                              {"bias_mean", a.bias_mean}, {"bias_std", a.bias_std}, {"init_std", a.init_std},
                              {"gate_input_gain", a.gate_input_gain}, {"range", {a.lo, a.hi}}, {"line", line}};
    std::cout << j.dump(2) << "\n";
  } else if (any_none) {
    std::printf("none: chi < 1 over the whole range [%g, %g] (gradients vanish at every gain)\n", a.lo, a.hi);
  }
  return kExitOk;
}

/// Mean-field critical gain: chi(gain) = 1.
int cmd_critical(const CriticalArgs& a) {
  ActivationKind kind;
  try {
    kind = parse_activation(a.activation);
  } catch (const std::invalid_argument& e) {
    throw InputError("--activation " + a.activation + ": " + e.what());
  }
  auto finite_non_negative = [](const char* flag, double x) {
    if (!std::isfinite(x) || x < 0) throw InputError(std::string(flag) + " = " + std::to_string(x) + ": must be >= 0");
  };
  finite_non_negative("--input-std", a.input_std);
  finite_non_negative("--bias-std", a.bias_std);
  if (!std::isfinite(a.bias_mean)) throw InputError("--bias-mean: must be finite");
  if (!(a.lo > 0 && a.hi > a.lo && std::isfinite(a.hi)))
    throw InputError("--range: must satisfy 0 < LO < HI");
  MeanFieldParams p;
  p.activation = Activation(kind, a.alpha_given ? a.alpha : default_alpha(kind), a.beta);
  try {
    p.activation.validate();
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("--alpha/--beta: ") + e.what());
  }
  p.input_std = a.input_std;
  p.bias_mean = a.bias_mean;
  p.bias_std = a.bias_std;
  finite_non_negative("--init-std", a.init_std);
  p.h0_sq = a.init_std * a.init_std;
  CellKind cell;
  try {
    cell = parse_cell_kind(a.cell);
  } catch (const std::invalid_argument& e) {
    throw InputError("--cell " + a.cell + ": " + e.what());
  }
  if (cell != CellKind::vanilla && cell != CellKind::minimalrnn)
    throw InputError("--cell " + a.cell + ": expected vanilla or minimalrnn (the cells with a mean-field theory)");
  if (cell == CellKind::vanilla && a.gate_flags_given)
    throw InputError("--gate-bias and --gate-input-gain: only with --cell minimalrnn");
  if (cell == CellKind::minimalrnn) {
    for (double b : a.gate_biases)
      if (!std::isfinite(b)) throw InputError("--gate-bias " + std::to_string(b) + ": must be finite");
    finite_non_negative("--gate-input-gain", a.gate_input_gain);
    p.cell = cell;
    p.gate_input_gain = a.gate_input_gain;
    CriticalArgs line = a;
    if (line.gate_biases.empty()) line.gate_biases = default_gate_biases();
    return print_minimalrnn_line(line, p);
  }
  const CriticalGain c = critical_gain(p, a.lo, a.hi);
  MeanField at;
  if (c.gain) {
    p.gain = *c.gain;
    at = mean_field(p);
    // At the edge of a homogeneous activation (ReLU at sqrt 2 with input) F(q) = q + const: no fixed point,
    // and rounding of gain^2 E f^2 / q leaves one near const / 1e-16. Such a q* is the divergence, not a value.
    const double scale = 1.0 + p.initial_variance() + mean_field_map(p, 0.0);
    if (at.status == MeanFieldStatus::ok && at.q > kDivergedRatio * scale) {
      at.status = MeanFieldStatus::q_diverges;
      at.message = "q* diverges at the critical gain";
    }
  }
  if (a.json) {
    nlohmann::json j = {{"activation", to_string(kind)}, {"alpha", p.activation.alpha}, {"beta", p.activation.beta},
                        {"input_std", a.input_std}, {"bias_mean", a.bias_mean}, {"bias_std", a.bias_std},
                        {"critical_gain", c.gain ? nlohmann::json(*c.gain) : nlohmann::json(nullptr)},
                        {"q_star", c.gain && at.status == MeanFieldStatus::ok ? nlohmann::json(at.q) : nlohmann::json(nullptr)},
                        {"mf_status", c.gain ? nlohmann::json(to_string(at.status)) : nlohmann::json(nullptr)},
                        {"gain_is_jump", c.gain_is_jump}, {"crossings", c.crossings}, {"jumps", c.jumps},
                        {"range", {c.lo, c.hi}}, {"init_std", a.init_std}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("activation      %s (alpha %g, beta %g)\n", to_string(kind).c_str(), p.activation.alpha,
                p.activation.beta);
    std::printf("input std       %g   bias ~ N(%g, %g^2)   init std %g\n", a.input_std, a.bias_mean, a.bias_std,
                a.init_std);
    if (!c.gain) {
      std::printf("critical gain   none in [%g, %g]: chi = 1 is never reached\n", c.lo, c.hi);
    } else {
      std::printf("critical gain   %.10f   (chi = gain^2 E[f'(a)^2] = 1; gain = ||W||_F / sqrt(N) ~ rho(W) for "
                  "Ginibre W)\n", *c.gain);
      if (at.status == MeanFieldStatus::ok) std::printf("q* there        %.10g\n", at.q);
      else std::printf("q* there        diverges\n");
      if (c.gain_is_jump)
        std::printf("note            chi jumps across 1 here: the fixed point reached from q0 = gain^2 init_std^2 "
                    "+ input_std^2 + bias_std^2 switches branch\n");
      auto list = [](const char* name, const std::vector<double>& v, double skip) {
        std::string text;
        for (double g : v)
          if (g != skip) text += " " + std::to_string(g);
        if (!text.empty()) std::printf("%-15s%s\n", name, text.c_str());
      };
      list("crossings", c.crossings, *c.gain);
      list("jumps", c.jumps, *c.gain);
    }
  }
  return kExitOk;
}

}  // namespace

Command add_critical(CLI::App& app) {
  auto a = std::make_shared<CriticalArgs>();
  auto range = std::make_shared<std::vector<double>>();
  auto* cmd = app.add_subcommand("critical", "Mean-field critical gain (radius) of a random network: where "
                                             "chi = gain^2 E[f'(a)^2] = 1, to 1e-8; --cell minimalrnn: its "
                                             "critical line over the gate bias");
  cmd->add_option("--activation", a->activation, "Activation (as in scenario files: tanh, relu, ...)")->required();
  cmd->add_option("--input-std", a->input_std, "Std of each unit's input current (default 0)");
  cmd->add_option("--bias-mean", a->bias_mean, "Mean of the bias b_i (default 0)");
  cmd->add_option("--bias-std", a->bias_std, "Std of the bias b_i (default 0)");
  auto* alpha = cmd->add_option("--alpha", a->alpha, "alpha of leaky_relu / elu (default 0.01 / 1)");
  cmd->add_option("--beta", a->beta, "beta of softplus / swish (default 1)");
  cmd->add_option("--init-std", a->init_std,
                  "Std of the initial state h_0 (default 0, as init.state = \"zero\" of a scenario): where the variance "
                  "iteration starts");
  cmd->add_option("--range", *range, "Gain range searched: LO HI (default 0.01 1000)")->expected(2);
  cmd->add_option("--cell", a->cell,
                  "vanilla (default) or minimalrnn: prints its critical line, the critical gain of U_h at each gate "
                  "bias");
  auto* gate_bias = cmd->add_option("--gate-bias", a->gate_biases,
                                    "minimalrnn: the gate biases b_u of the line (default -4 -3 ... 8)");
  auto* gate_gain = cmd->add_option("--gate-input-gain", a->gate_input_gain,
                                    "minimalrnn: gain of U_z, ||U_z||_F / sqrt(N) (default 1, as gradflow draws it)");
  cmd->add_flag("--json", a->json, "Print JSON instead of text");
  return {cmd, [a, range, alpha, gate_bias, gate_gain] {
            a->alpha_given = alpha->count() > 0;
            a->gate_flags_given = gate_bias->count() > 0 || gate_gain->count() > 0;
            if (range->size() == 2) a->lo = (*range)[0], a->hi = (*range)[1];
            return cmd_critical(*a);
          }};
}

}  // namespace gradflow::cli
