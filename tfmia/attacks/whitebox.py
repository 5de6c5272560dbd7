"""Rezaei & Liu's white-box attacks: model features -> attack model, evaluated their way.

Rezaei & Liu (2021, "On the Difficulty of Membership Inference Attacks")
feed white-box features of each record (``tfmia.features.records.FEATURES``:
output probabilities, an intermediate layer, gradient statistics w.r.t. the
weights or the input, the distance to the decision boundary) to an attack
model, one per true class by default (``tfmia.classifiers``):

``"nn"``      Keras MLP, Dense 128 relu -> Dense 64 relu -> Dense 1 sigmoid;
``"rf"``      random forest, hyper-parameters by randomised search
              (``RandomizedSearchCV``, 3-fold, balanced accuracy);
``"gbdt"``    gradient boosting, same search;
``"logreg"``  logistic regression with balanced class weights.

Each attack model sees its training features standardised (mean 0, variance
1 on its own training rows; the trees are unaffected); gradient statistics
span many orders of magnitude.  ``sampling`` optionally balances each
training set by random under-sampling of the majority side or over-sampling
(with replacement) of the minority side.

Their protocol (section 4): the attacker knows the membership of a fraction
(80 %) of each class's members and of each class's non-members, trains on
those, and is evaluated on the rest.  :meth:`FeatureAttack.fit_evaluate` runs
exactly that; the :class:`~tfmia.evaluation.AttackResult` it returns reports
FAR next to accuracy and balanced accuracy, slices into correctly classified
and misclassified records (``result.slices()``) and gives per-class mean +-
std and pooled values (``result.per_class_summary()``).

The attack calls a record a member iff the attack model's P(member) >= 0.5.
A missing feature value (NaN: a boundary search that failed) is replaced by
the column's largest finite value among the attacker's training records: the
search met no boundary within its budget, so the record is at least as far
from it as any record the attacker measured.  Replacements are counted in the
result's metadata; records are never dropped.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..classifiers import make_classifier
from ..evaluation import AttackResult
from ..features.records import FEATURES, FeatureRecords
from ..splits import known_subset
from .._validate import check_fraction
from .base import Attack

__all__ = ["FeatureAttack", "CLASSIFIERS", "SAMPLINGS", "as_feature_records", "resample", "per_column_results"]

CLASSIFIERS = ("nn", "rf", "gbdt", "logreg")
SAMPLINGS = (None, "under", "over")
THRESHOLD = 0.5
"""Member iff the attack model's P(member) >= THRESHOLD."""

_KIND = {"nn": "mlp", "rf": "rf", "gbdt": "gbdt", "logreg": "logreg"}  # names in tfmia.classifiers
_SEARCH_FOLDS = 3  # tfmia.classifiers' RandomizedSearchCV folds: each side needs this many records


def resample(x: np.ndarray, is_member: np.ndarray, sampling: str | None, *, seed: int):
    """Balance members and non-members: ``"under"`` drops, ``"over"`` repeats records at random."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if sampling is None:
        return x, is_member
    rng = np.random.default_rng(seed)
    members, others = np.flatnonzero(is_member), np.flatnonzero(~is_member)
    small, large = (members, others) if members.size <= others.size else (others, members)
    if sampling == "under":
        index = np.concatenate([small, rng.choice(large, size=small.size, replace=False)])
    else:
        index = np.concatenate([large, small, rng.choice(small, size=large.size - small.size, replace=True)])
    index = np.sort(index)
    return x[index], is_member[index]


class _AttackModel:
    """A fitted attack classifier and the standardisation of its training features."""

    def __init__(self, classifier, x: np.ndarray, is_member: np.ndarray):
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(x)
        self.classifier = classifier.fit(self.scaler.transform(x), is_member.astype(np.int64))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """P(member) per row."""
        return np.asarray(self.classifier.predict_proba(self.scaler.transform(x)), dtype=np.float64)


def as_feature_records(records, features: str, feature_options: dict, name: str = "records") -> FeatureRecords:
    """FeatureRecords as given, or computed from a ``(model, x, y)`` tuple (``(model, dataset)`` also works)."""
    if isinstance(records, FeatureRecords):
        return records
    if isinstance(records, tuple) and len(records) in (2, 3):
        model, x, y = records if len(records) == 3 else (*records, None)
        return FeatureRecords.from_model(model, x, y, features=features, **feature_options)
    raise ValueError(f"{name} must be FeatureRecords or a (model, x, y) tuple, got {type(records).__name__}")


def _derived_seed(seed: int, *path: int) -> int:
    """A reproducible 32-bit seed for one sub-task (a class's model, one side of a split)."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0])


class FeatureAttack(Attack):
    """Attack model on white-box features (Rezaei & Liu 2021).

    Args:
        features: one of ``FEATURES`` (how ``(model, x, y)`` records are turned into features).
        classifier: ``"nn"``, ``"rf"``, ``"gbdt"`` or ``"logreg"`` (see the module docstring).
        per_class: one attack model per true class (classes without known members and non-members
            fall back to a model trained on all classes, with a warning).
        known_fraction: share of each class's members and non-members the attacker knows in
            :meth:`fit_evaluate`.
        sampling: None, ``"under"`` or ``"over"``: balance each attack model's training set.
        seed: seeds the known/unknown split, the sampling and every attack model.
        columns: use only these feature columns (names or indices); None: all.
        feature_options: keyword arguments of ``FeatureRecords.from_model`` (e.g. ``batch_size``,
            ``layer``, ``clip``), used when records are given as ``(model, x, y)``.
        classifier_options: keyword arguments of ``tfmia.classifiers.make_classifier`` (e.g. ``epochs``
            for "nn", ``n_iter`` for the searched "rf" and "gbdt").
    """

    def __init__(
        self,
        features: str = "gradient_weights",
        classifier: str = "nn",
        *,
        per_class: bool = True,
        known_fraction: float = 0.8,
        sampling: str | None = None,
        seed: int = 0,
        columns=None,
        feature_options: dict | None = None,
        classifier_options: dict | None = None,
    ):
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if isinstance(columns, (str, int)):
            columns = [columns]
        self.features = features
        self.classifier = classifier
        self.per_class = bool(per_class)
        self.known_fraction = check_fraction(known_fraction, "known_fraction")
        self.sampling = sampling
        self.seed = int(seed)
        self.columns = None if columns is None else list(columns)
        self.feature_options = dict(feature_options or {})
        self.classifier_options = dict(classifier_options or {})
        try:  # building is cheap: catch misspelt options now rather than after feature extraction
            make_classifier(_KIND[classifier], seed=self.seed, **self.classifier_options)
        except TypeError as exc:
            raise ValueError(f"classifier_options do not fit classifier={classifier!r}: {exc}") from None
        self._models: dict[int, _AttackModel] = {}
        self._global = None
        self._fill: np.ndarray | None = None
        self._columns: tuple[str, ...] | None = None
        self.fallback_classes: list[int] = []

    @property
    def name(self) -> str:
        scope = "per class" if self.per_class else "global"
        chosen = "" if self.columns is None else f" [{', '.join(map(str, self.columns))}]"
        return f"{self.features}{chosen} ({self.classifier}, {scope})"

    # -- features -------------------------------------------------------------
    def records(self, records, name: str = "records") -> FeatureRecords:
        """Coerce ``records`` to FeatureRecords restricted to the chosen columns."""
        records = as_feature_records(records, self.features, self.feature_options, name)
        return records if self.columns is None else records.select(self.columns)

    def _matrix(self, records: FeatureRecords) -> tuple[np.ndarray, int]:
        """Features with NaN replaced by the fitted fill values, and how many were replaced."""
        if records.columns != self._columns:
            raise ValueError(
                f"records have {len(records.columns)} feature columns starting {list(records.columns[:3])} but the "
                f"attack was fitted on {len(self._columns)} starting {list(self._columns[:3])}"
            )
        x = records.features
        missing = np.isnan(x)
        count = int(np.count_nonzero(missing))
        if count:
            x = np.where(missing, self._fill[None, :], x)
        return x, count

    # -- fitting --------------------------------------------------------------
    def _fit_one(self, x: np.ndarray, is_member: np.ndarray, seed: int) -> _AttackModel:
        x, is_member = resample(x, is_member, self.sampling, seed=seed)
        options = dict(self.classifier_options)
        if self.classifier in ("rf", "gbdt"):
            # randomised search, unless a side is too small to split into its folds
            smallest = int(min(np.count_nonzero(is_member), np.count_nonzero(~is_member)))
            options["search"] = smallest >= _SEARCH_FOLDS
        return _AttackModel(make_classifier(_KIND[self.classifier], seed=seed, **options), x, is_member)

    def fit(self, members, non_members) -> "FeatureAttack":
        """Train the attack model(s) on records whose membership the attacker knows."""
        members = self.records(members, "members")
        non_members = self.records(non_members, "non_members")
        if members.columns != non_members.columns:
            raise ValueError("members and non_members have different feature columns")
        known = FeatureRecords.concatenate([members, non_members])
        is_member = np.r_[np.ones(len(members), bool), np.zeros(len(non_members), bool)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are reported below
            fill = np.nanmax(known.features, axis=0)
        if np.isnan(fill).any():
            empty = [known.columns[i] for i in np.flatnonzero(np.isnan(fill))]
            raise ValueError(f"feature columns {empty} have no finite value in the training records")
        self._fill, self._columns = fill, known.columns
        x, _ = self._matrix(known)
        self._models, self._global, self.fallback_classes = {}, None, []
        if self.per_class:
            for c in np.unique(known.labels):
                rows = known.labels == c
                if is_member[rows].all() or not is_member[rows].any():
                    self.fallback_classes.append(int(c))
                    continue
                self._models[int(c)] = self._fit_one(x[rows], is_member[rows], _derived_seed(self.seed, 1, int(c)))
            if self.fallback_classes:
                warnings.warn(
                    f"{self.name}: classes {self.fallback_classes} lack known members or non-members; "
                    "they use an attack model trained on all classes",
                    stacklevel=2,
                )
        if not self.per_class or self.fallback_classes:
            self._global = self._fit_one(x, is_member, _derived_seed(self.seed, 0))
        return self

    # -- scoring --------------------------------------------------------------
    def _scores(self, records: FeatureRecords) -> tuple[np.ndarray, int]:
        if self._columns is None:
            raise ValueError(f"{self.name} must be fitted before scoring (call fit or fit_evaluate)")
        x, missing = self._matrix(records)
        scores = np.empty(len(records))
        handled = np.zeros(len(records), dtype=bool)
        for c, model in self._models.items():  # empty unless per_class
            rows = records.labels == c
            if rows.any():
                scores[rows] = model(x[rows])
                handled |= rows
        rest = ~handled
        if rest.any():
            if self._global is None:
                unseen = sorted({int(c) for c in records.labels[rest]})
                raise ValueError(f"records of classes {unseen} were not in the attack's training data")
            scores[rest] = self._global(x[rest])
        return scores, missing

    def score(self, records) -> np.ndarray:
        """P(member) for each record."""
        return self._scores(self.records(records))[0]

    def threshold(self) -> float:
        return THRESHOLD

    def evaluate(self, members, non_members, *, name: str | None = None) -> AttackResult:
        """Score known members and non-members and measure the attack (FAR included)."""
        members = self.records(members, "members")
        non_members = self.records(non_members, "non_members")
        records = FeatureRecords.concatenate([members, non_members])
        scores, missing = self._scores(records)
        is_member = np.r_[np.ones(len(members), bool), np.zeros(len(non_members), bool)]
        return AttackResult.from_scores(
            scores,
            is_member,
            name=name or self.name,
            threshold=THRESHOLD,
            labels=records.labels,
            predicted_labels=records.predicted_labels,
            losses=records.losses,
            metadata={**self.config(), "missing_feature_values": missing},
        )

    def fit_evaluate(self, members, non_members, *, name: str | None = None) -> AttackResult:
        """Rezaei & Liu's protocol: fit on ``known_fraction`` of each class's members and
        non-members, evaluate on the rest (see the module docstring)."""
        members = self.records(members, "members")
        non_members = self.records(non_members, "non_members")
        known_in, rest_in = known_subset(members.labels, self.known_fraction, seed=_derived_seed(self.seed, 2, 1))
        known_out, rest_out = known_subset(non_members.labels, self.known_fraction, seed=_derived_seed(self.seed, 2, 0))
        self.fit(members.subset(known_in), non_members.subset(known_out))
        result = self.evaluate(members.subset(rest_in), non_members.subset(rest_out), name=name)
        result.metadata.update({"known_members": int(known_in.size), "known_non_members": int(known_out.size)})
        return result

    def config(self) -> dict:
        return {
            "features": self.features,
            "classifier": self.classifier,
            "per_class": self.per_class,
            "known_fraction": self.known_fraction,
            "sampling": self.sampling,
            "seed": self.seed,
            "columns": self.columns,
            "feature_options": {k: repr(v) if not isinstance(v, (int, float, str, bool)) else v
                                for k, v in sorted(self.feature_options.items())},
            "classifier_options": dict(sorted(self.classifier_options.items())),
            "fallback_classes": list(self.fallback_classes),
        }


def per_column_results(members: FeatureRecords, non_members: FeatureRecords, features: str, *,
                       classifier: str = "logreg", **attack_options) -> dict[str, AttackResult]:
    """One attack per feature column alone and one on all columns, each by :meth:`FeatureAttack.fit_evaluate`.

    Rezaei & Liu fit per-class logistic regressions on each gradient statistic
    alone and on all seven; with gradient-statistics records that is this
    function's default.  ``features`` names the features the records hold
    (for the attack names).  Keys are the column names and ``"all"``.
    """
    if not isinstance(members, FeatureRecords) or not isinstance(non_members, FeatureRecords):
        raise ValueError("members and non_members must be FeatureRecords (compute the features once, then compare)")
    choices = [[column] for column in members.columns] + [None]
    results = {}
    for columns in choices:
        attack = FeatureAttack(features, classifier, columns=columns, **attack_options)
        results["all" if columns is None else columns[0]] = attack.fit_evaluate(members, non_members)
    return results
