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
constexpr double kSpectralAgreeTol = 1e-10; // Spectra (residual 1e-12; sparse rho 5e-11) vs dense Eigen rho, ||W||_2
constexpr double kDefectiveEigTol = 1e-7;   // |lambda| / ||W||_2 of W^2 = 0: a Jordan block's eigenvalue ~ sqrt(eps)
constexpr double kOrthogonalityTol = 1e-12; // max |W^T W / r^2 - I|: Householder QR is orthogonal to ~N eps


// Ground truth (Lyapunov exponents, mean-field theory).
constexpr double kLyapunovIdentityTol = 1e-10; // sum of k = N exponents vs mean ln|det J_t|; QR interval
                                               // invariance: exact identities up to rounding of ~1e3 logs
constexpr double kLyapunovExactTol = 1e-12;    // scaled orthogonal W at the fixed point: every exponent = ln g
// Ginibre W at the zero fixed point after a 1000-step tangent burn-in: the frame has aligned with the top
// eigenvector (|lambda_2 / lambda_1|^1000 is negligible); what is left is the O(1/T) finite-time term.
constexpr double kLyapunovFixedPointTol = 2e-3;
// Top exponent (forward tangent) vs ln(growth_rate) (BPTT fit over lags 10%..100%) on one 3000-step run:
// two finite-time estimates of the same exponent; measured differences <= 6e-4 at N = 200.
constexpr double kLyapunovBpttTol = 0.005;
constexpr double kPublishedTol = 5e-5;        // values published to 4 decimals (q* = 2.1215, 0.1547)
constexpr double kCriticalGainTol = 1e-8;     // gradflow critical: root finding to 1e-8 (issue contract)
constexpr double kMeanFieldQuadTol = 1e-10;   // mean-field closed forms through Gauss-Kronrod and Brent
// Measured growth of a finite random tanh network vs the mean-field factor at its gain_rms (N = 400):
// finite-N and finite-T effects, measured 0.009 in ln at N = 400, T = 600; 0.02 leaves margin.
constexpr double kMeanFieldFiniteNTol = 0.02;
// minimalRNN mean field (Chen, Pennington & Schoenholz 2018) against a Monte Carlo of the mean-field process with
// 100k units over 200 steps: sampling error of E[h^2] and chi; measured differences <= 0.6 % (E[h^2] with a
// quenched b_z, whose spread the 1e5 units sample) and <= 0.05 % (chi).
constexpr double kMinimalRnnMonteCarloTol = 0.01;
// ln(1 - chi) and ln growth against their asymptotes e^{-b_u} and e^{b_u} at |b_u| = 10..60: corrections are
// O(e^{-|b_u|}) and the last digits of 1 - chi near 1 (1e-16 / 1e-6).
constexpr double kMinimalRnnAsymptoteTol = 1e-3;
// A simulated minimalRNN at N = 512 (B = 4, 200 steps after a 200-step burn-in, input dim 256) against the
// theory at its gain_rms (N = 512, not 1024: the test's cost is the dense eigensolves of the gated predictors,
// 8x cheaper). E[h^2] of the final states at radius 2: measured 7 % below Q* (the input variance spread over
// units of a fixed W_x with 256 columns, and the partly frozen gates; README). The RMS factor of the run's own
// Jacobian coefficients: measured within 0.9 %. The measured growth rate: |ln| measured <= 0.038 (0.032 at
// N = 1024; finite T = 200 fit and the partly frozen gates inside the chaotic band, whose trajectory another
// CPU's rounding changes).
constexpr double kMinimalRnnFiniteNQTol = 0.1;
constexpr double kMinimalRnnStatsTol = 0.03;
constexpr double kMinimalRnnFiniteNGrowthTol = 0.06;
// OpenBLAS vs Eigen products: both sum N products per entry, in different orders, so they differ by at most
// ~N eps ||W||_F ||x||_F (Higham, Accuracy and Stability of Numerical Algorithms, 2002, sec. 3.1); this factor
// times N eps.
constexpr double kProductOrderFactor = 4;
// reference BPTT (tools/bench/reference.py) vs gradflow: log10 ||g_t|| to 1e-8 relative (issue 4), where the
// reference's plain norm is representable.
constexpr double kReferenceAgreeTol = 1e-8;

// Summary crossings (issue 16). Orthogonal W + identity f: growth_rate = radius to rounding, so the crossing
// interpolated between grid values symmetric about 1 is 1 up to a few ulps of the fit.
constexpr double kLinearCrossingTol = 1e-9;
// tanh, no input, zero state: the network stays at the fixed point 0 where J = W, so the crossing is rho = 1
// up to the finite-T fit of a Ginibre W at N = 96 (edge eigenvalues' spacing; measured |c - 1| <= 0.01).
constexpr double kTanhCrossingTol = 0.05;
// ReLU from a Gaussian state: mean field puts chi = 1 at sigma_w = sqrt 2 (E[ReLU'^2] = 1/2); finite N = 128,
// T = 200 move it up (measured 1.49 at N = 128): a bracket, not a precise value.
constexpr double kReluCrossingTol = 0.15;

}  // namespace gradflow::test
