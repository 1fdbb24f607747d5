// The ziggurat normal generator (StandardNormal): its table, and its draws against N(0, 1).
#include <algorithm>
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "gradflow/numerics/random.hpp"

using namespace gradflow;

namespace {

double phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }  // standard normal CDF

std::vector<double> draws(std::size_t count, std::uint64_t seed) {
  Rng rng(seed);
  const StandardNormal normal;
  std::vector<double> v(count);
  for (double& x : v) x = normal(rng);
  return v;
}

}  // namespace

TEST_CASE("ziggurat table: 128 layers of equal area v under exp(-x^2/2), closing at the top", "[random]") {
  const auto& x = StandardNormal::boundaries();
  const auto& f = StandardNormal::densities();
  const double r = StandardNormal::kTail, v = StandardNormal::kArea;
  CHECK(x[1] == r);
  CHECK(x[StandardNormal::kLayers] == 0.0);
  // The base layer: the rectangle [0, r] x [0, f(r)] plus the tail, whose area is sqrt(pi/2) erfc(r/sqrt 2).
  const double tail = std::sqrt(M_PI / 2.0) * std::erfc(r / std::sqrt(2.0));
  CHECK(std::abs(r * f[1] + tail - v) <= 1e-9 * v);
  CHECK(std::abs(x[0] * f[1] - v) <= 1e-15 * v);
  for (int i = 1; i < StandardNormal::kLayers; ++i) {
    INFO("layer " << i);
    CHECK(x[i + 1] < x[i]);
    // Layer i spans heights f(x_i) .. f(x_{i+1}) at width x_i: the top one reaches f(0) = 1 with area v too.
    CHECK(std::abs(x[i] * (f[i + 1] - f[i]) - v) <= 1e-8 * v);
  }
}

TEST_CASE("ziggurat draws are N(0, 1): moments, Kolmogorov-Smirnov distance, tails, symmetry", "[random]") {
  const std::size_t n = 2000000;
  const std::vector<double> v = draws(n, 20261204);
  double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
  std::size_t beyond_r = 0, beyond_4 = 0, negative = 0;
  for (double x : v) {
    m1 += x;
    m2 += x * x;
    m3 += x * x * x;
    m4 += x * x * x * x;
    beyond_r += std::abs(x) > StandardNormal::kTail ? 1 : 0;
    beyond_4 += std::abs(x) > 4.0 ? 1 : 0;
    negative += x < 0 ? 1 : 0;
  }
  const double dn = static_cast<double>(n);
  m1 /= dn, m2 /= dn, m3 /= dn, m4 /= dn;
  // Five standard errors of each sample moment of N(0, 1): sd of x, x^2, x^3, x^4 are 1, sqrt 2, sqrt 15, sqrt 96.
  const double se = 5.0 / std::sqrt(dn);
  CHECK(std::abs(m1) <= se);
  CHECK(std::abs(m2 - 1.0) <= std::sqrt(2.0) * se);
  CHECK(std::abs(m3) <= std::sqrt(15.0) * se);
  CHECK(std::abs(m4 - 3.0) <= std::sqrt(96.0) * se);
  // Binomial counts within five standard deviations of their expectations.
  auto near = [&](std::size_t count, double p) {
    return std::abs(static_cast<double>(count) - dn * p) <= 5.0 * std::sqrt(dn * p * (1 - p));
  };
  CHECK(near(beyond_r, 2.0 * (1.0 - phi(StandardNormal::kTail))));
  CHECK(near(beyond_4, 2.0 * (1.0 - phi(4.0))));
  CHECK(near(negative, 0.5));
  // Kolmogorov-Smirnov: sup |F_n - Phi| below the 0.1 % critical value 1.95 / sqrt(n).
  std::vector<double> s = v;
  std::sort(s.begin(), s.end());
  double d = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double p = phi(s[i]);
    d = std::max({d, static_cast<double>(i + 1) / dn - p, p - static_cast<double>(i) / dn});
  }
  CHECK(d <= 1.95 / std::sqrt(dn));
}

TEST_CASE("ziggurat draws are a function of the seed alone", "[random]") {
  CHECK(draws(1000, 7) == draws(1000, 7));
  CHECK(draws(1000, 7) != draws(1000, 8));
}
