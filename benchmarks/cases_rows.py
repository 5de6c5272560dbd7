"""Benchmark cases for the row kernels: fused signals, gradient statistics, bisection.

Each case pairs the tfmia call with the numpy code a user would otherwise
write, following the published reference implementations:

* signals: the loss, entropy and modified entropy on probabilities with log
  arguments floored at 1e-30, as Song & Mittal and TF Privacy define them
  (from logits: ``scipy.special.softmax`` first, as TF Privacy does), LiRA's
  logit scaling; all in the input dtype.
* gradient statistics: numpy and ``scipy.stats.skew`` / ``kurtosis`` on the
  concatenated per-sample gradient (prepared in setup, not timed), for many
  rows with small chunks (1e4 x 1000 in 10) and few rows with huge chunks
  (8 x 2e6 in 4, the per-sample gradient of an InceptionV3 layer).
* bisection: one batched update of N x 784 float32 records (N = min(max N,
  1e5)) against the same step written with numpy fancy indexing.

Grid limits: the signals reference materialises about seven float32 copies of
its input, so (N, C) pairs whose reference would need more than ~12 GB (input
above ~1.7 GB) run tfmia alone (``reference=None``, marked "no numpy ref" in the
kernel name), and pairs whose input exceeds 4 GB are skipped.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from _harness import Case

SIGNAL_REFERENCE_COPIES = 7
MAX_REFERENCE_BYTES = 12e9
MAX_INPUT_BYTES = 4e9


# ---- signals ---------------------------------------------------------------


def numpy_signals_from_probs(p, y):
    """The signals written from their formulas with numpy (input dtype, full (N, C) temporaries).

    Every log argument is floored at 1e-30; the modified entropy sums
    ``w_i * -log(a_i)`` with ``(w, a) = (1 - p_y, p_y)`` on the label and ``(p_i, 1 - p_i)`` elsewhere.
    """
    is_label = np.arange(p.shape[1]) == y[:, None]
    neg_log = -np.log(np.maximum(p, 1e-30))
    p_y = p[is_label]
    mentr_weight = np.where(is_label, 1 - p, p)
    mentr_neg_log = -np.log(np.maximum(np.where(is_label, p, 1 - p), 1e-30))
    return {
        "loss": neg_log[is_label],
        "confidence": p_y,
        "max": p.max(axis=1),
        "sd": p.std(axis=1),
        "entropy": np.sum(p * neg_log, axis=1),
        "modified_entropy": np.sum(mentr_weight * mentr_neg_log, axis=1),
        "correct": p.argmax(axis=1) == y,
        "logit_confidence": np.log(p_y + 1e-45) - np.log(np.where(is_label, 0, p).sum(axis=1) + 1e-45),
    }


def numpy_signals_from_logits(z, y):
    return numpy_signals_from_probs(special.softmax(z, axis=1), y)


def float32_logits(rng, n, c, rows_per_block=65536):
    """Standard normal logits times 3, generated in blocks to bound memory."""
    z = np.empty((n, c), dtype=np.float32)
    for start in range(0, n, rows_per_block):
        block = z[start : start + rows_per_block]
        rng.standard_normal(out=block, dtype=np.float32)
        block *= 3
    return z


def float32_probs(rng, n, c, rows_per_block=65536):
    p = float32_logits(rng, n, c, rows_per_block)
    for start in range(0, n, rows_per_block):
        block = p[start : start + rows_per_block]
        block[:] = special.softmax(block, axis=1)
    return p


def signal_cases(ns, cs):
    from tfmia import signals

    cases = []
    for from_logits in (True, False):
        source = "logits" if from_logits else "probabilities"
        make = float32_logits if from_logits else float32_probs
        reference = numpy_signals_from_logits if from_logits else numpy_signals_from_probs
        for n in ns:
            for c in cs:
                input_bytes = 4 * n * c
                if input_bytes > MAX_INPUT_BYTES:
                    continue
                with_ref = SIGNAL_REFERENCE_COPIES * input_bytes <= MAX_REFERENCE_BYTES

                def setup(rng, n=n, c=c, make=make):
                    return {"preds": make(rng, n, c), "labels": rng.integers(0, c, n)}

                cases.append(
                    Case(
                        id=f"signals-{source}-f32-n{n}-c{c}",
                        kernel=f"signals ({source}, float32{'' if with_ref else ', no numpy ref'})",
                        n=n,
                        c=c,
                        setup=setup,
                        ours=lambda inp, fl=from_logits: signals.compute(inp["preds"], inp["labels"], from_logits=fl),
                        reference=(lambda inp, ref=reference: ref(inp["preds"], inp["labels"])) if with_ref else None,
                        reference_name="numpy (TF Privacy / Song & Mittal)",
                        copy_keys=("preds",),
                        output_bytes=lambda inp: 29 * len(inp["preds"]),  # 7 float32 + 1 bool per row
                        repeats=5 if input_bytes < 1e9 else 3,
                    )
                )
    return cases


# ---- gradient statistics ------------------------------------------------------


def numpy_gradient_stats(g):
    """The seven statistics of each row, numpy and scipy on the whole rows."""
    a = np.abs(g)
    return np.column_stack(
        [a.sum(1), np.linalg.norm(g, axis=1), a.min(1), a.max(1), g.mean(1), stats.skew(g, axis=1),
         stats.kurtosis(g, axis=1)]
    )


def gradstats_cases():
    from tfmia.gradstats import GradientStats

    cases = []
    shapes = ((10_000, 1000, 10, "many rows, small chunks"), (8, 2_000_000, 4, "few rows, huge chunks"))
    for n, p, chunks, label in shapes:

        def setup(rng, n=n, p=p, chunks=chunks):
            parts = rng.standard_normal((chunks, n, p // chunks), dtype=np.float32)
            parts *= 1e-3
            # The reference works on the concatenation, prepared here and not timed.
            return {"chunks": parts, "concatenated": np.concatenate(list(parts), axis=1)}

        def ours(inp):
            acc = GradientStats(inp["chunks"].shape[1])
            for part in inp["chunks"]:
                acc.update(part)
            return acc.finalize()

        cases.append(
            Case(
                id=f"gradstats-f32-n{n}-p{p}-k{chunks}",
                kernel=f"gradstats ({label}, {chunks} chunks, float32)",
                n=n,
                c=p,
                setup=setup,
                ours=ours,
                reference=lambda inp: numpy_gradient_stats(inp["concatenated"]),
                reference_name="numpy + scipy.stats on the concatenation",
                copy_keys=("chunks",),
                output_bytes=lambda inp: 7 * 8 * inp["chunks"].shape[1],
            )
        )
    return cases


# ---- bisection ----------------------------------------------------------------


def numpy_bisection_update(st, probs, theta):
    """One step as a numpy user would write it, on dict-held arrays (float32 points)."""
    rows = np.flatnonzero(st["active"])
    own = probs[np.arange(len(rows)), st["orig"][rows]]
    others = probs.copy()
    others[np.arange(len(rows)), st["orig"][rows]] = -np.inf
    gap = own - others.max(axis=1)
    st["steps"][rows] += 1
    done = rows[np.abs(gap) < theta]
    st["distance"][done] = np.linalg.norm(st["mid"][done].astype(np.float64) - st["x0"][done], axis=1)
    st["converged"][done] = True
    st["active"][done] = False
    keep = np.abs(gap) >= theta
    to_lo, to_hi = rows[keep & (gap > 0)], rows[keep & (gap <= 0)]
    st["lo"][to_lo] = st["mid"][to_lo]
    st["hi"][to_hi] = st["mid"][to_hi]
    moved = rows[keep]
    st["mid"][moved] = ((st["lo"][moved].astype(np.float64) + st["hi"][moved]) * 0.5).astype(np.float32)


def bisection_cases(ns):
    from tfmia.bisection import BisectionState

    n, d, c = min(max(ns), 100_000), 784, 10

    def setup(rng):
        x0 = rng.standard_normal((n, d), dtype=np.float32)
        hi = x0 + rng.standard_normal((n, d), dtype=np.float32)
        # Never within theta of the boundary, half the records crossing each way: every
        # call updates all n records, so repeated calls cost the same.
        probs = np.full((n, c), 0.02, dtype=np.float32)
        probs[0::2, 0] = 0.8
        probs[1::2, 1] = 0.8
        state = BisectionState(x0, x0, hi, np.zeros(n, dtype=int), theta=1e-4, max_steps=10**9)
        ref = {
            "x0": x0, "lo": x0.copy(), "hi": hi.copy(), "mid": state.midpoints().copy(),
            "orig": np.zeros(n, dtype=np.int64), "active": np.ones(n, dtype=bool),
            "converged": np.zeros(n, dtype=bool), "distance": np.full(n, np.nan), "steps": np.zeros(n, dtype=np.int64),
        }
        return {"state": state, "probs": probs, "ref": ref, "lo": ref["lo"], "hi": ref["hi"]}

    return [
        Case(
            id=f"bisection-f32-n{n}-d{d}",
            kernel="bisection update (float32)",
            n=n,
            c=d,
            setup=setup,
            ours=lambda inp: inp["state"].update(inp["probs"]),
            reference=lambda inp: numpy_bisection_update(inp["ref"], inp["probs"], 1e-4),
            reference_name="numpy fancy indexing",
            copy_keys=("lo", "hi"),
            output_bytes=lambda inp: 18 * n,  # per record: distance, steps, two flags
        )
    ]


def cases(ns, cs):
    return signal_cases(ns, cs) + gradstats_cases() + bisection_cases(ns)
