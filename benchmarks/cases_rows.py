"""Benchmark cases for the row kernels: fused signals, gradient statistics, bisection.

Each case pairs the tfmia call with the numpy code a user would otherwise
write, following the published reference implementations:

* signals: Song & Mittal's ``_log_value`` / ``_m_entr_comp`` and TF Privacy's
  loss and entropy on probabilities (from logits: ``scipy.special.softmax``
  first, as TF Privacy does), LiRA's logit scaling; all in the input dtype.
* gradient statistics: numpy and ``scipy.stats.skew`` / ``kurtosis`` on the
  concatenated per-sample gradient (prepared in setup, not timed).
* bisection: one batched update written with numpy fancy indexing.

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
    """The signals as the reference code computes them (input dtype, full temporaries)."""
    rows = np.arange(len(p))
    neg_log = -np.log(np.maximum(p, 1e-30))
    reverse = 1 - p
    neg_log_reverse = -np.log(np.maximum(reverse, 1e-30))
    modified_probs = np.copy(p)
    modified_probs[rows, y] = reverse[rows, y]
    modified_log = np.copy(neg_log_reverse)
    modified_log[rows, y] = neg_log[rows, y]
    others = np.copy(p)
    others[rows, y] = 0
    p_y = p[rows, y]
    return {
        "loss": neg_log[rows, y],
        "confidence": p_y,
        "max": p.max(axis=1),
        "sd": p.std(axis=1),
        "entropy": np.sum(p * neg_log, axis=1),
        "modified_entropy": np.sum(modified_probs * modified_log, axis=1),
        "correct": p.argmax(axis=1) == y,
        "logit_confidence": np.log(p_y + 1e-45) - np.log(others.sum(axis=1) + 1e-45),
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


def cases(ns, cs):
    return signal_cases(ns, cs)
