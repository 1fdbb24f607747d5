#pragma once

// Every tolerance the tests use, named once, with the reason for its size.
namespace gradflow::test {

constexpr double kQuadratureTol = 1e-10;    // Gaussian moments by adaptive quadrature (issue contract)
constexpr double kRadiusTol = 1e-8;         // "radius = r" means rho(W) = r to 1e-8 relative
constexpr double kFiniteDiffTol = 1e-6;     // central differences vs analytic derivatives/gradients
constexpr double kIdentityNormTol = 1e-12;  // orthogonal W + identity f keeps ||g_t|| constant
constexpr double kGrowthRateTol = 0.01;     // linear RNN: fitted growth rate = rho(W) within 1%
constexpr double kPrecisionAgreeTol = 1e-3; // float vs double growth rates

// Activation::apply (SIMD) vs the scalar value/derivative: measured <= 3 ulps of the output type;
// 8 ulps leaves margin for other CPUs' exp/log. Multiplied by machine epsilon of the type under test.
constexpr double kSimdUlps = 8;
constexpr double kSupAttainTol = 1e-6;      // max |f'| on a dense grid reaches sup |f'| within this
constexpr double kTrapezoidKinkTol = 1e-7;  // trapezoid sum (step 1e-3) across a kink: O(h^2) error
constexpr double kQuadratureRoundoff = 1e-13;  // quadrature of smooth integrands: tolerance 1e-13 + rounding
constexpr double kSpectralAgreeTol = 1e-10; // Spectra (residual 1e-12 relative) vs dense Eigen rho, ||W||_2
constexpr double kDefectiveEigTol = 1e-7;   // |lambda| / ||W||_2 of W^2 = 0: a Jordan block's eigenvalue ~ sqrt(eps)
constexpr double kOrthogonalityTol = 1e-12; // max |W^T W / r^2 - I|: Householder QR is orthogonal to ~N eps

// OpenBLAS vs Eigen products: both sum N products per entry, in different orders, so they differ by at most
// ~N eps ||W||_F ||x||_F (Higham, Accuracy and Stability of Numerical Algorithms, 2002, sec. 3.1); this factor
// times N eps.
constexpr double kProductOrderFactor = 4;
// reference BPTT (tools/bench/reference.py) vs gradflow: log10 ||g_t|| to 1e-8 relative (issue 4), where the
// reference's plain norm is representable.
constexpr double kReferenceAgreeTol = 1e-8;

}  // namespace gradflow::test
