"""RMIA, the relative membership-inference attack (Zarifzadeh et al., ICML 2024, "Low-Cost High-Power Membership
Inference Attacks").

Signal: ``p(x|theta) = softmax(z / T)_y`` of a model on record ``x = (features, y)``
(:func:`tempered_probability`; temperature ``T = 1`` by default).

With K reference models ``theta_1..theta_K`` and population records ``z``
(non-members of the target and of every reference):

* online (each audited record in the training set of exactly half of the
  references): ``P(x) = mean_k p(x|theta_k)``, and ``P(z)`` likewise;
* offline (no reference trained on ``x``):
  ``P(x) = ((1 + a) / 2) * mean_k p(x|theta_k) + (1 - a) / 2``, ``P(z)`` by the
  same formula (``a`` in [0, 1] corrects the OUT-only mean towards what IN
  models would give);
* ``LR(x, z) = (p(x|theta) / P(x)) / (p(z|theta) / P(z))`` and
  ``score(x) = #{z : LR(x, z) > gamma} / Z`` (strict; ``gamma = 1`` by default).

:func:`rmia_scores` computes the scores in the C++ core without the N x Z
matrix, each comparison exactly as the float64 quotient compares (see its
docstring).  :class:`RMIA` trains the references and chooses ``a``.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import special

from .. import _core
from .._validate import as_float_array, as_labels, check_finite, check_flag, check_positive_int, check_positive_number
from ..data import AttackInputs
from ..defenses.adaptive import is_defended
from ..evaluation import AttackResult
from ..metrics import auc
from ..shadow_training import ShadowModels, train_shadow_models
from ..training import FitConfig
from .base import Attack, as_attack_inputs, pool_indices

__all__ = ["RMIA", "rmia_scores", "tempered_probability", "select_offline_a", "A_GRID"]

#: The values of ``a`` the attacker tries offline (:func:`select_offline_a`).
A_GRID = np.linspace(0.0, 1.0, 21)


def rmia_scores(target_x, refs_x, target_z, refs_z, *, in_mask=None, a: float = 1.0, gamma: float = 1.0) -> np.ndarray:
    """RMIA score of each of N audited records against Z population records.

    Args:
        target_x: (N,) signal ``p(x|theta)`` of the target on the audited records.
        refs_x: (K, N) signals of the K reference models on them.
        target_z: (Z,) signal of the target on the population records.
        refs_z: (K, Z) signals of the references on them.
        in_mask: (K, N) bool, ``in_mask[k, i]``: reference k trained on record i
            (online; every record must be IN for exactly K / 2 references, so K
            is even).  ``None``: offline, no reference trained on any record.
        a: offline correction, ``P = ((1 + a) / 2) * mean + (1 - a) / 2``, in
            [0, 1]; online P is the plain mean and ``a`` must stay 1.
        gamma: threshold on the likelihood ratio, finite and > 0.

    Returns:
        (N,) float64: ``#{z : LR(x, z) > gamma} / Z``.

    Signals are probabilities in [0, 1] (float32 or float64, used in float64;
    -0.0 counts as +0.0).  The score is defined on float64 arithmetic:
    ``P = (0 + p_1 + ... + p_K) / K`` (summed in reference order, then the
    offline formula), ``ratio = p / P``, and a population record counts when
    the float64 quotient ``ratio_x / ratio_z`` compares ``> gamma``; IEEE rules
    apply (``p / 0 = inf``, ``0 / 0 = NaN``, and NaN never counts), so a
    record whose target signal is 0 scores 0.  The core sorts the population
    ratios once and finds each record's count by binary search with that very
    comparison (the quotient is non-increasing in ``ratio_z``): the result is
    the definition's bit for bit, in O((N + Z) log Z) time and O(N + Z) memory.
    """
    arrays = {}
    for name, value, ndim in (("target_x", target_x, 1), ("refs_x", refs_x, 2), ("target_z", target_z, 1),
                              ("refs_z", refs_z, 2)):
        arrays[name] = as_float_array(value, name, ndim=ndim).astype(np.float64, copy=False)
    if arrays["refs_x"].shape[1] != arrays["target_x"].shape[0]:
        raise ValueError(f"refs_x has shape {arrays['refs_x'].shape} but target_x has {arrays['target_x'].shape[0]} "
                         "records; refs_x must be (K, N)")
    if arrays["refs_z"].shape[1] != arrays["target_z"].shape[0]:
        raise ValueError(f"refs_z has shape {arrays['refs_z'].shape} but target_z has {arrays['target_z'].shape[0]} "
                         "records; refs_z must be (K, Z)")
    if in_mask is not None:
        in_mask = np.ascontiguousarray(in_mask)
        if in_mask.dtype != np.bool_:
            raise ValueError(f"in_mask must be a bool array, got dtype {in_mask.dtype}")
    return _core.rmia_scores(arrays["target_x"], arrays["refs_x"], arrays["target_z"], arrays["refs_z"], in_mask,
                             _number(a, "a"), _number(gamma, "gamma"))


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)


def tempered_probability(inputs: AttackInputs, temperature: float = 1.0) -> np.ndarray:
    """``softmax(z / T)_y`` per record, in float64, through a stable log-softmax.

    From logits ``z``: ``exp(z_y / T - logsumexp(z / T))``.  From
    probabilities ``p`` the logits are ``log p`` (softmax(log p) = p / sum(p)),
    so the signal is ``p_y^(1/T) / sum_c p_c^(1/T)``: the probabilities
    sharpened (T < 1) or flattened (T > 1) and renormalised; at T = 1 it is
    ``p_y / sum_c p_c``.
    """
    temperature = check_positive_number(temperature, "temperature")
    outputs = inputs.outputs.astype(np.float64)
    if not inputs.from_logits:
        with np.errstate(divide="ignore"):
            outputs = np.log(outputs)
    scaled = outputs / temperature
    normaliser = special.logsumexp(scaled, axis=1)
    if not np.all(np.isfinite(normaliser)):
        row = int(np.flatnonzero(~np.isfinite(normaliser))[0])
        raise ValueError(f"outputs: row {row} has no positive probability (or a non-finite logit)")
    return np.exp(scaled[np.arange(len(inputs)), inputs.labels] - normaliser)


def select_offline_a(refs_own, trained, refs_z, *, gamma: float = 1.0, grid=A_GRID) -> tuple[float, np.ndarray]:
    """The attacker's choice of ``a`` for offline RMIA, from its reference models alone.

    Each reference j in turn plays the target: its members are the records
    it trained on, its non-members the other records of the reference pool,
    and a record's reference signal is the mean over the other references
    that did NOT train on it (offline: records without one are skipped).
    The population records (no reference trained on them) serve as ``z``.
    For every ``a`` in ``grid`` the AUC of the offline scores is averaged
    over the references that have members and non-members; the ``a`` of the
    largest mean AUC wins (the smallest such ``a`` on ties).

    Args:
        refs_own: (K, R) signals of the references on their pool (NaN where a
            reference was not queried on a record).
        trained: (K, R) bool, reference k trained on record r.
        refs_z: (K, Z) signals of the references on the population records.

    Returns:
        (a, mean AUC per grid value).
    """
    refs_own = as_float_array(refs_own, "refs_own", ndim=2).astype(np.float64, copy=False)
    refs_z = as_float_array(refs_z, "refs_z", ndim=2).astype(np.float64, copy=False)
    trained = np.asarray(trained)
    if trained.dtype != np.bool_ or trained.shape != refs_own.shape:
        raise ValueError(f"trained must be a bool array of the shape of refs_own {refs_own.shape}")
    n_refs = refs_own.shape[0]
    if n_refs < 2 or refs_z.shape[0] != n_refs:
        raise ValueError("choosing a needs >= 2 reference models (one plays the target); give a explicitly")
    grid = np.asarray(grid, dtype=np.float64)
    queried = ~np.isnan(refs_own)
    out = queried & ~trained
    aucs = []
    for j in range(n_refs):
        others = np.arange(n_refs) != j
        n_out = out[others].sum(axis=0)
        usable = queried[j] & (n_out > 0)
        members = trained[j, usable]
        if members.all() or not members.any():
            continue
        mean_x = np.where(out[others], refs_own[others], 0.0).sum(axis=0)[usable] / n_out[usable]
        mean_z = refs_z[others].mean(axis=0)
        aucs.append([auc(rmia_scores(refs_own[j, usable], mean_x[None], refs_z[j], mean_z[None], a=float(a),
                                     gamma=gamma), members) for a in grid])
    if not aucs:
        raise ValueError("no reference model has both members and non-members that other references left out; "
                         "train more reference models or give a explicitly")
    mean_auc = np.mean(aucs, axis=0)
    return float(grid[int(np.argmax(mean_auc))]), mean_auc


class RMIA(Attack):
    """Zarifzadeh et al.'s RMIA, online or offline (see module docstring).

    Args:
        model_fn: the target's recipe: zero-argument callable returning a compiled model.
        fit: the target's training settings.
        n_models: reference models K.  Online: even and >= 2 (each audited
            record in half of them).  Offline: >= 1 (>= 2 for ``a="auto"``).
        online: references trained on half of the audited records each (else none).
        temperature: T of the signal ``softmax(z / T)_y``.
        gamma: likelihood-ratio threshold (> 0).
        a: offline correction in [0, 1], or ``"auto"``: chosen by
            :func:`select_offline_a` from the reference models alone.
        executor, run_dir, seed, progress: passed to :func:`~tfmia.shadow_training.train_shadow_models`.
        logits: keep the references' pre-softmax scores (softmax models; see
            :meth:`~tfmia.data.AttackInputs.from_model`) instead of their float32
            probabilities.  Give the same setting as for the target's records, so
            that both sides of every ratio are computed alike: float32
            probabilities saturate at 1 and underflow to 0, where logits do not.

    ``fit(x, y, population, reference_data=None)``: ``(x, y)`` are the records
    to audit (scored later by their ``indices`` in ``x``), ``population`` an
    ``(x_pop, y_pop)`` pair of records that neither the target nor any
    reference trains on.  Online, the references train on random halves of
    ``(x, y)`` (scheme "lira": each record in exactly half of them).
    Offline, ``reference_data = (x_ref, y_ref)`` is attacker data disjoint
    from both; each reference trains on a random half of it (scheme
    "shokri", ``train_size = len(x_ref) // 2``), so give about twice the
    target's training-set size.  Either way the references are queried on
    the audited and population records without training on them (the
    ``holdout`` of :func:`~tfmia.shadow_training.train_shadow_models`).

    Scoring needs the target's view of the population as well:
    ``score(records, indices, population=(target, x_pop, y_pop))``.
    """

    def __init__(self, model_fn, *, fit: FitConfig, n_models: int = 4, online: bool = False,
                 temperature: float = 1.0, gamma: float = 1.0, a: float | str = "auto", executor=None,
                 run_dir=None, seed: int = 0, progress: bool = True, logits: bool = False):
        self.model_fn = model_fn
        self.adaptive = True if is_defended(model_fn) else None
        if not isinstance(fit, FitConfig):
            raise ValueError(f"fit must be a FitConfig, got {type(fit).__name__}")
        self.fit_config = fit
        self.online = bool(online)
        self.n_models = check_positive_int(n_models, "n_models", minimum=2 if self.online else 1)
        if self.online and self.n_models % 2:
            raise ValueError(f"n_models must be even for online RMIA (each record is in half of the references), "
                             f"got {n_models}")
        self.temperature = check_positive_number(temperature, "temperature")
        self.gamma = check_positive_number(gamma, "gamma")
        if isinstance(a, str):
            if a != "auto":
                raise ValueError(f"a must be a number in [0, 1] or 'auto', got {a!r}")
            if not self.online and self.n_models < 2:
                raise ValueError("a='auto' needs n_models >= 2 (one reference plays the target); give a explicitly")
        else:
            if not 0.0 <= _number(a, "a") <= 1.0:
                raise ValueError(f"a must be in [0, 1], got {a!r}")
            a = float(a)  # a numpy scalar would not serialise into the result's metadata
        self.a_setting = a
        self.executor = executor
        self.run_dir = run_dir
        self.seed = int(seed)
        self.progress = bool(progress)
        self.logits = check_flag(logits, "logits")
        self.a: float | None = None          # the a in use (offline), once fitted
        self.a_auc: np.ndarray | None = None  # mean AUC per A_GRID value, when chosen automatically
        self.refs_x: np.ndarray | None = None  # (K, N) references' signals on the audited records
        self.refs_z: np.ndarray | None = None  # (K, Z) references' signals on the population records
        self.in_mask: np.ndarray | None = None  # (K, N) online: reference k trained on audited record i
        self.population_labels: np.ndarray | None = None

    @property
    def name(self) -> str:
        return f"RMIA ({'online' if self.online else 'offline'})"

    def fit(self, x, y, population, reference_data=None) -> "RMIA":
        """Train the references (see class docstring) and record their signals."""
        x, y = _records_x(x, "x"), as_labels(y, "y")
        x_pop, y_pop = _pair(population, "population")
        if self.online and reference_data is not None:
            raise ValueError("reference_data is for offline RMIA; online references train on the audited records")
        if not self.online and reference_data is None:
            raise ValueError("offline RMIA needs reference_data=(x_ref, y_ref): attacker data to train references on")
        parts = [(x, y), (x_pop, y_pop)] + ([] if self.online else [_pair(reference_data, "reference_data")])
        for name, (px, py) in zip(("x", "population", "reference_data"), parts):
            if px.shape[0] != py.shape[0]:
                raise ValueError(f"{name}: {px.shape[0]} records but {py.shape[0]} labels")
            if px.shape[1:] != x.shape[1:]:
                raise ValueError(f"{name}: records of shape {px.shape[1:]}, the audited records have {x.shape[1:]}")
        n, n_pop = len(y), len(y_pop)
        # Pool order: audited records, population records, then (offline) the references' own data.
        pool_x = np.concatenate([p[0] for p in parts])
        pool_y = np.concatenate([p[1] for p in parts])
        audited, pop = np.arange(n), np.arange(n, n + n_pop)
        own = np.arange(n + n_pop, len(pool_y))
        scheme = "lira" if self.online else "shokri"
        train_size = None if self.online else own.size // 2
        if not self.online and train_size < 1:
            raise ValueError("reference_data must hold at least 2 records")
        models = train_shadow_models(self.model_fn, pool_x, pool_y, n_shadows=self.n_models, fit=self.fit_config,
                                     train_size=train_size, scheme=scheme, seed=self.seed, run_dir=self.run_dir,
                                     executor=self.executor, progress=self.progress, tag="rmia", logits=self.logits,
                                     holdout=pop if self.online else np.concatenate([audited, pop]))
        self.refs_x = self._signals(models, audited)
        self.refs_z = self._signals(models, pop)
        self.population_labels = y_pop
        if self.online:
            self.in_mask = np.ascontiguousarray(models.membership()[:, audited])
            self.a = None
        elif self.a_setting == "auto":
            trained = models.membership()[:, own]
            self.a, self.a_auc = select_offline_a(self._signals(models, own), trained, self.refs_z, gamma=self.gamma)
        else:
            self.a = float(self.a_setting)
        return self

    def _signals(self, models: ShadowModels, indices: np.ndarray) -> np.ndarray:
        """(K, len(indices)) signals of every reference; NaN where a reference was not queried."""
        rows = np.full((len(models), indices.size), np.nan)
        for k, model in enumerate(models.models):
            queried = np.isin(indices, model.query_indices)
            kind = "logits" if model.is_logits else "probs"
            inputs = AttackInputs(labels=models.y[indices[queried]], **{kind: model.outputs_for(indices[queried])})
            rows[k, queried] = tempered_probability(inputs, self.temperature)
        return rows

    def _check_fitted(self) -> None:
        if self.refs_x is None:
            raise ValueError(f"{self.name} must be fitted before scoring (call fit with the audited records)")

    def _population_signal(self, population) -> np.ndarray:
        """The target's signal on the population records (one forward pass when given as a model triple)."""
        self._check_fitted()
        if population is None:
            raise ValueError("population: give the target's view of the population records, "
                             "e.g. population=(target, x_pop, y_pop)")
        inputs = as_attack_inputs(population, "population")
        if len(inputs) != self.population_labels.size or not np.array_equal(inputs.labels, self.population_labels):
            raise ValueError(f"population must be the {self.population_labels.size} population records given to fit, "
                             "in the same order")
        return tempered_probability(inputs, self.temperature)

    def score(self, records, indices=None, *, population=None) -> np.ndarray:
        """RMIA scores of the target's records (AttackInputs or ``(target, x, y)``).

        ``indices`` are the records' positions among the audited records given
        to ``fit`` (default: all of them, in order); ``population`` is the
        target's view of the population records given to ``fit``.
        """
        self._check_fitted()
        return self._score(as_attack_inputs(records), indices, self._population_signal(population))

    def _score(self, inputs: AttackInputs, indices, target_z: np.ndarray) -> np.ndarray:
        idx = pool_indices(indices, len(inputs), self.refs_x.shape[1])
        in_mask = None if self.in_mask is None else self.in_mask[:, idx]
        return rmia_scores(tempered_probability(inputs, self.temperature), self.refs_x[:, idx], target_z,
                           self.refs_z, in_mask=in_mask, a=1.0 if self.online else self.a, gamma=self.gamma)

    def evaluate(self, members, non_members, *, population=None, member_indices=None, non_member_indices=None,
                 name: str | None = None) -> AttackResult:
        """Score known members and non-members (audited records at the given indices) and measure the attack."""
        members = as_attack_inputs(members, "members")
        non_members = as_attack_inputs(non_members, "non_members")
        target_z = self._population_signal(population)  # once for both sides
        return self._result(members, non_members, self._score(members, member_indices, target_z),
                            self._score(non_members, non_member_indices, target_z), name)

    def config(self) -> dict:
        return {"method": "RMIA", "n_models": self.n_models, "online": self.online, "temperature": self.temperature,
                "gamma": self.gamma, "a": self.a, "a_setting": self.a_setting, "seed": self.seed, "logits": self.logits,
                "fit": self.fit_config.to_dict(),
                "a_grid_auc": None if self.a_auc is None else [float(v) for v in self.a_auc],
                "population_records": None if self.population_labels is None else int(self.population_labels.size)}


def _pair(value, name: str) -> tuple[np.ndarray, np.ndarray]:
    """An ``(x, y)`` pair of arrays with integer labels."""
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(f"{name} must be an (x, y) pair of arrays, got {type(value).__name__}")
    x, y = _records_x(value[0], name), as_labels(value[1], f"{name} labels")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one record")
    return x, y


def _records_x(x, name: str) -> np.ndarray:
    """Records as an array; float records must be finite (a NaN would reach the references' training)."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"{name} must hold one record per row, got a 0-d array")
    if x.dtype.kind == "f":
        check_finite(x, name)
    return x
