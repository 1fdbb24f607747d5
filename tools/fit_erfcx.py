#!/usr/bin/env python3
"""The coefficients of GELU's vectorised erfc (sim/numerics/activation.cpp, kErfcxPoly).

For y >= 0 the scaled complementary error function erfcx(y) = exp(y^2) erfc(y) is written as
u H(s) with u = K / (K + y) and s = 2u - 1 = (K - y) / (K + y), which maps [0, inf) onto (-1, 1]; H is smooth
on [-1, 1] (H(-1) = 1 / (K sqrt(pi)), the limit of y erfcx(y) sqrt(pi) = 1), so its Chebyshev series converges
fast (the change of variable of Schonfelder 1978, "Chebyshev expansions for the error and related functions",
Math. Comp. 32, with K = 4). This script computes the series in 50-digit arithmetic (mpmath) from the
cosine transform at Chebyshev nodes, truncates it at degree DEGREE, converts it to the monomial basis and
prints the coefficients highest degree first, as the C++ array wants them. It then reports the largest
relative error of u H(s) evaluated in double (Horner's rule) against mpmath over a grid of y, in ulps.

Usage: python3 tools/fit_erfcx.py        (needs python3-mpmath)
"""
import mpmath as mp

mp.mp.dps = 50
K = mp.mpf(4)
DEGREE = 25
NODES = 120


def h_of_s(s):
    u = (s + 1) / 2
    if u == 0:
        return 1 / (K * mp.sqrt(mp.pi))
    y = K * (1 - u) / u
    return mp.erfc(y) * mp.exp(y * y) / u


def monomial_coefficients():
    nodes = [mp.cos(mp.pi * (j + mp.mpf(1) / 2) / NODES) for j in range(NODES)]
    values = [h_of_s(s) for s in nodes]
    cheb = [2 * mp.fsum(values[j] * mp.cos(mp.pi * k * (j + mp.mpf(1) / 2) / NODES) for j in range(NODES)) / NODES
            for k in range(DEGREE + 1)]
    cheb[0] /= 2
    # T_k in the monomial basis by T_k = 2 s T_{k-1} - T_{k-2}.
    basis = [[mp.mpf(1)], [mp.mpf(0), mp.mpf(1)]]
    for k in range(2, DEGREE + 1):
        up = [mp.mpf(0)] + [2 * v for v in basis[k - 1]]
        down = basis[k - 2] + [mp.mpf(0)] * (len(up) - len(basis[k - 2]))
        basis.append([a - b for a, b in zip(up, down)])
    return [mp.fsum(cheb[k] * basis[k][i] for k in range(i, DEGREE + 1)) for i in range(DEGREE + 1)]


def main():
    mono = monomial_coefficients()
    coefficients = [float(v) for v in reversed(mono)]  # highest degree first
    print(f"// degree {DEGREE}, K = {int(K)}: tools/fit_erfcx.py")
    for v in coefficients:
        print(f"    {v!r},")
    worst, at = 0.0, 0.0
    for i in range(4001):
        y = 27.0 * (i / 4000.0) ** 2
        r = 1.0 / (4.0 + y)
        u, s = 4.0 * r, (4.0 - y) * r
        p = coefficients[0]
        for c in coefficients[1:]:
            p = p * s + c
        ref = mp.erfc(mp.mpf(y)) * mp.exp(mp.mpf(y) ** 2)
        err = float(abs((u * p - ref) / ref)) / 2.0**-52
        if err > worst:
            worst, at = err, y
    print(f"// largest error of u H(s) in double, 0 <= y <= 27: {worst:.2f} ulps at y = {at:.4g}")


if __name__ == "__main__":
    main()
