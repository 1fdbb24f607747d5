// One BPTT through the installed gradflow library: a linear RNN with an orthogonal W of spectral radius 0.9
// loses gradient at exactly 0.9 per step, ||g_t|| = 0.9^(T - t) ||g_T||. Exit 0 when the measured rate says
// so (to 1e-8), 1 otherwise.
#include <cmath>
#include <cstdio>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/numerics/version.hpp"

int main() {
  gradflow::Config config;
  config.network.units = 32;
  config.network.steps = 100;
  config.network.batch = 2;
  config.network.activation = gradflow::ActivationKind::identity;
  config.spectrum.kind = gradflow::SpectrumKind::orthogonal;
  config.spectrum.radius = 0.9;
  config.input.kind = gradflow::InputKind::none;
  config.analysis.burn_in = 0;

  const gradflow::CellResult r = gradflow::simulate_cell(config, 0, 0);
  const auto& trace = r.trace;
  const double rate = r.metrics.fit.growth_rate.value_or(NAN);
  std::printf("gradflow %s (commit %s)\n", gradflow::version(), gradflow::git_commit());
  std::printf("rho(W) = %.12f  growth_rate = %.12f  log10 ||g_0|| - log10 ||g_T|| = %.6f (expected %.6f)\n",
              r.metrics.rho, rate, trace.log10_norm_mean.front() - trace.log10_norm_mean.back(),
              100 * std::log10(0.9));
  return std::abs(rate - 0.9) < 1e-8 ? 0 : 1;
}
