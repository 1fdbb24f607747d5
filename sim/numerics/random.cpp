#include "gradflow/numerics/random.hpp"

#include <cmath>

namespace gradflow {
namespace {

double density(double x) { return std::exp(-0.5 * x * x); }

struct Tables {
  std::array<double, StandardNormal::kLayers + 1> x{}, f{};
  Tables() {
    constexpr int c = StandardNormal::kLayers;
    const double r = StandardNormal::kTail, v = StandardNormal::kArea;
    x[0] = v / density(r);
    x[1] = r;
    for (int i = 1; i < c - 1; ++i) x[i + 1] = std::sqrt(-2.0 * std::log(density(x[i]) + v / x[i]));
    x[c] = 0.0;
    for (int i = 0; i <= c; ++i) f[i] = density(x[i]);  // f[0] is never used: the base layer's overhang is the tail
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

constexpr double kTwoPow53 = 9007199254740992.0;

/// Uniform on (0, 1] from the top 53 bits of a draw (never 0: its logarithm is taken).
double open_uniform(Rng& rng) { return (static_cast<double>(rng() >> 11) + 1.0) / kTwoPow53; }

}  // namespace

const std::array<double, StandardNormal::kLayers + 1>& StandardNormal::boundaries() { return tables().x; }
const std::array<double, StandardNormal::kLayers + 1>& StandardNormal::densities() { return tables().f; }

double StandardNormal::operator()(Rng& rng) const {
  const Tables& t = tables();
  for (;;) {
    const std::uint64_t bits = rng();
    const int i = static_cast<int>(bits & (kLayers - 1));                  // the layer: the low 7 bits
    const double u = static_cast<double>(bits >> 11) * (2.0 / kTwoPow53) - 1.0;  // [-1, 1): the top 53 bits
    const double x = u * t.x[i];
    if (std::abs(x) < t.x[i + 1]) return x;  // inside the layer's rectangle below the next layer
    if (i == 0) {
      // The tail |x| > r (Marsaglia 1964): x = r + a with a ~ Exp(r) accepted with probability exp(-a^2 / 2).
      double a, b;
      do {
        a = -std::log(open_uniform(rng)) / kTail;
        b = -std::log(open_uniform(rng));
      } while (b + b < a * a);
      return u < 0.0 ? -(kTail + a) : kTail + a;
    }
    // The wedge between the layer's rectangle and the curve: accept under exp(-x^2 / 2).
    const double y = t.f[i] + (static_cast<double>(rng() >> 11) / kTwoPow53) * (t.f[i + 1] - t.f[i]);
    if (y < density(x)) return x;
  }
}

}  // namespace gradflow
