// gradflow activations: Gaussian moments of every activation.
#include <cstdio>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "gradflow/numerics/activation.hpp"
#include "gradflow/run/scenario.hpp"

namespace gradflow::cli {
namespace {

int cmd_activations(double mu, double sigma, double alpha, double beta, bool alpha_given, bool json) {
  if (!(sigma >= 0) || !std::isfinite(mu) || !std::isfinite(sigma))
    throw InputError("--sigma = " + std::to_string(sigma) + ": must be >= 0 (and --mu finite)");
  nlohmann::json arr = nlohmann::json::array();
  if (!json)
    std::printf("z ~ N(%g, %g^2)\n%-11s %13s %13s %13s %13s %13s %13s\n", mu, sigma, "name", "E[f]", "E[f^2]",
                "E|f'|", "E[f'^2]", "P(f=0)", "sup|f'|");
  for (ActivationKind k : all_activations()) {
    const Activation f(k, alpha_given ? alpha : default_alpha(k), beta);
    const GaussianMoments m = gaussian_moments(f, mu, sigma);
    if (json) {
      arr.push_back({{"name", to_string(k)}, {"mean", m.mean}, {"second_moment", m.second_moment},
                     {"mean_abs_deriv", m.mean_abs_deriv}, {"mean_sq_deriv", m.mean_sq_deriv},
                     {"zero_prob", m.zero_prob}, {"sup_abs_deriv", m.sup_abs_deriv}, {"alpha", f.alpha},
                     {"beta", f.beta}});
    } else {
      std::printf("%-11s %13.10f %13.10f %13.10f %13.10f %13.10f %13.10f\n", to_string(k).c_str(), m.mean,
                  m.second_moment, m.mean_abs_deriv, m.mean_sq_deriv, m.zero_prob, m.sup_abs_deriv);
    }
  }
  if (json) std::cout << arr.dump(2) << "\n";
  return kExitOk;
}

}  // namespace

Command add_activations(CLI::App& app) {
  struct Args {
    double mu = 0.0, sigma = 1.0, alpha = 0.01, beta = 1.0;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("activations", "Gaussian moments of every activation for z ~ N(mu, sigma^2)");
  cmd->add_option("--mu", a->mu, "Mean of z (default 0)");
  cmd->add_option("--sigma", a->sigma, "Std of z (default 1, >= 0)");
  auto* alpha = cmd->add_option("--alpha", a->alpha, "alpha of leaky_relu / elu (default 0.01 / 1)");
  cmd->add_option("--beta", a->beta, "beta of softplus / swish (default 1)")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", a->json, "Print a JSON array");
  return {cmd, [a, alpha] { return cmd_activations(a->mu, a->sigma, a->alpha, a->beta, alpha->count() > 0, a->json); }};
}

}  // namespace gradflow::cli
