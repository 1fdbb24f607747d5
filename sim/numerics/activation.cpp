#include "gradflow/numerics/activation.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <queue>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

// Third party
#include <Eigen/Core>

namespace gradflow {

namespace detail {

// SELU constants (Klambauer et al. 2017): the values that make (mean, variance) = (0, 1) a fixed
// point of the layer map for z ~ N(0, 1).
constexpr double kSeluLambda = 1.0507009873554805;
constexpr double kSeluAlpha = 1.6732632423543772;

constexpr double kInvSqrt2 = 0.70710678118654752440;    // 1/sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1/sqrt(2 pi)
constexpr double kInvSqrtPi = 0.56418958354775628695;   // 1/sqrt(pi)

/// y^2 = q + dq exactly (for |y| < 1e154), q = fl(y^2): one FMA where the target has it, else Dekker's exact
/// product (the same bits).
inline void exact_square(double y, double& q, double& dq) {
  q = y * y;
#if defined(__FMA__)
  dq = std::fma(y, y, -q);
#else
  constexpr double kSplit = 134217729.0;  // 2^27 + 1: Veltkamp's split into two 26-bit halves
  const double c = kSplit * y, hi = c - (c - y), lo = y - hi;
  dq = ((hi * hi - q) + 2 * hi * lo) + lo * lo;
#endif
}

/// exp(-x^2 / 2) for |x| < 40 with x^2 = p + dp split exactly: exp(-p / 2) (1 - dp / 2). exp(-0.5 * x * x)
/// would carry the rounding of x^2, ~x^2 eps relative (hundreds of ulps at x = -30, where GELU's slope still
/// lives).
inline double gaussian_kernel(double x) {
  double p, dp;
  exact_square(x, p, dp);
  return std::exp(-0.5 * p) * (1 - 0.5 * dp);
}

/// Phi(x) = P(Z <= x) for Z ~ N(0,1), relative-accurate in the left tail: erfc keeps relative accuracy there,
/// and rounding y = x / sqrt 2 moves y^2 by ~y^2 eps, so erfc(fl(y)) is multiplied back by
/// exp(fl(y)^2 - x^2 / 2) ~ 1 + (fl(y)^2 - x^2 / 2), from the exact splits of both squares (q - p / 2 is
/// exact: the two are within a few ulps). 0 or 1 beyond |x| = 40, where erfc underflows.
inline double normal_cdf(double x) {
  if (std::abs(x) > 40) return x < 0 ? 0.0 : 1.0;
  const double y = -x * kInvSqrt2;
  double q, dq, p, dp;
  exact_square(y, q, dq);
  exact_square(x, p, dp);
  const double back = 1 + ((q - 0.5 * p) + (dq - 0.5 * dp));
  return y >= 0 ? 0.5 * std::erfc(y) * back : 1 - 0.5 * std::erfc(-y) * back;
}
/// phi(x) = exp(-x^2/2) / sqrt(2 pi), relative-accurate (gaussian_kernel); 0 (not NaN) beyond |x| = 40.
inline double normal_pdf(double x) { return std::abs(x) > 40 ? 0.0 : kInvSqrt2Pi * gaussian_kernel(x); }

/// The root of a continuous f on [lo, hi] with f(lo), f(hi) of opposite signs, to machine precision.
template <class F>
double bisect(F f, double lo, double hi) {
  double f_lo = f(lo);
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    const double f_mid = f(mid);
    if ((f_mid < 0) == (f_lo < 0)) {
      lo = mid;
      f_lo = f_mid;
    } else {
      hi = mid;
    }
  }
  return 0.5 * (lo + hi);
}

/// swish_1'(u) = s(u) + u s(u)(1 - s(u)), s = sigmoid; swish_beta'(x) = swish_1'(beta x).
inline double swish_unit_derivative(double u) {
  const double e = std::exp(-std::fabs(u));
  const double r = 1.0 / (1.0 + e);
  const double s = u >= 0 ? r : e * r;
  return s + u * (e * r * r);
}

/// u* > 0 with swish_1''(u*) = 0: s(1-s)(2 + u(1 - 2s)) = 0 <=> u tanh(u/2) = 2 (about 2.3994).
inline double swish_argmax_derivative() {
  static const double u = bisect([](double v) { return v * std::tanh(0.5 * v) - 2.0; }, 1.0, 4.0);
  return u;
}

/// u0 < 0 with swish_1'(u0) = 0 (about -1.2785): where the swish slope changes sign.
inline double swish_derivative_zero() {
  static const double u = bisect(swish_unit_derivative, -3.0, 0.0);
  return u;
}

/// x0 < 0 with gelu'(x0) = Phi(x0) + x0 phi(x0) = 0 (about -0.7518).
inline double gelu_derivative_zero() {
  static const double x = bisect([](double v) { return normal_cdf(v) + v * normal_pdf(v); }, -2.0, 0.0);
  return x;
}

// ---------------------------------------------------------------------------------------------
// Vectorised kernels.
//
// tanh, sigmoid and swish, the kernels of exp(-|x|) and one reciprocal, are single omp simd loops over
// straight-line arithmetic (exp_neg_reciprocal): no call, so GCC vectorises
// them whole with mask registers for the ternaries. Measured per element on AVX-512, against the blocked
// form below (Eigen's double exp divides, and so did 1/(1 + e)): tanh 1.6 against 2.1 ns in double, 0.55
// against 0.79 ns in float; sigmoid 1.15 against 1.7 ns in double. Since 0.5.1 exp and expm1 come from one
// shorter polynomial and tanh needs no separate series near 0 (exp_neg_poly): bench_kernels on AVX-512 (Zen 4),
// 256 values, tanh 1.55 -> 1.17 ns in double (8192 float values: 0.60 -> 0.48 ns), sigmoid 1.17 -> 1.06 ns.
// GELU is one such loop too, around its own erfc (apply_gelu): Eigen 3.4 has no SIMD erf for double.
//
// The others rely on Eigen 3.4, which vectorises exp and log for float and double (AVX-512: pexp /
// plog), but not select(), comparisons, tanh / log1p / expm1 for double, or erf for double. So those
// kernels use Eigen array expressions for the transcendental part, where they are SIMD, and plain loops
// with ternaries for the branchy part, which GCC -O3 vectorises with mask registers (restrict pointers:
// no alias checks). Work is done in blocks of kBlock scalars so that every array of a block stays in L1:
// the arrays are streamed from memory exactly once.

constexpr Eigen::Index kBlock = 256;

/// sum_k c[k] x^(N-1-k): Horner's rule, coefficients highest degree first (unrolled, vectorisable).
template <class Scalar, std::size_t N>
inline Scalar horner(const std::array<Scalar, N>& c, Scalar x) {
  Scalar p = c[0];
// Unrolled whole (GCC peels at most 16 iterations by itself): a loop nest inside an omp simd loop stays scalar.
#pragma GCC unroll 32
  for (std::size_t k = 1; k < N; ++k) p = p * x + c[k];
  return p;
}

template <class Scalar>
using ArrayMap = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
template <class Scalar>
using ConstArrayMap = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;

/// exp(-t) is flushed to 0 for t above this: Eigen's pexp clamps its argument (double: -709.78) and
/// returns a subnormal instead of 0 below it, which breaks limits such as x * exp(-|x|) -> 0 at
/// x = -1e300. Flushing at -log(smallest normal) also keeps subnormals (slow) out of the hot loop.
template <class Scalar>
constexpr Scalar exp_flush_threshold();
template <>
constexpr double exp_flush_threshold<double>() {
  return 708.0;
}
template <>
constexpr float exp_flush_threshold<float>() {
  return 87.0f;
}

/// Scratch for one block: the input copy (so h or d may alias a) and three temporaries.
template <class Scalar>
struct Block {
  alignas(64) Scalar x[kBlock];
  alignas(64) Scalar t[kBlock];
  alignas(64) Scalar e[kBlock];
  alignas(64) Scalar w[kBlock];
};

/// Runs kernel(scratch, h, d, m) on consecutive blocks of at most kBlock scalars, scratch.x holding
/// the block of a: reading a only through that copy is what lets h or d alias a.
template <class Scalar, class Kernel>
void for_each_block(const Scalar* a, Scalar* h, Scalar* d, Eigen::Index n, Kernel kernel) {
  Block<Scalar> scratch;
  for (Eigen::Index i = 0; i < n; i += kBlock) {
    const Eigen::Index m = std::min(kBlock, n - i);
    std::memcpy(scratch.x, a + i, static_cast<std::size_t>(m) * sizeof(Scalar));
    kernel(scratch, h + i, d + i, m);
  }
}

/// e = exp(-t) over a block (Eigen SIMD), not yet flushed.
template <class Scalar>
inline void exp_neg(const Scalar* t, Scalar* e, Eigen::Index m) {
  ArrayMap<Scalar>(e, m) = (-ConstArrayMap<Scalar>(t, m)).exp();
}

/// Bit pattern of 2^k for integer k in the normal range: the biased exponent in the exponent field.
inline double exp2_int(std::int64_t k) {
  const std::uint64_t bits = static_cast<std::uint64_t>(k + 1023) << 52;
  double v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}
inline float exp2_int(std::int32_t k) {
  const std::uint32_t bits = static_cast<std::uint32_t>(k + 127) << 23;
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

/// The constants of exp_neg_poly: Cody and Waite's two-part ln 2 and the coefficients of q(r) ~ (exp(r) - 1) / r
/// on |r| <= ln 2 / 2, highest degree first: exp(r) - 1 = r q(r) and exp(r) = 1 + r q(r) from one polynomial.
/// Fitted by tools/fit_expm1.py (Chebyshev interpolant in 50-digit arithmetic, coefficients rounded to the type):
/// degree 10 for double, q within 0.21 ulps and 1 + r q within 0.09; degree 6 for float, 0.05 and 0.02 ulps.
/// Until 0.5.0 exp(r) was its Taylor polynomial of degree 13 (7 for float), two multiply-adds more per double.
template <class Scalar>
struct ExpConstants;
template <>
struct ExpConstants<double> {
  using Int = std::int64_t;
  static constexpr double kLog2e = 1.4426950408889634074;
  static constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 0x3fe62e42fee00000 (fdlibm)
  static constexpr double kLn2Lo = 1.90821492927058770002e-10;
  static constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  static constexpr std::array<double, 11> kQ = {
      2.5105206480259365e-08, 2.762635737968284e-07, 2.755725542549107e-06, 2.4801504346665615e-05,
      0.00019841269874800694, 0.001388888893248886,  0.008333333333326141,  0.04166666666657314,
      0.1666666666666667,     0.5000000000000006,    1.0};
};
template <>
struct ExpConstants<float> {
  using Int = std::int32_t;
  static constexpr float kLog2e = 1.44269504f;
  static constexpr float kLn2Hi = 0.693145751953125f;  // 0x3f317200: 16 significant bits
  static constexpr float kLn2Lo = 1.428606765330187045e-06f;
  static constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  static constexpr std::array<float, 7> kQ = {0.00019899274047929794f, 0.0013941108481958508f, 0.0083332983776927f,
                                              0.04166635125875473f,    0.1666666716337204f,    0.5f,
                                              1.0f};
};

/// f(l) for l = 0, ..., L - 1, unrolled before vectorisation: the L lanes of a kernel side by side (below).
template <int L, class F>
inline void for_lanes(F f) {
#pragma GCC unroll 8
  for (int l = 0; l < L; ++l) f(l);
}

/// e[l] = exp(-t[l]) and m[l] = exp(-t[l]) - 1 for 0 <= t[l] <= exp_flush_threshold() and L independent lanes,
/// as straight-line arithmetic that vectorises inside an omp simd loop (no division, no call; Eigen's double exp
/// divides). -t = k ln 2 + r with k = round(-t / ln 2) and |r| <= ln 2 / 2, r by Cody and Waite's two-part ln 2
/// (the high part has trailing zero bits, so k ln2_hi and -t - k ln2_hi are exact); with s = 2^k (put in the
/// exponent field; k >= -1022 resp. -126 at the flush threshold, so s is normal) and p = r q(r) (ExpConstants):
/// e = s p + s and m = s p + (s - 1): s p and s - 1 are exact (s is a power of 2), so each is one rounding. For
/// k = 0 (t < ln 2 / 2) m = p = r q(r) with r = -t exactly: relative-accurate however small t is, which is what
/// tanh needs as x -> 0. tanh and sigmoid built on them are within 2 eps of long-double closed forms (test
/// "tanh and sigmoid kernels are relative-accurate"). The lanes' Horner steps alternate, so that L chains of
/// dependent multiply-adds run side by side; each lane's arithmetic does not depend on L. Callers that do not
/// read m pay nothing for it (the code is inlined and the dead arithmetic removed).
template <int L, class Scalar>
inline void exp_neg_poly(const Scalar (&t)[L], Scalar (&e)[L], Scalar (&m)[L]) {
  using C = ExpConstants<Scalar>;
  Scalar kd[L], r[L], q[L];
  for_lanes<L>([&](int l) {
    kd[l] = (-t[l] * C::kLog2e + C::kRound) - C::kRound;
    r[l] = (-t[l] - kd[l] * C::kLn2Hi) - kd[l] * C::kLn2Lo;
    q[l] = C::kQ[0];
  });
#pragma GCC unroll 16
  for (std::size_t k = 1; k < C::kQ.size(); ++k) for_lanes<L>([&](int l) { q[l] = q[l] * r[l] + C::kQ[k]; });
  for_lanes<L>([&](int l) {
    const Scalar s = exp2_int(static_cast<typename C::Int>(kd[l]));
    const Scalar p = r[l] * q[l];
    e[l] = s * p + s;
    m[l] = s * p + (s - 1);
  });
}

template <int L, class Scalar>
inline void exp_neg_poly(const Scalar (&t)[L], Scalar (&e)[L]) {
  Scalar m[L];
  exp_neg_poly(t, e, m);
}

/// r[l] = 1 / y[l] for y[l] in [1, 2] and L lanes: a division, correctly rounded. Until 0.4.0 double used
/// four Newton steps from a linear start instead (multiplications only, within 1 ulp), measured faster where
/// the divider was the bottleneck; on AVX-512 (Zen 5) the divider works beside the FMA units, and dividing
/// made tanh 1.2x and sigmoid 1.25x faster (bench_kernels, 8192 values in double).
template <int L, class Scalar>
inline void reciprocal_1_2(const Scalar (&y)[L], Scalar (&r)[L]) {
  for_lanes<L>([&](int l) { r[l] = 1 / y[l]; });
}

/// e[l] = exp(-t[l]) and m[l] = exp(-t[l]) - 1 for t[l] >= 0 or +inf, flushed to 0 and -1 above
/// exp_flush_threshold(), and r[l] = 1 / (1 + e[l]), for L lanes: the core of tanh, sigmoid and swish.
/// Branch-free for omp simd loops: the polynomial runs on every lane with its argument clamped to its range. A NaN
/// t gives a finite value: the kernels carry NaN inputs through themselves.
template <int L, class Scalar>
inline void exp_neg_reciprocal(const Scalar (&t)[L], Scalar (&e)[L], Scalar (&m)[L], Scalar (&r)[L]) {
  const Scalar flush = exp_flush_threshold<Scalar>();
  Scalar y[L], p[L], pm[L];
  for_lanes<L>([&](int l) { y[l] = t[l] < flush ? t[l] : flush; });
  exp_neg_poly(y, p, pm);
  for_lanes<L>([&](int l) {
    e[l] = t[l] > flush ? Scalar(0) : p[l];
    m[l] = t[l] > flush ? Scalar(-1) : pm[l];
    y[l] = 1 + e[l];
  });
  reciprocal_1_2(y, r);
}

template <int L, class Scalar>
inline void exp_neg_reciprocal(const Scalar (&t)[L], Scalar (&e)[L], Scalar (&r)[L]) {
  Scalar m[L];
  exp_neg_reciprocal(t, e, m, r);
}

/// The kernels of exp(-|x|) and one reciprocal (tanh, sigmoid, swish) evaluate kLanes elements per iteration
/// of their omp simd loop, i, i + m, ... for m = n / kLanes, side by side statement by statement. With one
/// element per iteration part of each element's chain of dependent multiply-adds (the polynomial, then,
/// before 0.4.0, the reciprocal's Newton steps) waited on latency (perf annotate: the samples sat on the
/// Newton steps); with four the kernels are close to the FP units' throughput, so more lanes gain nothing.
/// Each element's arithmetic is the same whatever the lane count, so are its bits; the n - kLanes m elements
/// left over run the same kernel with one lane. kernel(lanes, i, m) handles elements i + l m, l < lanes().
/// No element is read after another one is written: h or d may alias a.
constexpr int kLanes = 4;  // bench_kernels, tanh in double on AVX-512: 2 lanes 1.13x, 4 lanes 1.16x of one

template <class Kernel>
inline void for_each_lanes(Eigen::Index n, Kernel kernel) {
  const Eigen::Index m = n / kLanes;
#pragma omp simd
  for (Eigen::Index i = 0; i < m; ++i) kernel(std::integral_constant<int, kLanes>(), i, m);
  for (Eigen::Index i = kLanes * m; i < n; ++i) kernel(std::integral_constant<int, 1>(), i, Eigen::Index(0));
}

template <class Scalar>
void apply_tanh(const Scalar* a, Scalar* h, Scalar* d, Eigen::Index n) {
  // tanh x = sign(x) (1 - e)/(1 + e), tanh' = 4e/(1 + e)^2 with e = exp(-2|x|): both relative-accurate
  // deep in saturation (tanh' = 1 - tanh^2 would round to 0 there and hide the vanishing rate), and 1 - e =
  // -expm1(-2|x|) from exp_neg_poly, relative-accurate as x -> 0 too (until 0.5.0 a separate Taylor series
  // below |x| = 0.15, ~10 more operations per value). One vectorised pass; h or d may alias a (each element is
  // read before it is written, and no other element of the pass reads it).
  for_each_lanes(n, [&](auto lanes, Eigen::Index i, Eigen::Index m) {
    constexpr int L = decltype(lanes)::value;
    Scalar x[L], t[L], e[L], em1[L], r[L];
    for_lanes<L>([&](int l) { x[l] = a[i + l * m]; t[l] = 2 * std::abs(x[l]); });
    exp_neg_reciprocal(t, e, em1, r);
    for_lanes<L>([&](int l) {
      const Scalar xi = x[l];
      const Scalar hi = std::copysign(-em1[l] * r[l], xi);
      const Scalar di = 4 * e[l] * r[l] * r[l];
      h[i + l * m] = xi != xi ? xi : hi;
      d[i + l * m] = xi != xi ? xi : di;
    });
  });
}

template <class Scalar>
void apply_sigmoid(const Scalar* a, Scalar* h, Scalar* d, Eigen::Index n) {
  // e = exp(-|x|): s = 1/(1+e) for x >= 0, e/(1+e) otherwise; s' = e/(1+e)^2. No overflow, and both
  // tails keep relative accuracy. One vectorised pass; h or d may alias a.
  for_each_lanes(n, [&](auto lanes, Eigen::Index i, Eigen::Index m) {
    constexpr int L = decltype(lanes)::value;
    Scalar x[L], t[L], e[L], r[L];
    for_lanes<L>([&](int l) { x[l] = a[i + l * m]; t[l] = std::abs(x[l]); });
    exp_neg_reciprocal(t, e, r);
    for_lanes<L>([&](int l) {
      const Scalar xi = x[l];
      const Scalar hi = xi < 0 ? e[l] * r[l] : r[l];
      const Scalar di = e[l] * r[l] * r[l];
      h[i + l * m] = xi != xi ? xi : hi;
      d[i + l * m] = xi != xi ? xi : di;
    });
  });
}

template <class Scalar>
void apply_softplus(const Scalar* a, Scalar* h_out, Scalar* d_out, Eigen::Index n, double beta) {
  // f = max(x, 0) + log1p(e)/beta with e = exp(-beta|x|) (beta|x| may overflow to inf harmlessly:
  // e = 0); f' = sigmoid(beta x). log1p(e) = log(u) + (e - (u - 1))/u with u = fl(1 + e): the second
  // term restores the rounding error of 1 + e exactly to first order (the error left is O(eps^2)), so
  // log1p keeps relative accuracy for tiny e using only Eigen's SIMD log and the 1/u needed for f'.
  const Scalar sb = static_cast<Scalar>(beta);
  const Scalar inv_beta = static_cast<Scalar>(1.0 / beta);
  const auto kernel = [sb, inv_beta](Block<Scalar>& b, Scalar* __restrict h, Scalar* __restrict d,
                                     Eigen::Index m) {
    const Scalar* __restrict x = b.x;
    Scalar* __restrict t = b.t;
    Scalar* __restrict ex = b.e;
    for (Eigen::Index i = 0; i < m; ++i) t[i] = sb * std::abs(x[i]);
    exp_neg(b.t, b.e, m);
    const Scalar flush = exp_flush_threshold<Scalar>();
    for (Eigen::Index i = 0; i < m; ++i) {
      const Scalar e = t[i] > flush ? Scalar(0) : ex[i];
      ex[i] = e;
      t[i] = 1 + e;  // u
    }
    ArrayMap<Scalar>(b.w, m) = ConstArrayMap<Scalar>(b.t, m).log();
    const Scalar* __restrict lu = b.w;
    for (Eigen::Index i = 0; i < m; ++i) {
      const Scalar e = ex[i], u = t[i];
      const Scalar r = 1 / u;
      const Scalar log1p_e = lu[i] + (e - (u - 1)) * r;
      h[i] = std::max(x[i], Scalar(0)) + log1p_e * inv_beta;
      d[i] = x[i] < 0 ? e * r : r;
    }
  };
  for_each_block(a, h_out, d_out, n, kernel);
}

template <class Scalar>
void apply_swish(const Scalar* a, Scalar* h, Scalar* d, Eigen::Index n, double beta) {
  // f = x s(beta x), f' = s(beta x) + x * beta s'(beta x); s, s' from e = exp(-|beta x|) as in sigmoid.
  // x * (beta s') rather than (beta x) s': beta x may overflow while beta s' is already 0. One vectorised
  // pass; h or d may alias a; a NaN x gives NaN through the products with x.
  const Scalar sb = static_cast<Scalar>(beta);
  for_each_lanes(n, [&](auto lanes, Eigen::Index i, Eigen::Index m) {
    constexpr int L = decltype(lanes)::value;
    Scalar x[L], y[L], t[L], e[L], r[L];
    for_lanes<L>([&](int l) {
      x[l] = a[i + l * m];
      y[l] = sb * x[l];
      t[l] = std::abs(y[l]);
    });
    exp_neg_reciprocal(t, e, r);
    for_lanes<L>([&](int l) {
      const Scalar si = y[l] < 0 ? e[l] * r[l] : r[l];
      h[i + l * m] = x[l] * si;
      d[i + l * m] = si + x[l] * (sb * (e[l] * r[l] * r[l]));
    });
  });
}

/// Below this |x| expm1 uses its Taylor series (e^x - 1 loses relative accuracy as x -> 0).
constexpr double kExpm1SeriesBound = 0.3;

template <class Scalar>
void apply_exp_linear(const Scalar* a, Scalar* h_out, Scalar* d_out, Eigen::Index n, double slope,
                      double neg_scale) {
  // ELU / SELU: f = slope x for x > 0, neg_scale expm1(x) otherwise; f' = slope for x >= 0 (right
  // derivative at 0), neg_scale e^x otherwise. expm1(x) is e^x - 1 (Eigen's SIMD exp) for
  // x <= -0.3, where the rounding of e^x costs at most a few ulps relative, and its Taylor series
  // through x^13/13! above (truncation < 2e-18 relative).
  const Scalar sl = static_cast<Scalar>(slope);
  const Scalar ns = static_cast<Scalar>(neg_scale);
  const auto kernel = [sl, ns](Block<Scalar>& b, Scalar* __restrict h, Scalar* __restrict d, Eigen::Index m) {
    const Scalar* __restrict x = b.x;
    Scalar* __restrict t = b.t;
    for (Eigen::Index i = 0; i < m; ++i) t[i] = -std::min(x[i], Scalar(0));  // -min(x, 0) >= 0
    exp_neg(b.t, b.e, m);
    const Scalar* __restrict ex = b.e;
    const Scalar flush = exp_flush_threshold<Scalar>();
    // expm1(x) = x + x^2 (1/2! + x/3! + ... + x^11/13!): 1/k! for k = 13 down to 2, for Horner.
    const std::array<Scalar, 12> c = {
        Scalar(1.0 / 6227020800.0), Scalar(1.0 / 479001600.0), Scalar(1.0 / 39916800.0),
        Scalar(1.0 / 3628800.0),    Scalar(1.0 / 362880.0),    Scalar(1.0 / 40320.0),
        Scalar(1.0 / 5040.0),       Scalar(1.0 / 720.0),       Scalar(1.0 / 120.0),
        Scalar(1.0 / 24.0),         Scalar(1.0 / 6.0),         Scalar(1.0 / 2.0)};
    for (Eigen::Index i = 0; i < m; ++i) {
      const Scalar xi = x[i];
      const Scalar xn = -t[i];  // min(x, 0)
      const Scalar u = t[i] > flush ? Scalar(0) : ex[i];
      const Scalar series = xn + xn * xn * horner(c, xn);
      const Scalar expm1 = t[i] < Scalar(kExpm1SeriesBound) ? series : u - 1;
      h[i] = xi > 0 ? sl * xi : ns * expm1;
      d[i] = xi < 0 ? ns * u : sl;
    }
  };
  for_each_block(a, h_out, d_out, n, kernel);
}

/// erfcx(y) = exp(y^2) erfc(y) for y >= 0 is u H(s) with u = 4 / (4 + y) and s = (4 - y) / (4 + y) in (-1, 1]
/// (the change of variable of Schonfelder 1978, Math. Comp. 32, "Chebyshev expansions for the error and related
/// functions"): H is smooth on [-1, 1], and its polynomial of degree 25, highest degree first, comes from
/// tools/fit_erfcx.py (Chebyshev series in 50-digit arithmetic, then the monomial basis): u H(s) in double is
/// within 2.6 ulps of erfcx on 0 <= y <= 27.
constexpr std::array<double, 26> kErfcxPoly = {
    -2.9110013414190896e-12, -4.478756880522945e-11, 3.732605426229163e-11,
    5.705708276830148e-10, -2.2640489956526939e-10, -4.524226433658983e-09,
    1.486684247780591e-10, 3.169590993573733e-08, 1.8519316117986032e-08,
    -2.1193007068995737e-07, -3.558308522476147e-07, 1.1737384001287099e-06,
    4.715138421832986e-06, -9.088216036154213e-07, -4.4203184100111976e-05,
    -0.00011376316786006397, 7.023971319329564e-05, 0.0015280139139034826,
    0.006592513335374279, 0.019095378727295876, 0.043502734309969135,
    0.08271289696950566, 0.1352134578283091, 0.19330217556630921,
    0.2441371822702205, 0.27399891525012277,
};

inline void apply_gelu(const double* a, double* h, double* d, Eigen::Index n) {
  // f = x Phi(x), f' = Phi(x) + x phi(x), as one vectorised pass (std::erfc is scalar: it was 27 % of the
  // default sweep). With G = exp(-x^2 / 2) (as gaussian_kernel: from x^2 = p + dp split exactly) and
  // y = x / sqrt 2: Phi = G erfcx(|y|) / 2 for x <= 0 and 1 - G erfcx(|y|) / 2 for x > 0, both without
  // cancellation (relative accuracy in the left tail; erfcx hardly feels the rounding of y, its relative
  // condition number is below 1), and phi = G / sqrt(2 pi). Where exp(-x^2 / 2) is subnormal (37.6 < |x| < 38.6)
  // it is exp(-(x^2 / 2 - 40)) e^-40, rounded into the subnormal range as std::exp would; beyond, G is 0 and
  // Phi is 0 or 1, as in normal_cdf.
  constexpr double kShift = 40, kExpNegShift = 4.2483542552915889e-18;  // e^-40
  const double flush = exp_flush_threshold<double>(), vanish = flush + kShift;
  for_each_lanes(n, [&](auto lanes, Eigen::Index i, Eigen::Index m) {
    constexpr int L = decltype(lanes)::value;
    double x[L], half[L], dp[L], t[L], e[L];  // half: fl(x^2) / 2 (exact)
    for_lanes<L>([&](int l) {
      x[l] = a[i + l * m];
      double p;
      exact_square(x[l], p, dp[l]);
      half[l] = 0.5 * p;
      const double shifted = half[l] > flush ? half[l] - kShift : half[l];
      t[l] = shifted < flush ? shifted : flush;
    });
    exp_neg_poly(t, e);
    for_lanes<L>([&](int l) {
      const double xi = x[l], ay0 = std::abs(xi * kInvSqrt2);
      const double ay = ay0 < 30.0 ? ay0 : 30.0;  // erfcx's argument, kept finite (G = 0 beyond)
      const double r = 1 / (4 + ay);
      const double u = 4 * r, s = (4 - ay) * r;
      const bool vanished = !(half[l] <= vanish);  // also |x| = inf, where dp is NaN
      const double ex = half[l] > flush ? e[l] * kExpNegShift : e[l];
      const double g = vanished ? 0.0 : ex * (1 - 0.5 * dp[l]);
      const double tail = 0.5 * g * (u * horner(kErfcxPoly, s));  // G erfcx(|y|) / 2
      const double cdf = xi <= 0 ? tail : 1 - tail;
      const double hi = xi * cdf;
      const double di = cdf + xi * (kInvSqrt2Pi * g);
      h[i + l * m] = xi != xi ? xi : hi;
      d[i + l * m] = xi != xi ? xi : di;
    });
  });
}

/// float GELU: the double kernel on blocks converted to double and back (converting inside the kernel's loop
/// made GCC give up vectorising it).
inline void apply_gelu(const float* a, float* h, float* d, Eigen::Index n) {
  alignas(64) double x[kBlock], hd[kBlock], dd[kBlock];
  for (Eigen::Index i = 0; i < n; i += kBlock) {
    const Eigen::Index m = std::min(kBlock, n - i);
    for (Eigen::Index k = 0; k < m; ++k) x[k] = a[i + k];
    apply_gelu(x, hd, dd, m);
    for (Eigen::Index k = 0; k < m; ++k) {
      h[i + k] = static_cast<float>(hd[k]);
      d[i + k] = static_cast<float>(dd[k]);
    }
  }
}

// Piecewise-linear kinds: NaN inputs give NaN h (the comparisons are written so that NaN falls into
// the branch returning x), so a diverged state stays visible downstream.

template <class Scalar>
void apply_identity(const Scalar* a, Scalar* h, Scalar* d, Eigen::Index n) {
  for (Eigen::Index i = 0; i < n; ++i) {
    h[i] = a[i];
    d[i] = 1;
  }
}

template <class Scalar>
void apply_leaky(const Scalar* a, Scalar* h_out, Scalar* d_out, Eigen::Index n, double alpha, bool left_at_zero) {
  const Scalar al = static_cast<Scalar>(alpha);
  const auto kernel = [al, left_at_zero](Block<Scalar>& b, Scalar* __restrict h, Scalar* __restrict d, Eigen::Index m) {
    const Scalar* __restrict x = b.x;
    for (Eigen::Index i = 0; i < m; ++i) {
      const bool neg = x[i] < 0;
      h[i] = neg ? al * x[i] : x[i];
      // f'(0): the right slope 1 by default, the left slope alpha (0 for relu, as PyTorch and JAX) on request.
      d[i] = (neg || (left_at_zero && x[i] == 0)) ? al : Scalar(1);
    }
  };
  for_each_block(a, h_out, d_out, n, kernel);
}

template <class Scalar>
void apply_hard_tanh(const Scalar* a, Scalar* h_out, Scalar* d_out, Eigen::Index n) {
  const auto kernel = [](Block<Scalar>& b, Scalar* __restrict h, Scalar* __restrict d, Eigen::Index m) {
    const Scalar* __restrict x = b.x;
    for (Eigen::Index i = 0; i < m; ++i) {
      const Scalar xi = x[i];
      h[i] = xi < -1 ? Scalar(-1) : (xi > 1 ? Scalar(1) : xi);
      d[i] = (xi >= -1 && xi < 1) ? Scalar(1) : Scalar(0);  // right derivative at -1 and 1
    }
  };
  for_each_block(a, h_out, d_out, n, kernel);
}

// ---------------------------------------------------------------------------------------------
// Adaptive Gauss-Kronrod quadrature (G7-K15, globally adaptive: always bisect the segment with the
// largest error estimate).

// Kronrod abscissae on [-1, 1] (x_k and -x_k; the last is 0); odd indices are the Gauss-7 nodes.
constexpr std::array<double, 8> kKronrodNodes = {
    0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
    0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
    0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
    0.207784955007898467600689403773245, 0.000000000000000000000000000000000};
constexpr std::array<double, 8> kKronrodWeights = {
    0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
    0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
    0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
    0.204432940075298892414161999234649, 0.209482141084727828012999174891714};
// Gauss-7 weights for kKronrodNodes[1], [3], [5] and [7] (= 0).
constexpr std::array<double, 4> kGaussWeights = {
    0.129484966168869693270611432679082, 0.279705391489276667901467771423780,
    0.381830050505118944950369775488975, 0.417959183673469387755102040816327};

struct Segment {
  double lo = 0, hi = 0;
  double integral = 0;  // K15 estimate
  double error = 0;     // |K15 - G7|: conservative
  bool operator<(const Segment& o) const { return error < o.error; }
};

template <class F>
Segment gauss_kronrod_15(const F& f, double lo, double hi) {
  const double center = 0.5 * (lo + hi);
  const double half = 0.5 * (hi - lo);
  const double f_center = f(center);
  double kronrod = kKronrodWeights[7] * f_center;
  double gauss = kGaussWeights[3] * f_center;
  for (int k = 0; k < 7; ++k) {
    const double dx = half * kKronrodNodes[k];
    const double pair = f(center - dx) + f(center + dx);
    kronrod += kKronrodWeights[k] * pair;
    if (k % 2 == 1) gauss += kGaussWeights[k / 2] * pair;
  }
  Segment s;
  s.lo = lo;
  s.hi = hi;
  s.integral = kronrod * half;
  s.error = std::fabs((kronrod - gauss) * half);
  return s;
}

// The standardized variable u = (x - mu)/sigma is integrated over [-kGaussianCutoff, kGaussianCutoff]:
// phi(37) ~ 1e-298 is still a normal double, and the mass beyond it (< 1e-299) is far below the
// tolerance for any integrand of polynomial growth.
constexpr double kGaussianCutoff = 37.0;
constexpr double kQuadAbsTol = 1e-14;
constexpr double kQuadRelTol = 1e-13;
constexpr std::size_t kQuadMaxSegments = 5000;

/// Integral of f over [lo, hi] split first at `points` (sorted, inside (lo, hi)), then adaptively.
template <class F>
double integrate_adaptive(const F& f, const std::vector<double>& points) {
  std::priority_queue<Segment> queue;
  double total = 0, error = 0;
  for (std::size_t i = 0; i + 1 < points.size(); ++i) {
    if (!(points[i + 1] > points[i])) continue;
    const Segment s = gauss_kronrod_15(f, points[i], points[i + 1]);
    total += s.integral;
    error += s.error;
    queue.push(s);
  }
  while (!queue.empty() && error > std::max(kQuadAbsTol, kQuadRelTol * std::fabs(total)) &&
         queue.size() < kQuadMaxSegments) {
    Segment worst = queue.top();
    queue.pop();
    const double mid = 0.5 * (worst.lo + worst.hi);
    if (!(mid > worst.lo && mid < worst.hi)) {
      // Too narrow to split (a discontinuity of g): accept it as is and refine the others.
      error -= worst.error;
      worst.error = 0;
      queue.push(worst);
      continue;
    }
    const Segment left = gauss_kronrod_15(f, worst.lo, mid);
    const Segment right = gauss_kronrod_15(f, mid, worst.hi);
    queue.push(left);
    queue.push(right);
    // Re-summing from the segments would cost O(segments); the running sums drift only by rounding.
    total += left.integral + right.integral - worst.integral;
    error += left.error + right.error - worst.error;
  }
  // A final exact re-sum removes the drift of the running total.
  double sum = 0;
  while (!queue.empty()) {
    sum += queue.top().integral;
    queue.pop();
  }
  return sum;
}

bool is_zero_on_negative_axis(const Activation& f) {
  // f = 0 on (-inf, 0) exactly: relu, and leaky_relu / elu with alpha = 0.
  return f.kind == ActivationKind::relu ||
         ((f.kind == ActivationKind::leaky_relu || f.kind == ActivationKind::elu) && f.alpha == 0.0);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Names.

std::string to_string(ActivationKind kind) {
  switch (kind) {
    case ActivationKind::identity:
      return "identity";
    case ActivationKind::tanh:
      return "tanh";
    case ActivationKind::sigmoid:
      return "sigmoid";
    case ActivationKind::relu:
      return "relu";
    case ActivationKind::leaky_relu:
      return "leaky_relu";
    case ActivationKind::elu:
      return "elu";
    case ActivationKind::softplus:
      return "softplus";
    case ActivationKind::swish:
      return "swish";
    case ActivationKind::gelu:
      return "gelu";
    case ActivationKind::hard_tanh:
      return "hard_tanh";
    case ActivationKind::selu:
      return "selu";
  }
  throw std::invalid_argument("to_string: unknown ActivationKind value " +
                              std::to_string(static_cast<int>(kind)));
}

const std::vector<ActivationKind>& all_activations() {
  static const std::vector<ActivationKind> kinds = {
      ActivationKind::identity,   ActivationKind::tanh,      ActivationKind::sigmoid,  ActivationKind::relu,
      ActivationKind::leaky_relu, ActivationKind::elu,       ActivationKind::softplus, ActivationKind::swish,
      ActivationKind::gelu,       ActivationKind::hard_tanh, ActivationKind::selu};
  return kinds;
}

ActivationKind parse_activation(const std::string& name) {
  for (ActivationKind k : all_activations()) {
    if (to_string(k) == name) return k;
  }
  std::string valid;
  for (ActivationKind k : all_activations()) {
    if (!valid.empty()) valid += ", ";
    valid += to_string(k);
  }
  throw std::invalid_argument("unknown activation '" + name + "': expected one of " + valid);
}

double default_alpha(ActivationKind kind) {
  switch (kind) {
    case ActivationKind::leaky_relu:
      return 0.01;
    case ActivationKind::elu:
      return 1.0;
    default:
      return 0.01;  // unused by the other kinds; matches Activation's in-place default
  }
}

// ---------------------------------------------------------------------------------------------
// Scalar f and f' (the reference the vectorised apply() is tested against).

void Activation::validate() const {
  const std::string who = "activation " + to_string(kind) + ": ";
  if (!std::isfinite(alpha)) throw std::invalid_argument(who + "alpha must be finite");
  if (!std::isfinite(beta)) throw std::invalid_argument(who + "beta must be finite");
  if (kind == ActivationKind::softplus && !(beta > 0))
    throw std::invalid_argument(who + "beta must satisfy beta > 0, got " + std::to_string(beta));
}

double Activation::value(double x) const {
  using namespace detail;
  switch (kind) {
    case ActivationKind::identity:
      return x;
    case ActivationKind::tanh:
      return std::tanh(x);
    case ActivationKind::sigmoid: {
      const double e = std::exp(-std::fabs(x));
      return x < 0 ? e / (1 + e) : 1 / (1 + e);
    }
    case ActivationKind::relu:
      return x < 0 ? 0.0 : x;
    case ActivationKind::leaky_relu:
      return x < 0 ? alpha * x : x;
    case ActivationKind::elu:
      return x > 0 ? x : alpha * std::expm1(x);
    case ActivationKind::softplus:
      // beta |x| may overflow to inf: exp(-inf) = 0, still finite.
      return std::max(x, 0.0) + std::log1p(std::exp(-beta * std::fabs(x))) / beta;
    case ActivationKind::swish: {
      const double y = beta * x;
      const double e = std::exp(-std::fabs(y));
      return x * (y < 0 ? e / (1 + e) : 1 / (1 + e));
    }
    case ActivationKind::gelu:
      return x * normal_cdf(x);
    case ActivationKind::hard_tanh:
      return x < -1 ? -1.0 : (x > 1 ? 1.0 : x);
    case ActivationKind::selu:
      return x > 0 ? kSeluLambda * x : kSeluLambda * kSeluAlpha * std::expm1(x);
  }
  return x;
}

double Activation::derivative(double x) const {
  using namespace detail;
  switch (kind) {
    case ActivationKind::identity:
      return 1.0;
    case ActivationKind::tanh: {
      const double e = std::exp(-2 * std::fabs(x));  // 4e/(1+e)^2 = 1 - tanh^2, relative-accurate
      return 4 * e / ((1 + e) * (1 + e));
    }
    case ActivationKind::sigmoid: {
      const double e = std::exp(-std::fabs(x));
      return e / ((1 + e) * (1 + e));
    }
    case ActivationKind::relu:
      return x < 0 || (left_slope_at_kink && x == 0) ? 0.0 : 1.0;
    case ActivationKind::leaky_relu:
      return x < 0 || (left_slope_at_kink && x == 0) ? alpha : 1.0;
    case ActivationKind::elu:
      return x < 0 ? alpha * std::exp(x) : 1.0;
    case ActivationKind::softplus: {
      const double e = std::exp(-beta * std::fabs(x));
      return x < 0 ? e / (1 + e) : 1 / (1 + e);
    }
    case ActivationKind::swish: {
      const double y = beta * x;
      const double e = std::exp(-std::fabs(y));
      const double r = 1 / (1 + e);
      const double s = y < 0 ? e * r : r;
      return s + x * (beta * (e * r * r));
    }
    case ActivationKind::gelu:
      return normal_cdf(x) + x * normal_pdf(x);
    case ActivationKind::hard_tanh:
      return (x >= -1 && x < 1) ? 1.0 : 0.0;
    case ActivationKind::selu:
      return x < 0 ? kSeluLambda * kSeluAlpha * std::exp(x) : kSeluLambda;
  }
  return 1.0;
}

double Activation::sup_abs_derivative() const {
  using namespace detail;
  switch (kind) {
    case ActivationKind::identity:
      return 1.0;
    case ActivationKind::tanh:
      return 1.0;  // tanh'(0)
    case ActivationKind::sigmoid:
      return 0.25;  // sigmoid'(0)
    case ActivationKind::relu:
      return 1.0;
    case ActivationKind::leaky_relu:
      return std::max(1.0, std::fabs(alpha));
    case ActivationKind::elu:  // |alpha| e^x -> |alpha| as x -> 0-
      return std::max(1.0, std::fabs(alpha));
    case ActivationKind::softplus:
      return 1.0;  // sigmoid(beta x) -> 1 as x -> inf (beta > 0)
    case ActivationKind::swish:
      // f'(x) = g(beta x) with g(u) = s + u s(1-s): sup |g| = g(u*) ~ 1.0998 for any beta != 0
      // (g(-u) = 1 - g(u), so min g = 1 - max g ~ -0.0998 never dominates); beta = 0 gives f = x/2.
      return beta == 0.0 ? 0.5 : swish_unit_derivative(swish_argmax_derivative());
    case ActivationKind::gelu:
      // f'' = phi(x)(2 - x^2) = 0 at x = sqrt 2: sup f' = Phi(sqrt 2) + sqrt 2 phi(sqrt 2)
      //     = (1 + erf 1)/2 + e^-1/sqrt(pi) ~ 1.1289 (and f'(-x) = 1 - f'(x) bounds the negative side).
      return 0.5 * (1.0 + std::erf(1.0)) + std::exp(-1.0) * kInvSqrtPi;
    case ActivationKind::hard_tanh:
      return 1.0;
    case ActivationKind::selu:
      return kSeluLambda * std::max(1.0, kSeluAlpha);
  }
  return 1.0;
}

std::vector<double> Activation::kinks() const {
  switch (kind) {
    case ActivationKind::relu:
    case ActivationKind::leaky_relu:
    case ActivationKind::elu:
    case ActivationKind::selu:
      return {0.0};
    case ActivationKind::hard_tanh:
      return {-1.0, 1.0};
    default:
      return {};
  }
}

// ---------------------------------------------------------------------------------------------
// Vectorised f and f'.

template <class Scalar>
void Activation::apply(const Scalar* a, Scalar* h, Scalar* d, Eigen::Index n) const {
  using namespace detail;
  if (n <= 0) return;
  switch (kind) {
    case ActivationKind::identity:
      apply_identity(a, h, d, n);
      return;
    case ActivationKind::tanh:
      apply_tanh(a, h, d, n);
      return;
    case ActivationKind::sigmoid:
      apply_sigmoid(a, h, d, n);
      return;
    case ActivationKind::relu:
      apply_leaky(a, h, d, n, 0.0, left_slope_at_kink);
      return;
    case ActivationKind::leaky_relu:
      apply_leaky(a, h, d, n, alpha, left_slope_at_kink);
      return;
    case ActivationKind::elu:
      apply_exp_linear(a, h, d, n, 1.0, alpha);
      return;
    case ActivationKind::softplus:
      apply_softplus(a, h, d, n, beta);
      return;
    case ActivationKind::swish:
      apply_swish(a, h, d, n, beta);
      return;
    case ActivationKind::gelu:
      apply_gelu(a, h, d, n);
      return;
    case ActivationKind::hard_tanh:
      apply_hard_tanh(a, h, d, n);
      return;
    case ActivationKind::selu:
      apply_exp_linear(a, h, d, n, kSeluLambda, kSeluLambda * kSeluAlpha);
      return;
  }
}

template void Activation::apply<float>(const float*, float*, float*, Eigen::Index) const;
template void Activation::apply<double>(const double*, double*, double*, Eigen::Index) const;

// ---------------------------------------------------------------------------------------------
// Gaussian expectations.

double gaussian_expectation(const std::function<double(double)>& g, double mu, double sigma,
                            const std::vector<double>& breaks) {
  using namespace detail;
  if (!std::isfinite(mu)) throw std::invalid_argument("gaussian_expectation: mu must be finite");
  if (!std::isfinite(sigma) || !(sigma >= 0))
    throw std::invalid_argument("gaussian_expectation: sigma must satisfy sigma >= 0 (finite), got " +
                                std::to_string(sigma));
  for (double b : breaks) {
    if (!std::isfinite(b))
      throw std::invalid_argument("gaussian_expectation: every break point must be finite");
  }
  if (sigma == 0) return g(mu);

  // E[g(z)] = int g(mu + sigma u) phi(u) du. A fixed first partition (finer near the bulk of phi) so the
  // first K15 pass cannot miss the bulk, plus the breaks mapped to u.
  const double L = kGaussianCutoff;
  std::vector<double> points = {-L, -24, -16, -12, -8, -6, -4, -2, 0, 2, 4, 6, 8, 12, 16, 24, L};
  for (double b : breaks) {
    const double u = (b - mu) / sigma;
    if (u > -L && u < L) points.push_back(u);
  }
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());

  const auto integrand = [&](double u) { return g(mu + sigma * u) * (kInvSqrt2Pi * std::exp(-0.5 * u * u)); };
  return integrate_adaptive(integrand, points);
}

GaussianMoments gaussian_moments(const Activation& f, double mu, double sigma) {
  using namespace detail;
  f.validate();
  if (!std::isfinite(mu)) throw std::invalid_argument("gaussian_moments: mu must be finite");
  if (!std::isfinite(sigma) || !(sigma >= 0))
    throw std::invalid_argument("gaussian_moments: sigma must satisfy sigma >= 0 (finite), got " +
                                std::to_string(sigma));

  GaussianMoments m;
  m.sup_abs_deriv = f.sup_abs_derivative();
  if (sigma == 0) {
    const double v = f.value(mu), dv = f.derivative(mu);
    m.mean = v;
    m.second_moment = v * v;
    m.mean_abs_deriv = std::fabs(dv);
    m.mean_sq_deriv = dv * dv;
    m.zero_prob = v == 0.0 ? 1.0 : 0.0;
    return m;
  }

  const std::vector<double> kinks = f.kinks();
  // |f'| also has a kink where f' changes sign away from the kinks of f.
  std::vector<double> abs_breaks = kinks;
  if (f.kind == ActivationKind::swish && f.beta != 0.0)
    abs_breaks.push_back(swish_derivative_zero() / f.beta);
  if (f.kind == ActivationKind::gelu) abs_breaks.push_back(gelu_derivative_zero());

  m.mean = gaussian_expectation([&](double x) { return f.value(x); }, mu, sigma, kinks);
  m.second_moment = gaussian_expectation(
      [&](double x) {
        const double v = f.value(x);
        return v * v;
      },
      mu, sigma, kinks);
  m.mean_abs_deriv =
      gaussian_expectation([&](double x) { return std::fabs(f.derivative(x)); }, mu, sigma, abs_breaks);
  m.mean_sq_deriv = gaussian_expectation(
      [&](double x) {
        const double dv = f.derivative(x);
        return dv * dv;
      },
      mu, sigma, kinks);
  // P(f(z) = 0) > 0 only where f vanishes on a set of positive measure: (-inf, 0) for relu (and
  // leaky_relu / elu at alpha = 0). Elsewhere f has isolated zeros, of probability 0.
  m.zero_prob = is_zero_on_negative_axis(f) ? 0.5 * std::erfc(mu / (sigma * std::sqrt(2.0))) : 0.0;
  return m;
}

}  // namespace gradflow
