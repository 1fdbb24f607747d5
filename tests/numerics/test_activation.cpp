#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

// Third party
#include <catch2/catch.hpp>

#include "gradflow/numerics/activation.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using gradflow::test::kFiniteDiffTol;
using gradflow::test::kQuadratureRoundoff;
using gradflow::test::kQuadratureTol;
using gradflow::test::kSimdUlps;
using gradflow::test::kSupAttainTol;
using gradflow::test::kTrapezoidKinkTol;

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kSeluLambda = 1.0507009873554805;
constexpr double kSeluAlpha = 1.6732632423543772;

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
double normal_pdf(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2 * kPi); }
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

std::string describe(const Activation& f) {
  std::ostringstream os;
  os.precision(17);
  os << to_string(f.kind) << " (alpha " << f.alpha << ", beta " << f.beta << ")";
  return os.str();
}

/// Every kind at its defaults, plus parameters that change the shape (slopes above 1, sign flips,
/// sharp and soft beta).
std::vector<Activation> activation_variants() {
  std::vector<Activation> v;
  for (ActivationKind k : all_activations()) v.emplace_back(k);
  v.emplace_back(ActivationKind::leaky_relu, 0.2, 1.0);
  v.emplace_back(ActivationKind::leaky_relu, -2.0, 1.0);
  v.emplace_back(ActivationKind::elu, 0.3, 1.0);
  v.emplace_back(ActivationKind::elu, 2.0, 1.0);
  v.emplace_back(ActivationKind::softplus, 0.01, 0.5);
  v.emplace_back(ActivationKind::softplus, 0.01, 3.0);
  v.emplace_back(ActivationKind::swish, 0.01, 0.5);
  v.emplace_back(ActivationKind::swish, 0.01, 2.5);
  v.emplace_back(ActivationKind::swish, 0.01, -1.0);
  return v;
}

double distance_to_kink(const Activation& f, double x) {
  double dist = std::numeric_limits<double>::infinity();
  for (double k : f.kinks()) dist = std::min(dist, std::fabs(x - k));
  return dist;
}

/// Inputs for apply(): a fine ramp over the interesting range, the branch boundaries of the
/// implementation, and magnitudes up to the largest finite value of the type.
template <class Scalar>
std::vector<Scalar> probe_inputs() {
  std::vector<Scalar> x;
  for (int i = -40000; i <= 40000; i += 7) x.push_back(static_cast<Scalar>(i * 1e-3));
  const double specials[] = {0.0,   1e-30,  1e-10, 1e-5,  0.1499, 0.15,  0.1501, 0.2999,
                             0.3,   0.3001, 1.0,   2.0,   10.0,   50.0,  87.5,   88.7,
                             100.0, 700.0,  708.5, 710.0, 745.0,  800.0, 1e4,    1e30};
  for (double s : specials) {
    if (s > std::numeric_limits<Scalar>::max()) continue;
    x.push_back(static_cast<Scalar>(s));
    x.push_back(static_cast<Scalar>(-s));
  }
  x.push_back(std::numeric_limits<Scalar>::max());
  x.push_back(std::numeric_limits<Scalar>::lowest());
  std::mt19937 rng(20240611);
  std::normal_distribution<double> normal(0.0, 3.0);
  for (int i = 0; i < 777; ++i) x.push_back(static_cast<Scalar>(normal(rng)));
  return x;
}

/// |apply - scalar reference| allowed: kSimdUlps relative, widened by the condition number |beta x| of
/// sigmoid(beta x) in the argument (beta x rounds in Scalar), by an O(1) scale where f' is a sum of
/// O(1) terms that cancel (swish, gelu), and by an absolute floor near the underflow threshold (apply
/// flushes results below the smallest normal number to 0).
template <class Scalar>
double apply_tolerance(const Activation& f, double x, double ref, bool is_derivative) {
  const double eps = std::numeric_limits<Scalar>::epsilon();
  double cond = 1.0;
  if (f.kind == ActivationKind::softplus || f.kind == ActivationKind::swish)
    cond += std::min(std::fabs(f.beta * x), 1e3);
  double scale = std::fabs(ref);
  if (is_derivative && (f.kind == ActivationKind::swish || f.kind == ActivationKind::gelu)) scale += 1.0;
  return kSimdUlps * eps * cond * scale + 1e3 * std::numeric_limits<Scalar>::min();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Names and parameters

TEST_CASE("to_string and parse_activation round-trip every kind", "[activation][names]") {
  const std::vector<std::string> expected = {"identity", "tanh",  "sigmoid", "relu",      "leaky_relu", "elu",
                                             "softplus", "swish", "gelu",    "hard_tanh", "selu"};
  const auto& kinds = all_activations();
  REQUIRE(kinds.size() == expected.size());
  for (std::size_t i = 0; i < kinds.size(); ++i) {
    INFO("index " << i);
    CHECK(static_cast<std::size_t>(kinds[i]) == i);  // declaration order
    CHECK(to_string(kinds[i]) == expected[i]);
    CHECK(parse_activation(expected[i]) == kinds[i]);
  }
}

TEST_CASE("parse_activation rejects unknown names and lists the valid ones", "[activation][names]") {
  CHECK_THROWS_AS(parse_activation("ReLU"), std::invalid_argument);
  CHECK_THROWS_AS(parse_activation(""), std::invalid_argument);
  CHECK_THROWS_WITH(parse_activation("swishh"), Catch::Contains("swishh") && Catch::Contains("identity") &&
                                                    Catch::Contains("leaky_relu") && Catch::Contains("selu"));
}

TEST_CASE("default_alpha is 0.01 for leaky_relu and 1 for elu", "[activation][names]") {
  CHECK(default_alpha(ActivationKind::leaky_relu) == 0.01);
  CHECK(default_alpha(ActivationKind::elu) == 1.0);
  CHECK(default_alpha(ActivationKind::tanh) == 0.01);
  CHECK(Activation(ActivationKind::elu).alpha == 1.0);
  CHECK(Activation(ActivationKind::elu).beta == 1.0);
}

TEST_CASE("validate rejects non-finite parameters and softplus beta <= 0", "[activation][validate]") {
  CHECK_NOTHROW(Activation(ActivationKind::softplus, 0.01, 2.0).validate());
  CHECK_NOTHROW(Activation(ActivationKind::swish, 0.01, -1.0).validate());
  CHECK_THROWS_WITH(Activation(ActivationKind::softplus, 0.01, 0.0).validate(), Catch::Contains("beta > 0"));
  CHECK_THROWS_AS(Activation(ActivationKind::elu, std::nan(""), 1.0).validate(), std::invalid_argument);
  CHECK_THROWS_AS(Activation(ActivationKind::swish, 0.01, INFINITY).validate(), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// f and f'

TEST_CASE("derivative matches central differences for every activation away from kinks",
          "[activation][derivative]") {
  for (const Activation& f : activation_variants()) {
    for (double x = -9.0; x <= 9.0; x += 0.0371) {
      if (distance_to_kink(f, x) < 1e-3) continue;
      const double h = 1e-5 * std::max(1.0, std::fabs(x));
      const double fd = (f.value(x + h) - f.value(x - h)) / (2 * h);
      const double d = f.derivative(x);
      INFO(describe(f) << " at x = " << x << ": f' = " << d << ", central difference " << fd);
      CHECK(std::fabs(fd - d) <= kFiniteDiffTol * std::max(1.0, std::fabs(d)));
    }
  }
}

TEST_CASE("derivative at a kink is the right derivative", "[activation][derivative]") {
  CHECK(Activation(ActivationKind::relu).derivative(0.0) == 1.0);
  CHECK(Activation(ActivationKind::leaky_relu, 0.2, 1.0).derivative(0.0) == 1.0);
  CHECK(Activation(ActivationKind::elu, 0.3, 1.0).derivative(0.0) == 1.0);
  CHECK(Activation(ActivationKind::selu).derivative(0.0) == kSeluLambda);
  CHECK(Activation(ActivationKind::hard_tanh).derivative(-1.0) == 1.0);
  CHECK(Activation(ActivationKind::hard_tanh).derivative(1.0) == 0.0);
  // apply() follows the same convention.
  const double x[] = {0.0, -1.0, 1.0};
  double h[3], d[3];
  Activation(ActivationKind::relu).apply<double>(x, h, d, 1);
  CHECK(d[0] == 1.0);
  Activation(ActivationKind::selu).apply<double>(x, h, d, 1);
  CHECK(d[0] == kSeluLambda);
  Activation(ActivationKind::hard_tanh).apply<double>(x, h, d, 3);
  CHECK(d[0] == 1.0);
  CHECK(d[1] == 1.0);
  CHECK(d[2] == 0.0);
}

TEST_CASE("kinks are where f or f' is not smooth", "[activation]") {
  using V = std::vector<double>;
  CHECK(Activation(ActivationKind::relu).kinks() == V{0.0});
  CHECK(Activation(ActivationKind::leaky_relu).kinks() == V{0.0});
  CHECK(Activation(ActivationKind::elu).kinks() == V{0.0});
  CHECK(Activation(ActivationKind::selu).kinks() == V{0.0});
  CHECK(Activation(ActivationKind::hard_tanh).kinks() == V{-1.0, 1.0});
  for (ActivationKind k : {ActivationKind::identity, ActivationKind::tanh, ActivationKind::sigmoid,
                           ActivationKind::softplus, ActivationKind::swish, ActivationKind::gelu}) {
    INFO(to_string(k));
    CHECK(Activation(k).kinks().empty());
  }
}

TEST_CASE("value and derivative are finite for inputs of 1e4, 1e30 and 1e300", "[activation][finite]") {
  const double big[] = {1e4, 1e30, 1e300};
  for (const Activation& f : activation_variants()) {
    for (double b : big) {
      for (double x : {b, -b}) {
        INFO(describe(f) << " at x = " << x);
        CHECK(std::isfinite(f.value(x)));
        CHECK(std::isfinite(f.derivative(x)));
      }
    }
  }
}

TEST_CASE("value and derivative keep relative accuracy near 0 and deep in saturation",
          "[activation][accuracy]") {
  const Activation tanh_f(ActivationKind::tanh), sig(ActivationKind::sigmoid), elu(ActivationKind::elu),
      softplus(ActivationKind::softplus), swish(ActivationKind::swish);
  // tanh'(x) = 4 e^{-2|x|} / (1 + e^{-2|x|})^2 would be 0 as 1 - tanh^2 for |x| > 19.
  CHECK(tanh_f.derivative(30.0) == Approx(4 * std::exp(-60.0)).epsilon(1e-14));
  CHECK(sig.value(-50.0) == Approx(std::exp(-50.0)).epsilon(1e-14));
  CHECK(sig.derivative(50.0) == Approx(std::exp(-50.0)).epsilon(1e-14));
  CHECK(softplus.value(-40.0) == Approx(std::exp(-40.0)).epsilon(1e-14));
  CHECK(swish.value(-40.0) == Approx(-40.0 * std::exp(-40.0)).epsilon(1e-13));
  CHECK(elu.value(-1e-10) == Approx(-1e-10).epsilon(1e-9));
}

// ---------------------------------------------------------------------------------------------
// apply(): the vectorised hot loop

TEMPLATE_TEST_CASE("apply agrees elementwise with value and derivative", "[activation][apply]", float,
                   double) {
  using Scalar = TestType;
  const std::vector<Scalar> x = probe_inputs<Scalar>();
  const auto n = static_cast<Eigen::Index>(x.size());
  std::vector<Scalar> h(x.size()), d(x.size());
  for (const Activation& f : activation_variants()) {
    f.apply<Scalar>(x.data(), h.data(), d.data(), n);
    int failures = 0;
    for (std::size_t i = 0; i < x.size() && failures < 5; ++i) {
      const double xi = static_cast<double>(x[i]);
      const double ref_h = f.value(xi), ref_d = f.derivative(xi);
      const double err_h = std::fabs(static_cast<double>(h[i]) - ref_h);
      const double err_d = std::fabs(static_cast<double>(d[i]) - ref_d);
      // Where f(x) itself exceeds the range of Scalar (slope > 1 at the largest input) h must be +-inf.
      const bool overflows = std::fabs(ref_h) > std::numeric_limits<Scalar>::max();
      const bool ok_h = overflows ? static_cast<double>(h[i]) == std::copysign(INFINITY, ref_h)
                                  : std::isfinite(static_cast<double>(h[i])) &&
                                        err_h <= apply_tolerance<Scalar>(f, xi, ref_h, false);
      const bool ok_d =
          std::isfinite(static_cast<double>(d[i])) && err_d <= apply_tolerance<Scalar>(f, xi, ref_d, true);
      if (!ok_h || !ok_d) {
        ++failures;
        INFO(describe(f) << " at x = " << xi << ": h = " << h[i] << " vs " << ref_h << ", d = " << d[i]
                         << " vs " << ref_d);
        CHECK(ok_h);
        CHECK(ok_d);
      }
    }
    INFO(describe(f));
    CHECK(failures == 0);
  }
}

TEMPLATE_TEST_CASE("apply stays finite for inputs of 1e4, 1e30, 1e300 and the largest finite value",
                   "[activation][apply][finite]", float, double) {
  using Scalar = TestType;
  std::vector<Scalar> x = {Scalar(1e4),
                           Scalar(-1e4),
                           Scalar(1e30),
                           Scalar(-1e30),
                           std::numeric_limits<Scalar>::max(),
                           std::numeric_limits<Scalar>::lowest()};
  if (std::is_same<Scalar, double>::value) {
    x.push_back(Scalar(1e300));
    x.push_back(Scalar(-1e300));
  }
  std::vector<Scalar> h(x.size()), d(x.size());
  for (const Activation& f : activation_variants()) {
    f.apply<Scalar>(x.data(), h.data(), d.data(), static_cast<Eigen::Index>(x.size()));
    for (std::size_t i = 0; i < x.size(); ++i) {
      INFO(describe(f) << " at x = " << x[i] << ": h = " << h[i] << ", d = " << d[i]);
      // f(x) itself overflows at the largest inputs when the slope exceeds 1 (selu, leaky alpha = -2).
      if (std::fabs(f.value(static_cast<double>(x[i]))) <= std::numeric_limits<Scalar>::max())
        CHECK(std::isfinite(h[i]));
      CHECK(std::isfinite(d[i]));
    }
  }
  // The limits themselves, where they are exact in floating point.
  const Scalar big = Scalar(1e30);
  const Scalar in[] = {big, -big};
  Scalar h2[2], d2[2];
  Activation(ActivationKind::sigmoid).apply<Scalar>(in, h2, d2, 2);
  CHECK(h2[0] == 1);
  CHECK(h2[1] == 0);
  CHECK(d2[0] == 0);
  CHECK(d2[1] == 0);
  Activation(ActivationKind::tanh).apply<Scalar>(in, h2, d2, 2);
  CHECK(h2[0] == 1);
  CHECK(h2[1] == -1);
  CHECK(d2[0] == 0);
  Activation(ActivationKind::swish).apply<Scalar>(in, h2, d2, 2);
  CHECK(h2[0] == big);
  CHECK(h2[1] == 0);
  CHECK(d2[0] == 1);
  CHECK(d2[1] == 0);
  Activation(ActivationKind::elu).apply<Scalar>(in, h2, d2, 2);
  CHECK(h2[1] == -1);
  CHECK(d2[1] == 0);
}

TEMPLATE_TEST_CASE("apply in place (h aliasing a) equals out of place across block boundaries",
                   "[activation][apply]", float, double) {
  using Scalar = TestType;
  std::mt19937 rng(7);
  std::normal_distribution<double> normal(0.0, 2.0);
  std::vector<Scalar> a(1001);  // several blocks and a ragged tail
  for (auto& v : a) v = static_cast<Scalar>(normal(rng));
  for (const Activation& f : activation_variants()) {
    std::vector<Scalar> h(a.size()), d(a.size()), inplace = a, d2(a.size());
    f.apply<Scalar>(a.data(), h.data(), d.data(), static_cast<Eigen::Index>(a.size()));
    f.apply<Scalar>(inplace.data(), inplace.data(), d2.data(), static_cast<Eigen::Index>(a.size()));
    INFO(describe(f));
    CHECK(inplace == h);
    CHECK(d2 == d);
  }
}

TEMPLATE_TEST_CASE("apply propagates a NaN input to h", "[activation][apply]", float, double) {
  using Scalar = TestType;
  const Scalar x[] = {Scalar(0.5), std::numeric_limits<Scalar>::quiet_NaN(), Scalar(-0.5)};
  Scalar h[3], d[3];
  for (const Activation& f : activation_variants()) {
    f.apply<Scalar>(x, h, d, 3);
    INFO(describe(f));
    CHECK(std::isnan(h[1]));
    CHECK(std::isfinite(h[0]));
    CHECK(std::isfinite(h[2]));
  }
}

// ---------------------------------------------------------------------------------------------
// sup |f'|

TEST_CASE("sup_abs_derivative bounds |f'| on a dense grid and is attained", "[activation][sup]") {
  std::vector<double> grid;
  for (int i = -120000; i <= 120000; ++i) grid.push_back(i * 1e-4);
  for (double far : {20.0, 50.0, 1e3, 1e6}) {
    grid.push_back(far);
    grid.push_back(-far);
  }
  for (const Activation& f : activation_variants()) {
    std::vector<double> xs = grid;
    for (double k : f.kinks()) {  // sups approached at a kink from one side (elu, selu)
      for (double off : {1e-12, 1e-10}) {
        xs.push_back(k - off);
        xs.push_back(k + off);
      }
    }
    const double sup = f.sup_abs_derivative();
    double max_abs = 0.0;
    for (double x : xs) max_abs = std::max(max_abs, std::fabs(f.derivative(x)));
    INFO(describe(f) << ": sup_abs_derivative " << sup << ", max on grid " << max_abs);
    CHECK(max_abs <= sup * (1 + 4 * std::numeric_limits<double>::epsilon()));
    CHECK(max_abs >= sup - kSupAttainTol);
  }
}

TEST_CASE("sup_abs_derivative closed forms: swish 1.0998, gelu 1.1289, selu lambda alpha0, leaky/elu",
          "[activation][sup]") {
  // Reference values computed in 40-digit arithmetic: swish from u tanh(u/2) = 2, gelu at x = sqrt 2.
  CHECK(Activation(ActivationKind::swish).sup_abs_derivative() == Approx(1.0998393201288669).epsilon(1e-14));
  CHECK(Activation(ActivationKind::swish, 0.01, 7.0).sup_abs_derivative() ==
        Approx(1.0998393201288669).epsilon(1e-14));
  CHECK(Activation(ActivationKind::swish, 0.01, 0.0).sup_abs_derivative() == 0.5);
  CHECK(Activation(ActivationKind::gelu).sup_abs_derivative() == Approx(1.1289041451851548).epsilon(1e-14));
  CHECK(Activation(ActivationKind::selu).sup_abs_derivative() ==
        Approx(kSeluLambda * kSeluAlpha).epsilon(1e-15));
  CHECK(Activation(ActivationKind::leaky_relu, 3.0, 1.0).sup_abs_derivative() == 3.0);
  CHECK(Activation(ActivationKind::leaky_relu, -0.5, 1.0).sup_abs_derivative() == 1.0);
  CHECK(Activation(ActivationKind::elu, 2.5, 1.0).sup_abs_derivative() == 2.5);
  CHECK(Activation(ActivationKind::elu, 0.5, 1.0).sup_abs_derivative() == 1.0);
}

// ---------------------------------------------------------------------------------------------
// The seed's facts

TEST_CASE("sup sigmoid' = 1/4, attained at x = 0", "[activation][seed]") {
  const Activation f(ActivationKind::sigmoid);
  CHECK(f.sup_abs_derivative() == 0.25);
  CHECK(f.derivative(0.0) == 0.25);
  for (double x = -30.0; x <= 30.0; x += 1e-3) {
    INFO("x = " << x);
    REQUIRE(f.derivative(x) <= 0.25);
  }
}

TEST_CASE("softplus_beta' = sigmoid(beta x)", "[activation][seed]") {
  for (double beta : {0.25, 1.0, 2.0, 10.0}) {
    const Activation f(ActivationKind::softplus, 0.01, beta);
    for (double x = -8.0; x <= 8.0; x += 0.01) {
      INFO("beta = " << beta << ", x = " << x);
      CHECK(f.derivative(x) == Approx(sigmoid(beta * x)).epsilon(1e-14).margin(1e-300));
    }
  }
}

TEST_CASE("sup |softplus_beta - ReLU| = ln 2 / beta, attained at x = 0", "[activation][seed]") {
  const Activation relu(ActivationKind::relu);
  for (double beta : {0.25, 1.0, 2.0, 10.0}) {
    const Activation f(ActivationKind::softplus, 0.01, beta);
    double max_gap = 0.0, argmax = 1.0;
    for (int i = -200000; i <= 200000; ++i) {
      const double x = i * 1e-4;
      const double gap = std::fabs(f.value(x) - relu.value(x));
      if (gap > max_gap) {
        max_gap = gap;
        argmax = x;
      }
    }
    INFO("beta = " << beta);
    CHECK(max_gap == Approx(std::log(2.0) / beta).epsilon(1e-15));
    CHECK(argmax == 0.0);
    CHECK(f.value(0.0) == Approx(std::log(2.0) / beta).epsilon(1e-15));
  }
}

TEST_CASE("Swish is non-monotonic: negative slope for x < 0, minimum (u0 + 1)/beta at beta x = u0",
          "[activation][seed]") {
  // At the slope's zero u0: 1 + u0 (1 - s(u0)) = 0, so s(u0) = 1 + 1/u0 and f(u0) = u0 s(u0) = u0 + 1.
  for (double beta : {0.5, 1.0, 2.5}) {
    const Activation f(ActivationKind::swish, 0.01, beta);
    INFO("beta = " << beta);
    CHECK(f.derivative(-2.0 / beta) < 0.0);
    // The zero of f' on [-3/beta, 0] by bisection.
    double lo = -3.0 / beta, hi = -0.5 / beta;
    for (int it = 0; it < 200; ++it) {
      const double mid = 0.5 * (lo + hi);
      (f.derivative(mid) < 0 ? lo : hi) = mid;
    }
    const double x0 = 0.5 * (lo + hi);
    const double u0 = beta * x0;
    CHECK(u0 == Approx(-1.2784645427610738).epsilon(1e-12));
    CHECK(f.value(x0) == Approx((u0 + 1) / beta).epsilon(1e-12));
    double min_value = 0.0;
    for (double x = -20.0; x <= 20.0; x += 1e-3) min_value = std::min(min_value, f.value(x));
    CHECK(min_value >= f.value(x0));
    CHECK(min_value == Approx(f.value(x0)).epsilon(1e-6));
  }
}

TEST_CASE("E[ReLU(z)] = 1/sqrt(2 pi) and E[ReLU(z)^2] = 1/2 for z ~ N(0, 1)", "[activation][seed][moments]") {
  const GaussianMoments m = gaussian_moments(Activation(ActivationKind::relu), 0.0, 1.0);
  CHECK(std::fabs(m.mean - 1.0 / std::sqrt(2 * kPi)) <= kQuadratureTol);
  CHECK(std::fabs(m.second_moment - 0.5) <= kQuadratureTol);
  CHECK(std::fabs(m.zero_prob - 0.5) <= kQuadratureTol);
  CHECK(m.sup_abs_deriv == 1.0);
}

TEST_CASE("E[ReLU'(z)^2] = 1/2 for z ~ N(0, 1) (He initialisation sigma_w^2 = 2/n)",
          "[activation][seed][moments]") {
  const GaussianMoments m = gaussian_moments(Activation(ActivationKind::relu), 0.0, 1.0);
  CHECK(std::fabs(m.mean_sq_deriv - 0.5) <= kQuadratureTol);
  CHECK(std::fabs(m.mean_abs_deriv - 0.5) <= kQuadratureTol);
}

TEST_CASE("ReLU moments and P(ReLU(z) = 0) = Phi(-mu/sigma) for several (mu, sigma)",
          "[activation][seed][moments]") {
  // z ~ N(mu, s^2), r = mu/s: E[relu] = mu Phi(r) + s phi(r); E[relu^2] = (mu^2 + s^2) Phi(r) + mu s phi(r);
  // E[relu'] = E[relu'^2] = P(z >= 0) = Phi(r).
  const double cases[][2] = {{0.0, 1.0}, {0.5, 1.0}, {-0.7, 0.3}, {2.0, 0.5}, {-3.0, 1.0}, {0.1, 4.0}};
  for (const auto& c : cases) {
    const double mu = c[0], s = c[1], r = mu / s;
    const GaussianMoments m = gaussian_moments(Activation(ActivationKind::relu), mu, s);
    INFO("mu = " << mu << ", sigma = " << s);
    CHECK(std::fabs(m.zero_prob - normal_cdf(-r)) <= kQuadratureTol);
    CHECK(std::fabs(m.mean - (mu * normal_cdf(r) + s * normal_pdf(r))) <= kQuadratureTol);
    CHECK(std::fabs(m.second_moment - ((mu * mu + s * s) * normal_cdf(r) + mu * s * normal_pdf(r))) <=
          kQuadratureTol);
    CHECK(std::fabs(m.mean_abs_deriv - normal_cdf(r)) <= kQuadratureTol);
    CHECK(std::fabs(m.mean_sq_deriv - normal_cdf(r)) <= kQuadratureTol);
  }
}

TEST_CASE("leaky ReLU: E[f'^2] = (1 + a^2)/2 and E|f'| = (1 + |a|)/2 for z ~ N(0, 1)",
          "[activation][seed][moments]") {
  for (double a : {0.0, 0.01, 0.1, 0.3, 1.0, -0.5, 2.0}) {
    const GaussianMoments m = gaussian_moments(Activation(ActivationKind::leaky_relu, a, 1.0), 0.0, 1.0);
    INFO("alpha = " << a);
    CHECK(std::fabs(m.mean_sq_deriv - (1 + a * a) / 2) <= kQuadratureTol);
    CHECK(std::fabs(m.mean_abs_deriv - (1 + std::fabs(a)) / 2) <= kQuadratureTol);
    // E[f] = (1 - a)/sqrt(2 pi), E[f^2] = (1 + a^2)/2
    CHECK(std::fabs(m.mean - (1 - a) / std::sqrt(2 * kPi)) <= kQuadratureTol);
    CHECK(std::fabs(m.second_moment - (1 + a * a) / 2) <= kQuadratureTol);
    // Only alpha = 0 makes f vanish on a half-line.
    CHECK(m.zero_prob == (a == 0.0 ? Approx(0.5) : Approx(0.0)));
  }
}

TEST_CASE("identity: E[f] = mu, E[f^2] = mu^2 + sigma^2, E|f'| = E[f'^2] = 1", "[activation][moments]") {
  for (double mu : {0.0, 1.5, -4.0}) {
    for (double s : {0.1, 1.0, 3.0}) {
      const GaussianMoments m = gaussian_moments(Activation(ActivationKind::identity), mu, s);
      INFO("mu = " << mu << ", sigma = " << s);
      CHECK(std::fabs(m.mean - mu) <= kQuadratureTol);
      CHECK(std::fabs(m.second_moment - (mu * mu + s * s)) <= kQuadratureTol * (1 + mu * mu + s * s));
      CHECK(std::fabs(m.mean_abs_deriv - 1.0) <= kQuadratureTol);
      CHECK(std::fabs(m.mean_sq_deriv - 1.0) <= kQuadratureTol);
      CHECK(m.zero_prob == 0.0);
    }
  }
}

TEST_CASE("tanh: E[tanh'] = 1 - E[tanh^2], odd symmetry, and E[tanh'^2] as sigma -> 0",
          "[activation][moments]") {
  const Activation f(ActivationKind::tanh);
  for (double mu : {0.0, 0.4, -1.3}) {
    for (double s : {0.2, 1.0, 2.5}) {
      const GaussianMoments m = gaussian_moments(f, mu, s);
      INFO("mu = " << mu << ", sigma = " << s);
      CHECK(std::fabs(m.mean_abs_deriv - (1 - m.second_moment)) <= kQuadratureTol);
      if (mu == 0.0) CHECK(std::fabs(m.mean) <= kQuadratureTol);
    }
    // g = tanh'^2 = S^2 with S = 1 - T^2, T = tanh(mu): g'' = 16 T^2 S^2 - 4 S^3, and
    // E[g(mu + s u)] = g + s^2 g''/2 + O(s^4).
    const double s = 1e-3;
    const double T = std::tanh(mu), S = 1 - T * T;
    const double expected = S * S + 0.5 * s * s * (16 * T * T * S * S - 4 * S * S * S);
    const GaussianMoments m = gaussian_moments(f, mu, s);
    INFO("small sigma, mu = " << mu);
    CHECK(std::fabs(m.mean_sq_deriv - expected) <= kQuadratureTol);
  }
}

TEST_CASE("SELU constants make E[f] = 0 and E[f^2] = 1 for z ~ N(0, 1) (self-normalising fixed point)",
          "[activation][moments]") {
  const GaussianMoments m = gaussian_moments(Activation(ActivationKind::selu), 0.0, 1.0);
  CHECK(std::fabs(m.mean) <= kQuadratureTol);
  CHECK(std::fabs(m.second_moment - 1.0) <= kQuadratureTol);
}

TEST_CASE("Stein's identity E[(z - mu) f(z)] = sigma^2 E[f'(z)] holds for every activation",
          "[activation][moments]") {
  // Integration by parts against the Gaussian density: ties value(), derivative(), kinks() and the
  // quadrature together for every kind.
  const double cases[][2] = {{0.0, 1.0}, {0.6, 0.4}, {-1.2, 2.0}};
  for (const Activation& f : activation_variants()) {
    for (const auto& c : cases) {
      const double mu = c[0], s = c[1];
      const double lhs =
          gaussian_expectation([&](double x) { return (x - mu) * f.value(x); }, mu, s, f.kinks());
      const double rhs =
          s * s * gaussian_expectation([&](double x) { return f.derivative(x); }, mu, s, f.kinks());
      INFO(describe(f) << ", mu = " << mu << ", sigma = " << s << ": " << lhs << " vs " << rhs);
      CHECK(std::fabs(lhs - rhs) <= kQuadratureTol);
    }
  }
}

TEST_CASE("GELU Gaussian moments match an independent fine trapezoid sum", "[activation][moments]") {
  // The trapezoid rule converges exponentially fast for smooth integrands decaying like the Gaussian,
  // so a fine sum is an independent reference; |f'| has a kink (f'(-0.7518) = 0) where it is O(h^2).
  const Activation f(ActivationKind::gelu);
  const double cases[][2] = {{0.0, 1.0}, {0.7, 0.5}, {-1.0, 2.0}};
  for (const auto& c : cases) {
    const double mu = c[0], s = c[1], h = 1e-3;
    double mean = 0, second = 0, abs_d = 0, sq_d = 0;
    for (int k = -40000; k <= 40000; ++k) {
      const double u = k * h, w = h * normal_pdf(u), x = mu + s * u;
      const double v = f.value(x), d = f.derivative(x);
      mean += w * v;
      second += w * v * v;
      abs_d += w * std::fabs(d);
      sq_d += w * d * d;
    }
    const GaussianMoments m = gaussian_moments(f, mu, s);
    INFO("mu = " << mu << ", sigma = " << s);
    CHECK(std::fabs(m.mean - mean) <= kQuadratureTol);
    CHECK(std::fabs(m.second_moment - second) <= kQuadratureTol);
    CHECK(std::fabs(m.mean_sq_deriv - sq_d) <= kQuadratureTol);
    CHECK(std::fabs(m.mean_abs_deriv - abs_d) <= kTrapezoidKinkTol);
    CHECK(m.zero_prob == 0.0);
  }
}

TEST_CASE("GELU and its slope match a 50-digit reference to a few ulps, into the left tail",
          "[activation][accuracy][gelu]") {
  // tests/data/gelu_reference.csv (tests/data/gelu_reference.py, mpmath): x on [-37.5, 10], f = x Phi(x) and
  // f' = Phi(x) + x phi(x) rounded to double. Computing Phi from erfc(fl(x / sqrt 2)) and phi from
  // exp(-0.5 x x) alone carries the rounding of the squares: 790 ulps in f and 250 in f' near x = -36.
  std::ifstream in(std::string(GRADFLOW_TEST_DATA) + "/data/gelu_reference.csv");
  REQUIRE(in);
  std::string line;
  std::getline(in, line);
  std::vector<double> x, ref_f, ref_d;
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string cell[3];
    for (auto& c : cell) std::getline(row, c, ',');
    x.push_back(std::stod(cell[0]));
    ref_f.push_back(std::stod(cell[1]));
    ref_d.push_back(std::stod(cell[2]));
  }
  REQUIRE(x.size() == 681);
  const Activation f(ActivationKind::gelu);
  const auto n = static_cast<Eigen::Index>(x.size());
  std::vector<double> h(x.size()), d(x.size());
  f.apply<double>(x.data(), h.data(), d.data(), n);
  const double eps = std::numeric_limits<double>::epsilon();
  const double root = -0.75179152469356446;  // f'(root) = 0: an absolute bound near it, relative elsewhere
  for (std::size_t i = 0; i < x.size(); ++i) {
    INFO("x = " << x[i]);
    const double f_tol = 4 * eps * std::fabs(ref_f[i]);
    const double d_tol = std::fabs(x[i] - root) > 0.05 ? 6 * eps * std::fabs(ref_d[i]) : 2 * eps;
    CHECK(std::fabs(f.value(x[i]) - ref_f[i]) <= f_tol);
    CHECK(std::fabs(h[i] - ref_f[i]) <= f_tol);
    CHECK(std::fabs(f.derivative(x[i]) - ref_d[i]) <= d_tol);
    CHECK(std::fabs(d[i] - ref_d[i]) <= d_tol);
  }
}

TEMPLATE_TEST_CASE("tanh and sigmoid kernels are relative-accurate from 1e-12 to saturation", "[activation][accuracy]",
                   float, double) {
  // The vectorised kernels (exp and expm1 from one polynomial, tools/fit_expm1.py) against long-double closed
  // forms on 20,000 values of each sign with |x| log-uniform in [1e-12, 316]: tanh x = -expm1(-2|x|) / (1 +
  // exp(-2|x|)) needs no series near 0 to stay relative-accurate there. Measured on AVX-512: tanh within
  // 1.93 eps (double) and 1.76 (float), sigmoid 1.5, the derivatives 2.6 (relative error in units of the type's
  // machine epsilon); 4 leaves margin for other vector widths. Values whose reference is below 1e4 times the
  // smallest normal are skipped (the kernels flush exp(-t) to 0 there).
  using S = TestType;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-12.0, 2.5);
  std::vector<S> x;
  for (int i = 0; i < 40000; ++i) x.push_back(static_cast<S>((i % 2 ? 1 : -1) * std::pow(10.0, exponent(rng))));
  const auto n = static_cast<Eigen::Index>(x.size());
  const long double eps = std::numeric_limits<S>::epsilon(), tiny = 1e4L * std::numeric_limits<S>::min();
  for (const ActivationKind kind : {ActivationKind::tanh, ActivationKind::sigmoid}) {
    std::vector<S> h(x.size()), d(x.size());
    Activation(kind).apply<S>(x.data(), h.data(), d.data(), n);
    double worst_f = 0, worst_d = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const long double xi = x[i];
      long double f, df;
      if (kind == ActivationKind::tanh) {
        const long double e = std::exp(-2 * std::fabs(xi));
        f = std::tanh(xi);
        df = 4 * e / ((1 + e) * (1 + e));
      } else {
        const long double e = std::exp(-std::fabs(xi));
        f = xi >= 0 ? 1 / (1 + e) : e / (1 + e);
        df = e / ((1 + e) * (1 + e));
      }
      if (std::fabs(f) > tiny) worst_f = std::max(worst_f, double(std::fabs(h[i] - f) / (eps * std::fabs(f))));
      if (df > tiny) worst_d = std::max(worst_d, double(std::fabs(d[i] - df) / (eps * df)));
    }
    INFO(to_string(kind) << ": f within " << worst_f << " eps, f' within " << worst_d << " eps");
    CHECK(worst_f <= 4.0);
    CHECK(worst_d <= 4.0);
  }
}

TEST_CASE("gaussian_expectation integrates Gaussian polynomial and exponential moments",
          "[activation][quadrature]") {
  const double mu = 0.3, s = 1.7;
  const double m4 = std::pow(mu, 4) + 6 * mu * mu * s * s + 3 * std::pow(s, 4);
  CHECK(gaussian_expectation([](double x) { return x * x * x * x; }, mu, s) ==
        Approx(m4).epsilon(kQuadratureRoundoff));
  CHECK(std::fabs(gaussian_expectation([](double) { return 1.0; }, mu, s) - 1.0) <= kQuadratureRoundoff);
  // E[z^6] = 15 for z ~ N(0, 1)
  CHECK(gaussian_expectation([](double x) { return std::pow(x, 6); }, 0.0, 1.0) ==
        Approx(15.0).epsilon(kQuadratureRoundoff));
  // E[e^{t z}] = exp(t mu + t^2 s^2 / 2)
  const double t = 1.5;
  CHECK(gaussian_expectation([t](double x) { return std::exp(t * x); }, 0.2, 1.0) ==
        Approx(std::exp(t * 0.2 + 0.5 * t * t)).epsilon(1e-12));
}

TEST_CASE("gaussian_expectation converges on a kink with or without the break point",
          "[activation][quadrature]") {
  // E|z - c| for z ~ N(mu, s^2), d = mu - c: d (1 - 2 Phi(-d/s)) + 2 s phi(d/s).
  const double mu = 0.4, s = 1.3, c = 1.1, d = mu - c;
  const double exact = d * (1 - 2 * normal_cdf(-d / s)) + 2 * s * normal_pdf(d / s);
  const auto g = [c](double x) { return std::fabs(x - c); };
  CHECK(std::fabs(gaussian_expectation(g, mu, s, {c}) - exact) <= kQuadratureRoundoff);
  CHECK(std::fabs(gaussian_expectation(g, mu, s) - exact) <= kQuadratureTol);
  // A break outside the range of u, or repeated, changes nothing.
  CHECK(std::fabs(gaussian_expectation(g, mu, s, {c, c, 1e6, -1e6}) - exact) <= kQuadratureRoundoff);
}

TEST_CASE("sigma = 0 gives point values; negative or non-finite sigma and mu throw",
          "[activation][quadrature][validate]") {
  CHECK(gaussian_expectation([](double x) { return x * x; }, 3.0, 0.0) == 9.0);
  const GaussianMoments relu_at_neg = gaussian_moments(Activation(ActivationKind::relu), -1.0, 0.0);
  CHECK(relu_at_neg.mean == 0.0);
  CHECK(relu_at_neg.mean_abs_deriv == 0.0);
  CHECK(relu_at_neg.zero_prob == 1.0);
  const GaussianMoments tanh_at = gaussian_moments(Activation(ActivationKind::tanh), 0.5, 0.0);
  CHECK(tanh_at.mean == std::tanh(0.5));
  CHECK(tanh_at.second_moment == std::tanh(0.5) * std::tanh(0.5));
  CHECK(tanh_at.mean_sq_deriv == Approx(std::pow(1 - std::tanh(0.5) * std::tanh(0.5), 2)).epsilon(1e-15));
  CHECK(tanh_at.zero_prob == 0.0);

  const auto one = [](double) { return 1.0; };
  CHECK_THROWS_WITH(gaussian_expectation(one, 0.0, -1.0), Catch::Contains("sigma >= 0"));
  CHECK_THROWS_AS(gaussian_expectation(one, 0.0, std::nan("")), std::invalid_argument);
  CHECK_THROWS_AS(gaussian_expectation(one, INFINITY, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(gaussian_expectation(one, 0.0, 1.0, {std::nan("")}), std::invalid_argument);
  CHECK_THROWS_WITH(gaussian_moments(Activation(ActivationKind::relu), 0.0, -0.5),
                    Catch::Contains("sigma >= 0"));
  CHECK_THROWS_AS(gaussian_moments(Activation(ActivationKind::relu), NAN, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(gaussian_moments(Activation(ActivationKind::softplus, 0.01, -1.0), 0.0, 1.0),
                  std::invalid_argument);
}

TEST_CASE("zero_prob is Phi(-mu/sigma) where f vanishes on a half-line and 0 otherwise",
          "[activation][moments]") {
  for (const Activation& f : activation_variants()) {
    const GaussianMoments m = gaussian_moments(f, 0.3, 0.8);
    INFO(describe(f));
    if (f.kind == ActivationKind::relu)
      CHECK(std::fabs(m.zero_prob - normal_cdf(-0.3 / 0.8)) <= kQuadratureTol);
    else
      CHECK(m.zero_prob == 0.0);
    CHECK(m.sup_abs_deriv == f.sup_abs_derivative());
  }
  const GaussianMoments elu0 = gaussian_moments(Activation(ActivationKind::elu, 0.0, 1.0), 0.3, 0.8);
  CHECK(std::fabs(elu0.zero_prob - normal_cdf(-0.3 / 0.8)) <= kQuadratureTol);
}
