"""Seven statistics of long per-sample gradient vectors, accumulated chunk by chunk.

Rezaei & Liu (2021) describe each training record by statistics of the
gradient of its loss: the vector is as long as the model (23 million entries
for InceptionV3), so it is produced one layer at a time and never
concatenated.  :class:`GradientStats` folds each ``(n, ...)`` chunk of ``n``
per-sample vectors into a small per-sample state and returns, for the whole
concatenated vector g of every sample:

===========  ==================================================================
l1           sum_i |g_i|
l2           sqrt(sum_i g_i^2)
min_abs      min_i |g_i|
max_abs      max_i |g_i|
mean         sum_i g_i / P  (signed)
skewness     m3 / m2^1.5, biased, as ``scipy.stats.skew`` (default)
kurtosis     m4 / m2^2 - 3, biased, Fisher, as ``scipy.stats.kurtosis`` (default)
===========  ==================================================================

with m_k = sum_i (g_i - mean)^k / P.  Chunks combine by exact merging of
chunk-local central moments (Chan, Golub & LeVeque 1979; Pebay 2008), never
through raw power sums, so values far from zero or chunks of wildly different
scale lose nothing to cancellation.  The sums are kept in units of a power of
two near each row's largest |g|, so gradients of any finite magnitude (1e200,
1e-200) neither overflow nor underflow; only an l1 or l2 beyond the float64
range itself comes back as inf, with a RuntimeWarning.  For a (near-)constant
vector skewness and kurtosis are NaN, by scipy's rule (scipy >= 1.12): m2 <= (eps * mean)^2 with
eps the float64 machine epsilon.  Everything is computed in float64, so for
float32 gradients the result equals scipy on the gradients cast to float64
(scipy's own float32 path applies the float32 epsilon).
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from . import _core
from ._device import resolve
from ._validate import as_float_array, check_positive_int

__all__ = ["COLUMNS", "GradientStats"]

COLUMNS = ("l1", "l2", "min_abs", "max_abs", "mean", "skewness", "kurtosis")


class GradientStats:
    """Streaming statistics of ``n`` per-sample vectors that arrive in chunks.

    Parameters
    ----------
    n : int
        Number of samples (rows).
    device : {"cpu", "cuda", "auto"}
        Where ``update`` summarises the chunks; both give the same numbers up
        to summation order.

    One accumulator may be shared by threads: ``update`` and ``finalize``
    hold a lock, so concurrent updates are applied one after the other (in
    whichever order the threads arrive; the statistics do not depend on it
    beyond rounding).

    Examples
    --------
    >>> stats = GradientStats(len(x))
    >>> for layer_grads in per_layer_gradients:   # each (n, ...) array
    ...     stats.update(layer_grads)
    >>> table = stats.finalize()                  # (n, 7), columns COLUMNS
    """

    COLUMNS = COLUMNS

    _STATE_COLUMNS = 10

    def __init__(self, n, *, device="cpu"):
        self._n = check_positive_int(n, "n")
        self._use_cuda = resolve(device) == "cuda"
        # Per row: scale exponent, mean (double-double: hi, lo), M2, M3, M4, sum |g|, sum g^2,
        # min |g|, max |g| (see csrc/gradstats.cpp).  Allocated by the first update, whose
        # chunk shows that n rows exist: n alone never allocates.
        self._state = None
        self._count = 0
        self._lock = threading.Lock()

    @property
    def n(self) -> int:
        """Number of samples (rows)."""
        return self._n

    @property
    def count(self) -> int:
        """Elements per row accumulated so far."""
        return self._count

    def update(self, chunk) -> None:
        """Add the next stretch of every row: ``chunk`` of shape ``(n, ...)``.

        Trailing dimensions are flattened (a layer's kernel gradient of shape
        ``(n, 3, 3, 64, 64)`` counts as ``(n, 36864)``).  float32 and float64
        are read as they are; integers and booleans are converted.  A chunk
        with NaN or Inf raises ValueError and leaves the statistics unchanged.
        """
        arr = as_float_array(chunk, "chunk")
        if arr.ndim == 0 or arr.shape[0] != self._n:
            raise ValueError(f"chunk must have shape (n, ...) with n={self._n}, got shape {arr.shape}")
        flat = arr.reshape(self._n, -1)
        with self._lock:
            if self._state is None:
                self._state = np.zeros((self._n, self._STATE_COLUMNS), dtype=np.float64)
            _core.gradstats_update(self._state, self._count, flat, self._use_cuda)
            self._count += flat.shape[1]

    def finalize(self) -> np.ndarray:
        """The ``(n, 7)`` float64 statistics, columns :data:`COLUMNS`.

        Can be called at any point after the first ``update``; the accumulator
        stays usable.
        """
        with self._lock:
            if self._count == 0:
                raise ValueError("no chunk yet: call update(chunk) before finalize()")
            table = _core.gradstats_finalize(self._state, self._count)
        overflow = np.flatnonzero(np.isinf(table[:, 0]))
        if overflow.size:
            warnings.warn(
                f"the l1 norm (and maybe l2) of rows {overflow[:10].tolist()} exceeds the float64 range "
                f"(max_abs up to {table[overflow, 3].max():g}); returned as inf",
                RuntimeWarning,
                stacklevel=2,
            )
        return table

    def __repr__(self) -> str:
        return f"GradientStats(n={self._n}, count={self._count})"
