"""Fit the polynomial and the ln 2 split of csrc/vecmath.hpp's logarithm.

vecmath.hpp reduces x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)), and
writes, with t = 2f / (2 + f) (so that 1 + f = (2 + t) / (2 - t)) and w = t^2,

    log(1 + f) = 2 atanh(t / 2) = t + t w q(w),
    q(w)       = (2 atanh(sqrt(w) / 2) - sqrt w) / w^(3/2)
               = sum_{n >= 0} w^n / (4^(n + 1) (2 n + 3))  = 1/12 + w/80 + ...

|t| <= 2 (sqrt 2 - 1) / (sqrt 2 + 1) = 2 (3 - 2 sqrt 2) at both ends of the
range, so w lies in [0, 4 (3 - 2 sqrt 2)^2] = [0, 0.1178].  This script
replaces the series by the polynomial of the given degree that minimises the
largest relative error it causes in log(1 + f),

    e(w) = t w (poly(w) - q(w)) / (2 atanh(t / 2)),        t = sqrt w,

found by the Remez exchange algorithm in mpmath at 50 significant digits.  It
prints the coefficients rounded to double (hexadecimal literals, ready for
C++17), the largest |e| measured on a dense grid with those rounded
coefficients, and the Cody-Waite split of ln 2 that the reductions use:
ln2_hi is ln 2 rounded to 42 significant bits, so that k ln2_hi is exact for
every |k| < 2^11 (exp and log never need more), and ln2_lo = ln 2 - ln2_hi
rounded to double.

Usage: python scripts/fit_log_coefficients.py [--degree 6]
(needs mpmath, which the test extra installs through dp-accounting).
"""

from __future__ import annotations

import argparse

import mpmath
from mpmath import mp, mpf

mp.dps = 50

T_MAX = 2 * (3 - 2 * mpmath.sqrt(2))
W_MAX = T_MAX**2 * (1 + mpf(2) ** -30)  # a hair beyond: t is rounded before it is squared


def series(w):
    """q(w) = (2 atanh(sqrt(w) / 2) - sqrt w) / w^(3/2), from its Taylor series near 0."""
    if w < mpf(10) ** -8:
        return mpmath.fsum(w**n / (4 ** (n + 1) * (2 * n + 3)) for n in range(8))
    t = mpmath.sqrt(w)
    return (2 * mpmath.atanh(t / 2) - t) / (t * w)


def weight(w):
    """Turns an error in q(w) into the relative error of log(1 + f) = 2 atanh(t / 2)."""
    t = mpmath.sqrt(w)
    return t * w / (2 * mpmath.atanh(t / 2))


def horner(coefficients, w):
    result = mpf(0)
    for c in reversed(coefficients):
        result = result * w + c
    return result


def weighted_error(coefficients, w):
    return weight(w) * (horner(coefficients, w) - series(w))


def solve_reference(points, degree):
    """Coefficients c and level E with weight(w_i) (poly(w_i) - q(w_i)) = (-1)^i E at every point."""
    rows = [[w**j for j in range(degree + 1)] + [(-1) ** i / weight(w)] for i, w in enumerate(points)]
    solution = mpmath.lu_solve(mpmath.matrix(rows), mpmath.matrix([series(w) for w in points]))
    return [solution[j] for j in range(degree + 1)], solution[degree + 1]


def refine_extremum(coefficients, lo, hi):
    """Where |e| peaks between lo and hi (golden-section search on |e|)."""
    ratio = (mpmath.sqrt(5) - 1) / 2
    for _ in range(80):
        a = hi - ratio * (hi - lo)
        b = lo + ratio * (hi - lo)
        if abs(weighted_error(coefficients, a)) > abs(weighted_error(coefficients, b)):
            hi = b
        else:
            lo = a
    return (lo + hi) / 2


def alternating_extrema(coefficients, grid, count):
    """`count` extrema of e of alternating sign, the largest ones where there are more."""
    errors = [weighted_error(coefficients, w) for w in grid]
    peaks = []
    for i in range(1, len(grid)):
        right = errors[i + 1] if i + 1 < len(grid) else mpf(0)
        if abs(errors[i]) >= abs(errors[i - 1]) and abs(errors[i]) >= abs(right):
            w = grid[i] if i + 1 == len(grid) else refine_extremum(coefficients, grid[i - 1], grid[i + 1])
            peaks.append((w, weighted_error(coefficients, w)))
    merged = []  # one peak per run of equal sign: the largest
    for w, e in peaks:
        if merged and mpmath.sign(merged[-1][1]) == mpmath.sign(e):
            if abs(e) > abs(merged[-1][1]):
                merged[-1] = (w, e)
        else:
            merged.append((w, e))
    while len(merged) > count:  # drop the smaller end
        merged.pop(0 if abs(merged[0][1]) < abs(merged[-1][1]) else -1)
    if len(merged) < count:
        raise RuntimeError(f"Remez: found {len(merged)} alternating extrema, need {count}")
    return [w for w, _ in merged], max(abs(e) for _, e in merged), min(abs(e) for _, e in merged)


def remez(degree, iterations=40, grid_size=3000):
    count = degree + 2
    # Chebyshev-spaced points of (0, W_MAX]: dense near both ends, where extrema crowd.
    grid = [W_MAX * (1 - mpmath.cos(mpmath.pi * (i + 1) / grid_size)) / 2 for i in range(grid_size)]
    points = [W_MAX * (1 - mpmath.cos(mpmath.pi * (i + 1) / count)) / 2 for i in range(count)]
    for _ in range(iterations):
        coefficients, _ = solve_reference(points, degree)
        points, largest, smallest = alternating_extrema(coefficients, grid, count)
        if largest - smallest <= largest * mpf(10) ** -8:  # equioscillation: minimax reached
            return coefficients
    raise RuntimeError("Remez did not converge")


def max_error(coefficients, samples=20000):
    """Largest |e| on a uniform grid of samples points of [0, W_MAX]."""
    return max(abs(weighted_error(coefficients, W_MAX * (i + 1) / samples)) for i in range(samples))


def ln2_split(bits=42):
    """ln 2 = ln2_hi + ln2_lo: ln2_hi rounded to `bits` significant bits, ln2_lo to double."""
    ln2 = mpmath.log(2)
    scale = mpf(2) ** bits  # ln 2 lies in [1/2, 1): bits significant bits are the multiples of 2^-bits
    hi = mpmath.nint(ln2 * scale) / scale
    return float(hi), float(ln2 - hi)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--degree", type=int, default=6, help="degree of the polynomial (default 6)")
    args = parser.parse_args()

    exact = remez(args.degree)
    rounded = [float(c) for c in exact]
    error = max_error([mpf(c) for c in rounded])
    print(f"// q(w), degree {args.degree}, minimax on w in [0, {float(W_MAX):.6g}]:")
    print(f"// max relative error in log(1 + f) with these doubles: {float(error):.3g} "
          f"= 2^{float(mpmath.log(error, 2)):.2f}")
    for j, c in enumerate(rounded):
        print(f"constexpr double kLogQ{j} = {c.hex()};  // {c!r}  (series: 1/{4 ** (j + 1) * (2 * j + 3)})")
    hi, lo = ln2_split()
    print(f"constexpr double kLn2Hi = {hi.hex()};  // {hi!r}, 42 significant bits")
    print(f"constexpr double kLn2Lo = {lo.hex()};  // {lo!r}")
    print(f"constexpr double kInvLn2 = {float(1 / mpmath.log(2)).hex()};  // 1 / ln 2")


if __name__ == "__main__":
    main()
