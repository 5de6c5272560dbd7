"""Values with a leading replica axis: the forms activations travel in, per-replica broadcasting, masked updates."""

from __future__ import annotations


class _Batches:
    """The K replicas' values at one point of the network: stacked ``(K, B, ...)`` or a list of K ``(B, ...)``.

    Each layer takes the form it computes fastest in (batched matmuls want the
    stack, convolutions one tensor per replica); conversions happen on demand.
    """

    def __init__(self, *, stacked=None, parts=None):
        self._stacked, self._parts = stacked, parts

    def stacked(self):
        import tensorflow as tf

        if self._stacked is None:
            self._stacked = tf.stack(self._parts)
        return self._stacked

    def parts(self) -> list:
        import tensorflow as tf

        if self._parts is None:
            self._parts = tf.unstack(self._stacked)
        return self._parts

    def per_sample(self, function) -> "_Batches":
        """``function`` (which treats every record alone) applied to every replica's batch."""
        import tensorflow as tf

        if self._parts is not None:
            return _Batches(parts=[function(part) for part in self._parts])
        x = self._stacked
        outer = tf.shape(x)[:2]
        merged = function(tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0)))
        out = tf.reshape(merged, tf.concat([outer, tf.shape(merged)[1:]], axis=0))
        return _Batches(stacked=tf.ensure_shape(out, x.shape[:2] + merged.shape[1:]))


def _replica_shape(rank: int, n_replicas: int) -> tuple:
    """Shape ``(K, 1, ..., 1)`` that broadcasts one value per replica against a rank-``rank`` stack."""
    return (n_replicas,) + (1,) * (rank - 1)


def _assign(variable, value, keep) -> None:
    """``variable = value`` where ``keep`` (one flag per replica, broadcast) is True or None; elsewhere unchanged."""
    import tensorflow as tf

    variable.assign(value if keep is None else tf.where(keep, value, variable))
