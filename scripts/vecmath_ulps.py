"""Measure the largest error, in ulps, of the core's vectorised exp and logs.

Every function of csrc/vecmath.hpp that the testing hook ``_core._vecmath``
exposes is run on a dense sweep of arguments through the row kernels of each
instruction set this CPU supports, and compared with numpy's long-double
(x87, 64-bit significand) exp/log/log1p, whose own error is about 2^-11 of a
double ulp.  Prints the largest error per function and instruction set.

Usage: PYTHONPATH=. python scripts/vecmath_ulps.py [--count 10000000]
"""

from __future__ import annotations

import argparse

import numpy as np

from tfmia import _core

CHUNK = 1_000_000


def ulps(got, exact):
    """|got - exact| in units of the last place of exact rounded to float64."""
    spacing = np.spacing(np.abs(exact.astype(np.float64))).astype(np.longdouble)
    return np.abs((got.astype(np.longdouble) - exact) / spacing)


def log1m_exact(p):
    """log(max(1 - p, 1e-30)) in long double."""
    p = p.astype(np.longdouble)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p <= 0.5, np.log1p(-np.minimum(p, 0.5)), np.log(np.maximum(1 - p, 1e-30)))


def log_arguments(rng, n):
    """Positive normal doubles: a quarter log-uniform over the whole range, the rest in [1/2, 2]."""
    wide = 2.0 ** rng.uniform(-1022, 1024, n // 4)
    near_one = rng.uniform(0.5, 2.0, n - n // 4)
    return np.concatenate([wide, near_one])


def probability_arguments(rng, n):
    """p in [0, 1]: half uniform, half log-uniform down to 1e-300."""
    return np.concatenate([rng.uniform(0, 1, n // 2), 10.0 ** -rng.uniform(0, 300, n - n // 2)])


# name -> (arguments(rng, n), exact long-double values of the arguments)
SWEEPS = {
    "exp": (lambda rng, n: rng.uniform(-708, 709, n), lambda x: np.exp(x.astype(np.longdouble))),
    "log": (log_arguments, lambda x: np.log(x.astype(np.longdouble))),
    "log1p": (
        lambda rng, n: np.concatenate([10.0 ** rng.uniform(-320, 300, n // 2), rng.uniform(0, 3, n - n // 2)]),
        lambda x: np.log1p(x.astype(np.longdouble)),
    ),
    "log1m": (probability_arguments, log1m_exact),
    "log1m_half": (lambda rng, n: 0.5 * probability_arguments(rng, n), log1m_exact),
    "pair_log": (
        lambda rng, n: np.maximum(probability_arguments(rng, n), 1e-30),
        lambda x: np.log(x.astype(np.longdouble)),
    ),
    "pair_log1m": (lambda rng, n: np.maximum(probability_arguments(rng, n), 1e-30), log1m_exact),
}


def max_ulps(name, count, seed=0):
    arguments, exact = SWEEPS[name]
    rng = np.random.default_rng(seed)
    worst = 0.0
    for start in range(0, count, CHUNK):
        x = arguments(rng, min(CHUNK, count - start))
        worst = max(worst, float(ulps(_core._vecmath(name, x), exact(x)).max()))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000_000, help="arguments per function")
    args = parser.parse_args()
    isas = _core.build_info()["row_isas"]
    previous = _core._row_isa()
    print(f"{'function':12s}" + "".join(f"{isa:>10s}" for isa in isas))
    try:
        for name in SWEEPS:
            row = []
            for isa in isas:
                _core._row_isa(isa)
                row.append(max_ulps(name, args.count))
            print(f"{name:12s}" + "".join(f"{u:10.3f}" for u in row), flush=True)
    finally:
        _core._row_isa(previous)


if __name__ == "__main__":
    main()
