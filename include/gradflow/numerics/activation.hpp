#pragma once

#include <functional>
#include <string>
#include <vector>

#include <Eigen/Core>

namespace gradflow {

enum class ActivationKind {
  identity,
  tanh,
  sigmoid,
  relu,
  leaky_relu,  // f(x) = x for x > 0, alpha x otherwise
  elu,         // f(x) = x for x > 0, alpha (e^x - 1) otherwise
  softplus,    // f(x) = log(1 + e^(beta x)) / beta
  swish,       // f(x) = x sigmoid(beta x); silu at beta = 1
  gelu,        // f(x) = x Phi(x), erf form
  hard_tanh,   // f(x) = clamp(x, -1, 1)
  selu         // f(x) = lambda x for x > 0, lambda alpha0 (e^x - 1) otherwise (Klambauer et al. 2017)
};

/// Name as written in scenario files ("leaky_relu", ...).
std::string to_string(ActivationKind kind);
/// Inverse of to_string; throws std::invalid_argument naming the accepted names.
ActivationKind parse_activation(const std::string& name);
/// Every kind, in declaration order.
const std::vector<ActivationKind>& all_activations();
/// Default alpha of a kind: 0.01 for leaky_relu, 1 for elu (unused by the others).
double default_alpha(ActivationKind kind);

/// An activation function with its parameters: f, f' and what the predictors need of them.
struct Activation {
  ActivationKind kind = ActivationKind::tanh;
  double alpha = 0.01;  // negative slope (leaky_relu) or negative saturation (elu)
  double beta = 1.0;    // sharpness: softplus_beta, swish_beta
  bool left_slope_at_kink = false;  // relu / leaky_relu f'(0): false the right slope 1, true the left (0 / alpha)

  Activation() = default;
  Activation(ActivationKind k) : kind(k), alpha(default_alpha(k)) {}
  Activation(ActivationKind k, double a, double b) : kind(k), alpha(a), beta(b) {}

  /// f(x), finite for every finite x (stable sigmoid / softplus forms).
  double value(double x) const;
  /// f'(x); at a kink the right derivative (relu, leaky_relu: the left one when left_slope_at_kink).
  double derivative(double x) const;
  /// sup over x of |f'(x)|.
  double sup_abs_derivative() const;
  /// Points where f or f' is not smooth (kinks), for quadrature.
  std::vector<double> kinks() const;

  /// h = f(a) and d = f'(a) elementwise in one pass over n scalars (float or double).
  template <class Scalar>
  void apply(const Scalar* a, Scalar* h, Scalar* d, Eigen::Index n) const;

  /// Throws std::invalid_argument unless alpha and beta are finite and, for softplus, beta > 0.
  void validate() const;
};

/// Moments of f(z) for z ~ N(mu, sigma^2), by quadrature split at the kinks (accurate to 1e-10).
struct GaussianMoments {
  double mean = 0.0;            // E[f(z)]
  double second_moment = 0.0;   // E[f(z)^2]
  double mean_abs_deriv = 0.0;  // E[|f'(z)|]
  double mean_sq_deriv = 0.0;   // E[f'(z)^2]
  double zero_prob = 0.0;       // P(f(z) = 0)
  double sup_abs_deriv = 0.0;   // sup_x |f'(x)| (not a moment; carried for the table)
};

/// Requires sigma >= 0 (sigma = 0 gives the point values at mu).
GaussianMoments gaussian_moments(const Activation& f, double mu, double sigma);

/// E[g(z)] for z ~ N(mu, sigma^2), adaptive Gauss-Kronrod over the real line split at `breaks`.
/// `breaks` are points in x where g is not smooth. Used by gaussian_moments and by mean-field theory.
/// Accuracy about 1e-12 absolute for g of at most polynomial growth.
double gaussian_expectation(const std::function<double(double)>& g, double mu, double sigma,
                            const std::vector<double>& breaks = {});

}  // namespace gradflow
