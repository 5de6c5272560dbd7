"""Timing, memory and result-file plumbing shared by the benchmarks.

A benchmark is a list of :class:`Case` objects.  For each case we time, in the
same process and the same run:

* ``ours``       the tfmia call being measured,
* ``reference``  the numpy / scikit-learn code a user would otherwise write,
* ``yardstick``  numpy copying the case's input bytes (``np.copyto`` into a
                 preallocated buffer): the memory-bandwidth floor on this
                 machine, so that ratios travel between machines better than
                 seconds do.

Times are medians over ``repeats`` runs after one warm-up.  Peak extra memory
is measured in a fresh subprocess per case: the inputs are built, the kernel
high-water mark is reset through ``/proc/self/clear_refs`` and the peak
resident set (``VmHWM``) minus the resident set before the call is reported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tfmia._serialization import atomic_write_text

Inputs = dict[str, Any]


@dataclasses.dataclass
class Case:
    """One kernel at one size.

    ``setup(rng)`` builds the inputs (a dict); ``ours(inputs)`` and
    ``reference(inputs)`` run the computation; ``copy_keys`` names the input
    arrays whose bytes the yardstick copies; ``output_bytes(inputs)`` is the
    size of the kernel's outputs (the memory budget is outputs + O(N)).
    """

    id: str
    kernel: str
    n: int
    c: int | None
    setup: Callable[[np.random.Generator], Inputs]
    ours: Callable[[Inputs], Any]
    reference: Callable[[Inputs], Any] | None = None
    reference_name: str = "numpy"
    copy_keys: tuple[str, ...] = ()
    output_bytes: Callable[[Inputs], int] | None = None
    repeats: int = 5


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_yardstick(inputs: Inputs, keys: tuple[str, ...], repeats: int) -> float | None:
    """Median time for numpy to copy the named input arrays into preallocated buffers."""
    arrays = [np.asarray(inputs[k]) for k in keys]
    if not arrays:
        return None
    targets = [np.empty_like(a) for a in arrays]

    def copy():
        for dst, src in zip(targets, arrays):
            np.copyto(dst, src)

    return median_time(copy, repeats)


def time_case(case: Case, seed: int = 0, reference_max_seconds: float = 60.0) -> dict:
    """Time ours, the reference and the copy yardstick for one case."""
    inputs = case.setup(np.random.default_rng(seed))
    ours = median_time(lambda: case.ours(inputs), case.repeats)
    ref = None
    if case.reference is not None:
        start = time.perf_counter()
        case.reference(inputs)
        once = time.perf_counter() - start
        # Slow references (minutes per call) are timed once rather than skipped.
        ref = once if once * case.repeats > reference_max_seconds else median_time(
            lambda: case.reference(inputs), max(1, case.repeats // 2)
        )
    copy = copy_yardstick(inputs, case.copy_keys, case.repeats)
    return {
        "id": case.id,
        "kernel": case.kernel,
        "n": case.n,
        "c": case.c,
        "ours_s": ours,
        "reference_s": ref,
        "reference": case.reference_name if case.reference is not None else None,
        "copy_s": copy,
        "speedup_vs_reference": (ref / ours) if ref else None,
        "ours_over_copy": (ours / copy) if copy else None,
        "output_bytes": case.output_bytes(inputs) if case.output_bytes else None,
    }


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_peak_extra_bytes(case: Case, seed: int = 0) -> int | None:
    """Peak resident memory added by one call of ``case.ours`` (this process).

    Returns None where the kernel high-water mark cannot be reset (non-Linux).
    """
    inputs = case.setup(np.random.default_rng(seed))
    case.ours(inputs)  # warm-up: first-call allocations (thread pools, caches)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return None
    before = _status_kib("VmRSS")
    result = case.ours(inputs)
    peak = _status_kib("VmHWM")
    del result
    return max(0, peak - before) * 1024


def memory_in_subprocess(script: str, case_id: str) -> int | None:
    """Run ``script --memory-probe case_id`` and read the byte count it prints."""
    # Large buffers get their own mmap (and are returned at free), so a kernel's
    # working memory shows in the peak instead of hiding in a heap grown by the warm-up.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
    proc = subprocess.run([sys.executable, script, "--memory-probe", case_id], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe for {case_id} failed:\n{proc.stderr[-2000:]}")
    value = json.loads(proc.stdout.strip().splitlines()[-1])
    return value


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Render rows as a Markdown table; columns are (key, header, format)."""
    header = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [header, rule]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            cells.append("-" if value is None else format(value, fmt) if fmt else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_description() -> str:
    """One line naming the CPU, core count and memory of this machine."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        mem_gib = float("nan")
    return f"{model}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, numpy {np.__version__}"


def write_results(path, payload: dict) -> Path:
    """Write a benchmark's results as JSON to ``path`` (parents created),
    atomically: an interrupted run never leaves a half-written file where the
    previous results were.  Values JSON cannot hold are written as ``str``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(payload, indent=1, default=str))
