"""LiRA, the likelihood-ratio attack (Carlini et al. 2022, "Membership Inference Attacks From First Principles").

Statistic (section 4.2): the target's logit-scaled confidence of the true
class, ``phi = log p_y - log(1 - p_y)``, computed stably from logits
(``tfmia.signals``, key ``logit_confidence``).

Reference models: ``n_models`` models of the target's recipe, trained through
:func:`~tfmia.shadow_training.train_shadow_models` with scheme ``"lira"``
(every pool record is in the training set of exactly half of them) on any
executor, each queried on the whole pool.  ``keep[j, i]``: model j trained on
record i.

Offline (section 4.3): per record, a Gaussian ``N(mu_out, sigma_out^2)`` of
``phi`` over the models that did NOT train on it; the one-sided test
``P(Z < phi_obs) = Phi((phi_obs - mu_out) / sigma_out)``.  We return its
logarithm (``scipy.stats.norm.logcdf``): the same order, without the ties of
probabilities that round to 1.0 in float64, which would blur TPR at low FPR.

Online (section 4.1, Algorithm 1): also ``N(mu_in, sigma_in^2)`` over the
models that trained on it; score ``log N(phi; mu_in, sigma_in^2) - log N(phi;
mu_out, sigma_out^2)``.

``mu`` and ``sigma`` are the sample mean and standard deviation (ddof 0;
sigma floored at 1e-30 as in the authors' code, which uses the median for
``mu``).  ``global_variance=True`` replaces every ``sigma`` by one pooled
within-record standard deviation ``sqrt(sum_i sum_j (phi_ij - mu_i)^2 / n)``
over the whole pool (the authors' code takes ``np.std`` of all observations,
which also counts the spread between records' means).  With one shared
``sigma`` the ROC does not depend on its value; only the decision threshold does.

Decisions: online, member iff the log-likelihood ratio is >= 0; offline, the
one-sided test at level ``alpha``: member iff ``P(Z < phi_obs) >= 1 - alpha``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _stats

from .._validate import as_float_array, check_fraction, check_positive_int
from ..data import AttackInputs
from ..defenses.adaptive import is_defended
from ..evaluation import AttackResult
from ..shadow_training import train_shadow_models
from ..training import FitConfig
from .base import Attack, as_attack_inputs, pool_indices

__all__ = ["LiRA", "gaussian_fit", "pooled_std", "offline_scores", "online_scores"]

SIGMA_FLOOR = 1e-30


def _check_matrices(stats, keep):
    stats = as_float_array(stats, "stats", ndim=2).astype(np.float64, copy=False)
    keep = np.asarray(keep)
    if keep.dtype != np.bool_ or keep.shape != stats.shape:
        raise ValueError(
            f"keep must be a boolean array of the shape of stats {stats.shape}, got {keep.dtype} {keep.shape}"
        )
    return stats, keep


def gaussian_fit(stats, mask, *, min_count: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Per-record (column) mean and standard deviation (ddof 0) of ``stats[mask]`` over the models (rows).

    Raises ``ValueError`` when a record has fewer than ``min_count`` observations.
    """
    stats, mask = _check_matrices(stats, mask)
    counts = mask.sum(axis=0)
    if (counts < min_count).any():
        first = int(np.flatnonzero(counts < min_count)[0])
        raise ValueError(
            f"record {first} has {int(counts[first])} reference model(s) on this side, need >= {min_count}; "
            "train more reference models (n_models) or use global_variance=True"
        )
    mean = np.where(mask, stats, 0.0).sum(axis=0) / counts
    var = np.where(mask, (stats - mean) ** 2, 0.0).sum(axis=0) / counts
    return mean, np.maximum(np.sqrt(var), SIGMA_FLOOR)


def pooled_std(stats, groups) -> float:
    """One standard deviation for all records, from deviations from each record's own mean within each mask."""
    total, count = 0.0, 0
    for mask in groups:
        stats_, mask = _check_matrices(stats, mask)
        counts = mask.sum(axis=0)
        used = counts > 0
        mean = np.where(mask, stats_, 0.0).sum(axis=0)[used] / counts[used]
        total += float(np.where(mask[:, used], (stats_[:, used] - mean) ** 2, 0.0).sum())
        count += int(counts.sum())
    if count == 0:
        raise ValueError("no observations to estimate a global variance from")
    return max(math.sqrt(total / count), SIGMA_FLOOR)


def offline_scores(observed, stats, keep, *, std: float | None = None) -> np.ndarray:
    """``log P(Z < observed)`` with ``Z ~ N(mu_out, sigma_out^2)`` fitted per record on the OUT models.

    ``stats`` is (models, records), ``keep`` marks IN; ``std`` replaces every sigma (global variance).
    """
    stats, keep = _check_matrices(stats, keep)
    observed = as_float_array(observed, "observed", ndim=1).astype(np.float64, copy=False)
    if observed.shape[0] != stats.shape[1]:
        raise ValueError(f"observed has {observed.shape[0]} records, stats has {stats.shape[1]}")
    mean, sigma = gaussian_fit(stats, ~keep, min_count=1 if std is not None else 2)
    if std is not None:
        sigma = np.full_like(mean, std)
    return _stats.norm.logcdf(observed, loc=mean, scale=sigma)


def online_scores(observed, stats, keep, *, std: float | None = None) -> np.ndarray:
    """``log N(observed; mu_in, sigma_in^2) - log N(observed; mu_out, sigma_out^2)`` per record."""
    stats, keep = _check_matrices(stats, keep)
    observed = as_float_array(observed, "observed", ndim=1).astype(np.float64, copy=False)
    if observed.shape[0] != stats.shape[1]:
        raise ValueError(f"observed has {observed.shape[0]} records, stats has {stats.shape[1]}")
    min_count = 1 if std is not None else 2
    mean_in, sigma_in = gaussian_fit(stats, keep, min_count=min_count)
    mean_out, sigma_out = gaussian_fit(stats, ~keep, min_count=min_count)
    if std is not None:
        sigma_in = sigma_out = np.full_like(mean_in, std)
    return _stats.norm.logpdf(observed, mean_in, sigma_in) - _stats.norm.logpdf(observed, mean_out, sigma_out)


class LiRA(Attack):
    """Carlini et al.'s likelihood-ratio attack, offline or online (see module docstring).

    Args:
        model_fn: the target's recipe: zero-argument callable returning a compiled model.
        fit: the target's training settings.
        n_models: reference models (even; each pool record is in half of them).
        online: use IN and OUT Gaussians (else OUT only).
        global_variance: one pooled standard deviation for all records.
        alpha: offline decision level (member iff P(Z < phi) >= 1 - alpha).
        executor, run_dir, seed, progress, packed, pack_size: passed to
            :func:`~tfmia.shadow_training.train_shadow_models` (by default the reference models train
            packed, as one Keras model, where the architecture allows: :mod:`tfmia.farm`).

    ``fit(x, y)`` trains the reference models on the pool; the records scored
    later are pool records, identified by their ``indices`` in the pool.
    """

    def __init__(self, model_fn, *, fit: FitConfig, n_models: int = 16, online: bool = False,
                 global_variance: bool = False, alpha: float = 0.05, executor=None, run_dir=None, seed: int = 0,
                 progress: bool = True, packed="auto", pack_size: int | None = None):
        self.model_fn = model_fn
        self.adaptive = True if is_defended(model_fn) else None
        if not isinstance(fit, FitConfig):
            raise ValueError(f"fit must be a FitConfig, got {type(fit).__name__}")
        self.fit_config = fit
        self.n_models = check_positive_int(n_models, "n_models", minimum=2)
        if self.n_models % 2:
            raise ValueError(f"n_models must be even (each record is in half of the models), got {n_models}")
        self.online = bool(online)
        self.global_variance = bool(global_variance)
        self.alpha = check_fraction(alpha, "alpha")
        self.executor = executor
        self.run_dir = run_dir
        self.seed = int(seed)
        self.progress = bool(progress)
        self.packed = packed
        self.pack_size = pack_size
        self.stats: np.ndarray | None = None  # (n_models, pool) logit-scaled confidences
        self.keep: np.ndarray | None = None   # (n_models, pool) model j trained on record i
        self.std: float | None = None

    @property
    def name(self) -> str:
        return f"LiRA ({'online' if self.online else 'offline'}{', global variance' if self.global_variance else ''})"

    def fit(self, x, y) -> "LiRA":
        """Train the reference models on the pool ``(x, y)`` and record their statistics on every pool record."""
        models = train_shadow_models(self.model_fn, x, y, n_shadows=self.n_models, fit=self.fit_config,
                                     scheme="lira", seed=self.seed, run_dir=self.run_dir, executor=self.executor,
                                     progress=self.progress, tag="lira", packed=self.packed,
                                     pack_size=self.pack_size)
        everything = np.arange(models.y.size)
        rows = []
        for model in models.models:
            outputs = model.outputs_for(everything)
            kind = "logits" if model.is_logits else "probs"
            rows.append(AttackInputs(labels=models.y, **{kind: outputs}).signals["logit_confidence"])
        self.stats = np.stack(rows).astype(np.float64)
        self.keep = models.membership()
        if self.global_variance:
            groups = (self.keep, ~self.keep) if self.online else (~self.keep,)
            self.std = pooled_std(self.stats, groups)
        return self

    def _indices(self, n: int, indices) -> np.ndarray:
        if self.stats is None:
            raise ValueError(f"{self.name} must be fitted before scoring (call fit with the reference pool)")
        return pool_indices(indices, n, self.stats.shape[1])

    def score(self, records, indices=None) -> np.ndarray:
        """Scores of the target's records (AttackInputs, ``(target, x, y)`` or ``(outputs, labels)``).

        ``indices`` are the records' positions in the pool given to ``fit``
        (default: the records are the whole pool, in order).
        """
        inputs = as_attack_inputs(records)
        idx = self._indices(len(inputs), indices)
        observed = inputs.signals["logit_confidence"]
        scorer = online_scores if self.online else offline_scores
        return scorer(observed, self.stats[:, idx], self.keep[:, idx], std=self.std)

    def threshold(self) -> float:
        return 0.0 if self.online else math.log1p(-self.alpha)

    def evaluate(self, members, non_members, *, member_indices=None, non_member_indices=None,
                 name: str | None = None) -> AttackResult:
        """Score known members and non-members (pool records at the given indices) and measure the attack."""
        members = as_attack_inputs(members, "members")
        non_members = as_attack_inputs(non_members, "non_members")
        return self._result(members, non_members, self.score(members, member_indices),
                            self.score(non_members, non_member_indices), name)

    def config(self) -> dict:
        return {"n_models": self.n_models, "online": self.online, "global_variance": self.global_variance,
                "alpha": self.alpha, "seed": self.seed, "fit": self.fit_config.to_dict(),
                "global_std": self.std}
