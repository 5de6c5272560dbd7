"""Benchmark of the C++ core against numpy / scikit-learn and a copy yardstick.

Usage::

    python benchmarks/bench_core.py                 # full grid, N up to 1e6, C up to 1000
    python benchmarks/bench_core.py --quick         # N <= 1e5, C <= 100
    python benchmarks/bench_core.py --only signals  # kernels whose name contains "signals"

Prints a Markdown table of medians and ratios measured in the same run and
writes everything to ``benchmarks/results/core.json``.  The kernel families
contribute their cases from ``cases_rows.py`` (signals, gradient statistics,
bisection) and ``cases_sorting.py`` (thresholds, ROC/AUC, risk histograms).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "tests"))  # oracles.py: the tests' brute-force threshold rule

import cases_rows  # noqa: E402
import cases_sorting  # noqa: E402
from _harness import (  # noqa: E402
    format_table,
    machine_description,
    measure_peak_extra_bytes,
    memory_in_subprocess,
    time_case,
    write_results,
)

FULL_N = (10_000, 100_000, 1_000_000)
FULL_C = (10, 100, 1000)
QUICK_N = (10_000, 100_000)
QUICK_C = (10, 100)


def all_cases(ns, cs):
    return cases_rows.cases(ns, cs) + cases_sorting.cases(ns, cs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller grid (N <= 1e5, C <= 100)")
    parser.add_argument("--only", default="", help="run only kernels whose name contains this text")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-case memory subprocesses")
    parser.add_argument("--out", default=str(HERE / "results" / "core.json"), help="JSON output path")
    parser.add_argument("--memory-probe", metavar="CASE_ID", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    ns, cs = (QUICK_N, QUICK_C) if args.quick else (FULL_N, FULL_C)
    if args.memory_probe:
        case = next(c for c in all_cases(FULL_N, FULL_C) if c.id == args.memory_probe)
        print(json.dumps(measure_peak_extra_bytes(case)))
        return 0

    rows = []
    for case in all_cases(ns, cs):
        if args.only and args.only not in case.kernel:
            continue
        row = time_case(case)
        if not args.no_memory:
            row["peak_extra_bytes"] = memory_in_subprocess(__file__, case.id)
            if row["peak_extra_bytes"] is not None and row["output_bytes"]:
                row["extra_over_output"] = row["peak_extra_bytes"] / row["output_bytes"]
        rows.append(row)
        print(f"{case.id}: ours {row['ours_s'] * 1e3:.2f} ms", file=sys.stderr, flush=True)

    for row in rows:
        for key in ("ours_s", "reference_s", "copy_s"):
            row[key.replace("_s", "_ms")] = None if row[key] is None else row[key] * 1e3
        for key in ("peak_extra_bytes", "output_bytes"):
            if row.get(key) is not None:
                row[key.replace("bytes", "mib")] = row[key] / 2**20

    machine = machine_description()
    print(f"\nMachine: {machine}\n")
    print(
        format_table(
            rows,
            [
                ("kernel", "kernel", ""),
                ("n", "N", ","),
                ("c", "C", ""),
                ("ours_ms", "tfmia ms", ".2f"),
                ("reference", "reference", ""),
                ("reference_ms", "reference ms", ".1f"),
                ("speedup_vs_reference", "speed-up", ".1f"),
                ("copy_ms", "copy ms", ".2f"),
                ("ours_over_copy", "tfmia / copy", ".2f"),
                ("output_mib", "output MiB", ".1f"),
                ("peak_extra_mib", "peak extra MiB", ".1f"),
            ],
        )
    )
    out = write_results(args.out, {"machine": machine, "rows": rows})
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
