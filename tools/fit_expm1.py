#!/usr/bin/env python3
"""The coefficients of the vectorised exp and expm1 (sim/numerics/activation.cpp, ExpConstants<Scalar>::kQ).

exp_neg_poly writes -t = k ln 2 + r with |r| <= ln 2 / 2 and needs exp(r) and exp(r) - 1 there, the second
without cancellation as r -> 0 (tanh is -expm1(-2|x|) / (1 + exp(-2|x|)), relative-accurate down to
subnormal x). Both come from one polynomial q(r) ~ (exp(r) - 1) / r: exp(r) - 1 = r q(r) and exp(r) = 1 + r q(r).
This script fits q by its Chebyshev interpolant on [-ln 2 / 2, ln 2 / 2] (slightly widened) in 50-digit
arithmetic (mpmath.chebyfit: within a small factor of the minimax error), rounds the coefficients to the
target type and prints them highest degree first, as the C++ array wants them. It then reports the largest
relative error of q (hence of r q) and of 1 + r q against mpmath over a grid of r, in ulps of the type, with
the coefficients as rounded (the arithmetic of Horner's rule itself adds its own rounding, ~1 ulp).

Degree 10 for double: 0.09 ulps (Taylor's series needs degree 13 for 0.05 ulps, two more multiply-adds per
value); degree 6 for float: 0.05 ulps (degree 5 gives 0.4 ulps once its coefficients are rounded to float).

Usage: python3 tools/fit_expm1.py        (needs python3-mpmath)
"""
import struct

import mpmath as mp

mp.mp.dps = 50
HALF_LN2 = mp.log(2) / 2
GRID = 4000


def q_exact(r):
    return mp.expm1(r) / r if r != 0 else mp.mpf(1)


def to_float32(x):
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def fit(degree, rounding, ulp, name):
    a = HALF_LN2 * (1 + mp.mpf("1e-6"))  # the reduction's |r| can exceed ln 2 / 2 by its rounding
    poly, _ = mp.chebyfit(q_exact, [-a, a], degree + 1, error=True)
    coefficients = [rounding(c) for c in poly]  # highest degree first
    worst_q = worst_exp = mp.mpf(0)
    for i in range(GRID + 1):
        r = -a + 2 * a * i / GRID
        q = mp.mpf(0)
        for c in coefficients:
            q = q * r + mp.mpf(c)
        worst_q = max(worst_q, abs(q / q_exact(r) - 1))
        worst_exp = max(worst_exp, abs((1 + r * q) / mp.exp(r) - 1))
    print(f"// {name}: degree {degree}, q within {mp.nstr(worst_q / ulp, 2)} ulps, 1 + r q within "
          f"{mp.nstr(worst_exp / ulp, 2)} ulps (tools/fit_expm1.py)")
    print("{" + ", ".join(repr(c) for c in coefficients) + "}")


if __name__ == "__main__":
    fit(10, float, mp.mpf(2) ** -53, "double")
    fit(6, to_float32, mp.mpf(2) ** -24, "float")
