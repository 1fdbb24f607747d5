#!/usr/bin/python3
"""Generates tests/data/gelu_reference.csv, the 50-digit reference of GELU for test_activation.

GELU f(x) = x Phi(x) and f'(x) = Phi(x) + x phi(x), with Phi and phi the standard normal CDF and density,
computed by mpmath (python3-mpmath) at 50 significant digits and rounded to the nearest double. The arguments
are doubles (written with repr, so they read back exactly): a grid of step 1/8 on [-37.5, 10] and 300 seeded
uniform draws on the same range. The left end is where exp(-x^2 / 2) is still a normal double; beyond it
gradflow flushes GELU's tail to 0.

Usage: python3 tests/data/gelu_reference.py > tests/data/gelu_reference.csv
"""
import random

import mpmath as mp

mp.mp.dps = 50


def main():
    xs = [k / 8 for k in range(-300, 81)]
    rng = random.Random(20261205)
    xs += [rng.uniform(-37.5, 10.0) for _ in range(300)]
    print("x,f,df")
    for x in xs:
        v = mp.mpf(x)
        cdf, pdf = mp.ncdf(v), mp.npdf(v)
        print(f"{x!r},{float(v * cdf)!r},{float(cdf + v * pdf)!r}")


if __name__ == "__main__":
    main()
