"""Saving and loading an AuditReport at 10^5, 10^6 and 5*10^6 records: time, peak memory, file sizes.

    python benchmarks/bench_report.py [--sizes 100000,1000000,5000000] [--inline-max 1000000]

One attack result per report, as the issue measured it: scores, membership,
10-class labels and predicted labels, losses and a threshold.  For each size,
in a fresh process:

* ``to_json``   the report (JSON summary, metrics and slices computed from a
                fresh result, plus the side file of per-record arrays);
* ``from_json`` loading it back (schema check, SHA-256 of the side file,
                headers checked, arrays read) and ``+ summary``, what
                ``tfmia report --summary`` does (the metrics recomputed);
* ``inline``    the previous format for comparison (every array written into
                the JSON), up to ``--inline-max`` records;
* ``np.save``   the yardstick: numpy writing the scores alone.

Peak memory is measured twice: the resident set's high-water mark above the
resident set before the call (``/proc/self/clear_refs``, what the machine
must have) and tracemalloc's peak (what Python and numpy allocate, which
tracemalloc tracks).  Ratios (ns and bytes per record, time over np.save)
travel between machines better than seconds.  Writes
benchmarks/results/report_io.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from _harness import _status_kib, format_table, machine_description

HERE = Path(__file__).resolve().parent


def make_report(n: int, seed: int = 0):
    """A fresh one-attack report on ``n`` records (half members): nothing computed yet."""
    from tfmia.evaluation import AttackResult
    from tfmia.report import AuditReport, ModelFacts

    rng = np.random.default_rng(seed)
    is_member = np.arange(n) < n // 2
    labels = rng.integers(0, 10, n)
    predicted = np.where(rng.uniform(size=n) < 0.8, labels, (labels + 1) % 10)
    result = AttackResult.from_scores(rng.normal(size=n) + 0.5 * is_member, is_member, name="loss",
                                      threshold=0.25, labels=labels, predicted_labels=predicted,
                                      losses=rng.exponential(size=n))
    return AuditReport([result], ModelFacts(model_name="bench", n_train=n // 2, n_test=n - n // 2))


def measure(fn) -> dict:
    """Wall time and peak resident memory above the start of one call of ``fn``, then tracemalloc's peak of another."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the high-water mark to the current resident set
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    rss = (_status_kib("VmHWM") - before) * 1024
    tracemalloc.start()
    fn()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"s": seconds, "rss_peak_bytes": max(rss, 0), "traced_peak_bytes": traced}


def probe(n: int, inline: bool) -> dict:
    """Every measurement at one size (run in its own process)."""
    from tfmia._serialization import atomic_write_text, to_json_text
    from tfmia.report import AuditReport, side_file_path

    folder = Path(tempfile.mkdtemp(prefix="bench_report_"))
    path = folder / "report.json"
    row = {"n": n}
    scores = make_report(n).results["loss"].scores
    save = measure(lambda: np.save(folder / "scores.npy", scores))
    row.update(np_save_s=save["s"], np_save_bytes=(folder / "scores.npy").stat().st_size)
    reports = iter([make_report(n), make_report(n)])  # fresh for each of measure's two calls
    to_json = measure(lambda: next(reports).to_json(path))
    row.update({f"to_json_{k}": v for k, v in to_json.items()})
    row.update(json_bytes=path.stat().st_size, side_bytes=side_file_path(path).stat().st_size)
    from_json = measure(lambda: AuditReport.from_json(path))
    row.update({f"from_json_{k}": v for k, v in from_json.items()})
    start = time.perf_counter()
    AuditReport.from_json(path).summary()
    row["load_summary_s"] = time.perf_counter() - start
    if inline:
        reports = iter([make_report(n), make_report(n)])

        def write_inline():
            report = next(reports)
            document = {"format": "tfmia.AuditReport", "version": 1, "results": [r.to_dict() for r in report.results.values()]}
            atomic_write_text(folder / "inline.json", to_json_text(document))

        inline_run = measure(write_inline)
        row.update({f"inline_{k}": v for k, v in inline_run.items()})
        row["inline_bytes"] = (folder / "inline.json").stat().st_size
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    return row


def derived(row: dict) -> dict:
    n = row["n"]
    out = {
        "n": n,
        "to_json_s": row["to_json_s"],
        "from_json_s": row["from_json_s"],
        "load_summary_s": row["load_summary_s"],
        "to_json_ns_per_record": 1e9 * row["to_json_s"] / n,
        "from_json_ns_per_record": 1e9 * row["from_json_s"] / n,
        "to_json_over_np_save": row["to_json_s"] / row["np_save_s"],
        "from_json_over_np_save": row["from_json_s"] / row["np_save_s"],
        "json_kib": row["json_bytes"] / 1024,
        "side_mib": row["side_bytes"] / 2**20,
        "bytes_per_record": (row["json_bytes"] + row["side_bytes"]) / n,
        "files_over_np_save": (row["json_bytes"] + row["side_bytes"]) / row["np_save_bytes"],
        "to_json_rss_mib": row["to_json_rss_peak_bytes"] / 2**20,
        "to_json_traced_mib": row["to_json_traced_peak_bytes"] / 2**20,
        "from_json_rss_mib": row["from_json_rss_peak_bytes"] / 2**20,
        "from_json_traced_mib": row["from_json_traced_peak_bytes"] / 2**20,
        "to_json_rss_bytes_per_record": row["to_json_rss_peak_bytes"] / n,
    }
    if "inline_s" in row:
        out.update(inline_s=row["inline_s"], inline_mib=row["inline_bytes"] / 2**20,
                   inline_rss_mib=row["inline_rss_peak_bytes"] / 2**20)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,5000000")
    parser.add_argument("--inline-max", type=int, default=1_000_000,
                        help="measure the previous inline-JSON format up to this many records (it is slow)")
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--inline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(HERE / "results" / "report_io.json"))
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe, args.inline)))
        return
    # Large buffers get their own mmap and are returned at free, so each call's peak shows in the resident set.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        command = [sys.executable, __file__, "--probe", str(n)] + (["--inline"] if n <= args.inline_max else [])
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"probe at n={n} failed:\n{proc.stderr[-3000:]}")
        rows.append(derived(json.loads(proc.stdout.strip().splitlines()[-1])))
        print(f"n={n} done", file=sys.stderr)
    print(machine_description())
    print(format_table(rows, [
        ("n", "records", ","), ("to_json_s", "to_json s", ".2f"), ("from_json_s", "from_json s", ".2f"),
        ("load_summary_s", "load+summary s", ".2f"), ("to_json_ns_per_record", "to_json ns/rec", ".0f"),
        ("from_json_ns_per_record", "from_json ns/rec", ".0f"), ("to_json_over_np_save", "to_json/np.save", ".1f"),
        ("from_json_over_np_save", "from_json/np.save", ".1f"),
    ]))
    print()
    print(format_table(rows, [
        ("n", "records", ","), ("json_kib", "JSON KiB", ".1f"), ("side_mib", "side file MiB", ".1f"),
        ("bytes_per_record", "bytes/rec", ".1f"), ("files_over_np_save", "files/np.save", ".2f"),
        ("to_json_rss_mib", "to_json RSS peak MiB", ".0f"), ("to_json_traced_mib", "to_json traced MiB", ".0f"),
        ("from_json_rss_mib", "from_json RSS peak MiB", ".0f"), ("from_json_traced_mib", "from_json traced MiB", ".0f"),
    ]))
    inline_rows = [r for r in rows if "inline_s" in r]
    if inline_rows:
        print("\nprevious format (every array inline in the JSON), for comparison:")
        print(format_table(inline_rows, [("n", "records", ","), ("inline_s", "to_json s", ".2f"),
                                         ("inline_mib", "JSON MiB", ".1f"), ("inline_rss_mib", "RSS peak MiB", ".0f")]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine_description(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
