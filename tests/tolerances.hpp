#pragma once

// Every tolerance the tests use, named once, with the reason for its size.
namespace gradflow::test {

constexpr double kQuadratureTol = 1e-10;    // Gaussian moments by adaptive quadrature (issue contract)
constexpr double kRadiusTol = 1e-8;         // "radius = r" means rho(W) = r to 1e-8 relative
constexpr double kFiniteDiffTol = 1e-6;     // central differences vs analytic derivatives/gradients
constexpr double kIdentityNormTol = 1e-12;  // orthogonal W + identity f keeps ||g_t|| constant
constexpr double kGrowthRateTol = 0.01;     // linear RNN: fitted growth rate = rho(W) within 1%
constexpr double kPrecisionAgreeTol = 1e-3; // float vs double growth rates

}  // namespace gradflow::test
