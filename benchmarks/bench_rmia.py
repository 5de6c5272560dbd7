"""RMIA scoring: tfmia's sorted-count kernel against the dense N x Z computation.

Usage::

    python benchmarks/bench_rmia.py            # N = Z = 1e4 and 1e5
    python benchmarks/bench_rmia.py --quick    # N = Z = 1e4 only

The dense computation is how the RMIA reference implementation scores (ML
Privacy Meter builds every likelihood ratio): ratio vectors, then the N x Z
matrix ``ratio_x[:, None] / ratio_z[None, :]`` compared with gamma and
averaged per row; written here from the definition.  At N = Z = 1e5 the
matrix alone is 1e10 float64 = 80 GB, so it is computed in blocks of rows
(the same numbers; its time and peak memory are those of the blocked loop)
and the full-matrix memory is reported as the figure it would need.  Both
versions give the same scores, which the script checks.

Peak extra memory is measured per call in a fresh subprocess (``_harness``);
times are medians in this process.  K = 4 references, offline with a = 0.3.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from _harness import (  # noqa: E402
    Case,
    format_table,
    machine_description,
    measure_peak_extra_bytes,
    memory_in_subprocess,
    time_case,
    write_results,
)

from tfmia.attacks.rmia import rmia_scores  # noqa: E402

K, A, GAMMA = 4, 0.3, 1.0
SIZES = (10_000, 100_000)
DENSE_MAX_CELLS = 10**8  # the full matrix up to 800 MB; beyond, blocks of this many cells
FULL_MATRIX_BYTES = 8  # float64 per likelihood ratio


def setup(n: int):
    def build(rng: np.random.Generator) -> dict:
        return {"target_x": rng.uniform(size=n), "refs_x": rng.uniform(size=(K, n)),
                "target_z": rng.uniform(size=n), "refs_z": rng.uniform(size=(K, n))}
    return build


def ours(inputs: dict) -> np.ndarray:
    return rmia_scores(inputs["target_x"], inputs["refs_x"], inputs["target_z"], inputs["refs_z"], a=A, gamma=GAMMA)


def _ratio(target: np.ndarray, refs: np.ndarray) -> np.ndarray:
    P = (1 + A) / 2 * refs.mean(axis=0) + (1 - A) / 2
    return target / P


def dense(inputs: dict) -> np.ndarray:
    """Every LR(x, z): the N x Z matrix (in blocks of rows when it exceeds DENSE_MAX_CELLS)."""
    ratio_x = _ratio(inputs["target_x"], inputs["refs_x"])
    ratio_z = _ratio(inputs["target_z"], inputs["refs_z"])
    rows = max(1, DENSE_MAX_CELLS // ratio_z.size)
    scores = np.empty(ratio_x.size)
    for start in range(0, ratio_x.size, rows):
        lr = ratio_x[start:start + rows, None] / ratio_z[None, :]
        scores[start:start + rows] = (lr > GAMMA).mean(axis=1)
    return scores


def cases(sizes) -> list[Case]:
    out = []
    for n in sizes:
        blocked = n * n > DENSE_MAX_CELLS
        out.append(Case(id=f"rmia-{n}", kernel="rmia_scores", n=n, c=None, setup=setup(n), ours=ours,
                        reference=dense, reference_name="dense N x Z" + (" (row blocks)" if blocked else ""),
                        repeats=5))
    return out


def dense_case(case: Case) -> Case:
    """The same case with the dense computation in the measured slot (for its memory probe)."""
    return Case(id=case.id, kernel=case.kernel, n=case.n, c=None, setup=case.setup, ours=dense)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = Z = 1e4 only")
    parser.add_argument("--out", default=str(HERE / "results" / "rmia.json"), help="JSON output path")
    parser.add_argument("--memory-probe", metavar="CASE_ID", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_probe:
        which, case_id = args.memory_probe.split(":", 1)
        case = next(c for c in cases(SIZES) if c.id == case_id)
        print(json.dumps(measure_peak_extra_bytes(case if which == "ours" else dense_case(case))))
        return 0

    rows = []
    for case in cases(SIZES[:1] if args.quick else SIZES):
        inputs = case.setup(np.random.default_rng(0))
        same = np.array_equal(ours(inputs), dense(inputs))
        del inputs
        row = time_case(case)
        row["same_scores"] = same
        row["ours_peak_mib"] = memory_in_subprocess(__file__, f"ours:{case.id}") / 2**20
        row["dense_peak_mib"] = memory_in_subprocess(__file__, f"dense:{case.id}") / 2**20
        row["full_matrix_gib"] = case.n * case.n * FULL_MATRIX_BYTES / 1e9
        row["ours_ms"], row["dense_ms"] = row["ours_s"] * 1e3, row["reference_s"] * 1e3
        row["memory_ratio"] = row["dense_peak_mib"] / max(row["ours_peak_mib"], 1e-9)
        rows.append(row)
        print(f"{case.id}: ours {row['ours_ms']:.1f} ms, dense {row['dense_ms']:.0f} ms", file=sys.stderr, flush=True)

    machine = machine_description()
    print(f"\nMachine: {machine}\n")
    print(format_table(rows, [
        ("n", "N = Z", ","),
        ("ours_ms", "tfmia ms", ".1f"),
        ("reference", "dense", ""),
        ("dense_ms", "dense ms", ".0f"),
        ("speedup_vs_reference", "time ratio", ".0f"),
        ("ours_peak_mib", "tfmia peak MiB", ".1f"),
        ("dense_peak_mib", "dense peak MiB", ".0f"),
        ("memory_ratio", "memory ratio", ".0f"),
        ("full_matrix_gib", "full N x Z matrix GB", ".1f"),
        ("same_scores", "same scores", ""),
    ]))
    out = write_results(args.out, {"machine": machine, "k": K, "a": A, "gamma": GAMMA, "rows": rows})
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
