"""Quantile-regression membership inference (Bertran et al., NeurIPS 2023,
"Scalable membership inference attacks via quantile regression").

No shadow or reference models: one regressor, trained on public records that
the target did not train on, learns how high the target's score of a
non-member with input x typically is, and a record is called a member when
its score is unusually high for its input.

Score (the logit hinge), stable and in float64::

    s(x, y) = z_y - max_{y' != y} z_{y'}                       from logits
    s(x, y) = log p_y - log max_{y' != y} p_{y'}               from probabilities

The two are equal for p = softmax(z).  From probabilities every p is floored
at the smallest positive number of the outputs' dtype (``np.finfo(dtype)
.smallest_subnormal``: 1.4e-45 for float32, 4.9e-324 for float64): an output
that underflowed to 0 counts as the smallest value the dtype could have held,
and every representable probability keeps its exact logarithm.

Regressor heads, trained on the public non-members' (x, s) only:

``"pinball"``   q(x) minimises the pinball loss rho_tau(u) = max(tau u, (tau - 1) u),
                u = s - q, tau = 1 - alpha: q(x) estimates the (1 - alpha)
                quantile of s given x.  Member iff s > q(x); ROC score s - q(x).
``"gaussian"``  (mu(x), log sigma(x)) minimise log sigma + (s - mu)^2 / (2 sigma^2),
                the Gaussian negative log-likelihood: q_alpha(x) = mu + sigma
                Phi^-1(1 - alpha) for every alpha at once.  ROC score
                z = (s - mu) / sigma; member iff z > Phi^-1(1 - alpha).

The regressor learns the standardised target (s - c) / d, with d the standard
deviation of s over its training records and c their empirical (1 - alpha)
quantile (pinball) or mean (gaussian); predictions are mapped back.  Both
losses are equivariant under that affine map, so it only conditions the
optimisation: the default heads start with zero kernels, i.e. from the
unconditional quantile (or mean and standard deviation), and learn how x moves it.

Architecture (default): the target's own architecture (``keras.models.clone_model``,
fresh weights) with its final Dense layer (and softmax) replaced by a linear
head of 1 (pinball) or 2 (gaussian) units; when the target cannot be cloned
(a subclassed model, a predict-only wrapper), a small MLP on the flattened
input.  ``regressor_fn(input_shape)`` replaces both.

Calibration: a share of the public records (``calibration_fraction``) never
trains the regressor; on them the observed false-positive rate of the
decision is reported next to alpha with its Clopper-Pearson interval
(:attr:`QuantileMIA.calibration`, also in the result metadata).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import stats as _stats

from .. import metrics as _metrics
from .._validate import as_float_array, check_finite, check_fraction, check_positive_int, check_positive_number
from ..data import AttackInputs
from ..evaluation import AttackResult
from ..features.predictions import _output_layer, predict
from ..training import FitConfig, build_model, fit_model
from .base import Attack

__all__ = ["QuantileMIA", "HEADS", "hinge_scores", "pinball_loss", "gaussian_nll"]

HEADS = ("pinball", "gaussian")
_HEAD_UNITS = {"pinball": 1, "gaussian": 2}
_MLP_WIDTHS = (128, 64)


def hinge_scores(inputs: AttackInputs) -> np.ndarray:
    """s = z_y - max_{y' != y} z_{y'} per record, float64 (see the module docstring for probabilities)."""
    if not isinstance(inputs, AttackInputs):
        raise ValueError(f"inputs must be AttackInputs, got {type(inputs).__name__}")
    outputs = inputs.outputs
    name = "logits" if inputs.from_logits else "probs"
    if not np.all(np.isfinite(outputs)):
        raise ValueError(f"{name} contain NaN or Inf")
    if inputs.from_logits:
        z = outputs.astype(np.float64)
    else:
        if np.any(outputs < 0):
            raise ValueError("probs must be non-negative")
        z = np.log(np.maximum(outputs, np.finfo(outputs.dtype).smallest_subnormal).astype(np.float64))
    rows = np.arange(len(inputs))
    own = z[rows, inputs.labels]
    z[rows, inputs.labels] = -np.inf
    return own - z.max(axis=1)


def pinball_loss(s, q, tau: float):
    """Elementwise rho_tau(s - q) = max(tau u, (tau - 1) u) with u = s - q (Keras tensors or arrays)."""
    import keras

    u = s - q
    return keras.ops.maximum(tau * u, (tau - 1.0) * u)


def gaussian_nll(s, mu, log_sigma):
    """Elementwise log sigma + (s - mu)^2 / (2 sigma^2): the Gaussian negative log-likelihood less log sqrt(2 pi)."""
    import keras

    return log_sigma + 0.5 * keras.ops.square((s - mu) * keras.ops.exp(-log_sigma))


def _head_loss(head: str, tau: float):
    """Keras loss ``(y_true (B, 1), y_pred (B, units)) -> (B,)`` for the head."""
    if head == "pinball":
        return lambda y_true, y_pred: pinball_loss(y_true[:, 0], y_pred[:, 0], tau)
    return lambda y_true, y_pred: gaussian_nll(y_true[:, 0], y_pred[:, 0], y_pred[:, 1])


def _head_input(model):
    """The tensor feeding a Sequential/functional model's final Dense layer (through a final softmax)."""
    import keras

    last = _output_layer(model)
    if isinstance(last, (keras.layers.Softmax, keras.layers.Activation)):
        last = last.input._keras_history.operation
    if not isinstance(last, keras.layers.Dense):
        raise ValueError(f"the target does not end in a Dense layer (it ends in {type(last).__name__})")
    return last.input


def _head(units: int):
    """Linear head with a zero kernel: it starts from the unconditional value (bias 0 after standardisation)."""
    import keras

    return keras.layers.Dense(units, kernel_initializer="zeros", name="quantile_head")


def _target_architecture(target, units: int):
    """A fresh-weight copy of ``target`` with its final Dense replaced by a linear ``units``-unit head."""
    import keras

    clone = keras.models.clone_model(target)
    outputs = _head(units)(_head_input(clone))
    return keras.Model(clone.inputs, outputs, name="quantile_regressor")


def _mlp(input_shape: tuple[int, ...], units: int):
    """Flatten -> Dense 128 relu -> Dense 64 relu -> linear head of ``units``."""
    import keras

    inputs = keras.Input(input_shape)
    h = keras.layers.Flatten()(inputs)
    for width in _MLP_WIDTHS:
        h = keras.layers.Dense(width, activation="relu")(h)
    outputs = _head(units)(h)
    return keras.Model(inputs, outputs, name="quantile_regressor_mlp")


def _default_regressor(target, input_shape, units: int):
    """(model, description): the target's architecture with a new head, else the MLP."""
    import keras

    if isinstance(target, keras.Model):
        try:
            model = _target_architecture(target, units)
            if tuple(model.inputs[0].shape[1:]) == input_shape and len(model.inputs) == 1:
                return model, "target architecture"
        except (ValueError, TypeError, AttributeError, NotImplementedError, KeyError):
            pass  # subclassed or unusual models: the MLP below
    return _mlp(input_shape, units), "mlp"


def _as_records_x(x, name: str) -> np.ndarray:
    """The records' inputs as one real-valued array with a record axis."""
    if isinstance(x, (tuple, list)):
        raise ValueError(f"{name} must be one array (QuantileMIA does not support multi-input models)")
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one record, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        check_finite(arr, name)
    return arr


def _check_labels_match(x: np.ndarray, y, x_name: str, y_name: str) -> None:
    n_labels = len(np.asarray(y)) if np.ndim(y) else 0
    if n_labels != x.shape[0]:
        raise ValueError(f"{x_name} has {x.shape[0]} records but {y_name} has {n_labels} labels")


def _target_records(records, name: str):
    """``(target, x, y)`` with x as an array; AttackInputs are refused (the regressor needs x)."""
    if isinstance(records, AttackInputs):
        raise ValueError(
            f"{name}: QuantileMIA predicts each record's threshold from its input x, which AttackInputs lack; "
            "give (target, x, y), or call fit_signal/score_signal with x and hinge_scores(inputs)"
        )
    if not (isinstance(records, tuple) and len(records) == 3):
        raise ValueError(f"{name} must be a (target, x, y) tuple, got {type(records).__name__}")
    target, x, y = records
    x = _as_records_x(x, f"x of {name}")
    _check_labels_match(x, y, f"x of {name}", f"y of {name}")
    return target, x, y


class QuantileMIA(Attack):
    """Quantile-regression MIA (Bertran et al. 2023); see the module docstring.

    Args:
        alpha: the targeted false-positive rate, in (0, 1).  The pinball head is trained for it;
            the Gaussian head serves every alpha and uses this one for decisions.
        head: ``"pinball"`` or ``"gaussian"``.
        regressor_fn: ``callable(input_shape) -> keras.Model`` with a linear head of 1 (pinball)
            or 2 (gaussian: mu, log sigma) units, compiled or not (it is compiled here with the
            head's loss); None: the target's architecture, else an MLP (module docstring).
        epochs, batch_size, learning_rate: Adam training of the regressor.
        validation_fraction: share of the regressor's training records held out for early
            stopping on the validation loss (best weights restored); 0: train all ``epochs``.
        patience: epochs without improvement before stopping.
        calibration_fraction: share of the public records held out to measure the observed FPR.
        confidence: level of the Clopper-Pearson interval on the observed FPR.
        logits: run ``(target, x, y)`` records with ``AttackInputs.from_model(..., logits=True)``
            (the scores before a final softmax, no float32 saturation).
        seed: seeds the splits, the regressor's initial weights and its training.
        progress: print one line per training epoch.
    """

    def __init__(self, alpha: float = 0.05, *, head: str = "pinball", regressor_fn=None, epochs: int = 100,
                 batch_size: int = 64, learning_rate: float = 1e-3, validation_fraction: float = 0.1,
                 patience: int = 10, calibration_fraction: float = 0.2, confidence: float = 0.95,
                 logits: bool = False, seed: int = 0, progress: bool = False):
        self.alpha = check_fraction(alpha, "alpha")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if regressor_fn is not None and not callable(regressor_fn):
            raise ValueError(f"regressor_fn must be callable(input_shape) or None, got {type(regressor_fn).__name__}")
        self.head = head
        self.regressor_fn = regressor_fn
        self.epochs = check_positive_int(epochs, "epochs")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.learning_rate = check_positive_number(learning_rate, "learning_rate")
        self.validation_fraction = 0.0 if validation_fraction == 0 else check_fraction(validation_fraction,
                                                                                         "validation_fraction")
        self.patience = check_positive_int(patience, "patience")
        self.calibration_fraction = check_fraction(calibration_fraction, "calibration_fraction")
        self.confidence = check_fraction(confidence, "confidence")
        self.logits = bool(logits)
        self.seed = int(seed)
        self.progress = bool(progress)
        self.regressor = None
        self.architecture: str | None = None
        self.history: dict | None = None
        self.sizes: dict | None = None
        self._input_shape: tuple[int, ...] | None = None
        self._s_centre = 0.0  # the regressor learns (s - centre) / scale
        self._s_scale = 1.0
        self._held_out: np.ndarray | None = None  # ROC scores of the held-out public records

    @property
    def name(self) -> str:
        return f"QMIA (pinball, alpha={self.alpha:g})" if self.head == "pinball" else "QMIA (gaussian)"

    def _seed(self, purpose: int) -> int:
        """A reproducible 32-bit seed for one random choice (0: splits, 1: weights, 2: training)."""
        return int(np.random.SeedSequence([self.seed, purpose]).generate_state(1)[0])

    # -- the target's view -------------------------------------------------------
    def observe(self, records, name: str = "records") -> tuple[np.ndarray, AttackInputs]:
        """``(x, AttackInputs)`` of ``(target, x, y)`` records: their inputs and the target's outputs."""
        target, x, y = _target_records(records, name)
        return x, AttackInputs.from_model(target, x, y, logits=self.logits)

    # -- fitting -----------------------------------------------------------------
    def fit(self, target, x_public, y_public) -> "QuantileMIA":
        """Train the regressor on public non-members: records the target was not trained on."""
        x = _as_records_x(x_public, "x_public")
        _check_labels_match(x, y_public, "x_public", "y_public")
        inputs = AttackInputs.from_model(target, x, y_public, logits=self.logits)
        return self.fit_signal(x, hinge_scores(inputs), target=target)

    def _splits(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Disjoint (train, validation, calibration) indices of ``n`` public records."""
        n_cal = max(1, round(self.calibration_fraction * n))
        n_val = max(1, round(self.validation_fraction * (n - n_cal))) if self.validation_fraction else 0
        if n - n_cal - n_val < 1:
            raise ValueError(
                f"x_public: {n} public records are too few to hold out {n_cal} for calibration and {n_val} for "
                "validation and train on the rest"
            )
        order = np.random.default_rng(self._seed(0)).permutation(n)
        return order[n_cal + n_val:], order[n_cal:n_cal + n_val], order[:n_cal]

    def _build(self, target, input_shape: tuple[int, ...]):
        """The compiled regressor (called under a fixed seed by ``build_model``)."""
        import keras

        units = _HEAD_UNITS[self.head]
        if self.regressor_fn is None:
            model, self.architecture = _default_regressor(target, input_shape, units)
        else:
            model, self.architecture = self.regressor_fn(input_shape), "regressor_fn"
            if not isinstance(model, keras.Model):
                raise ValueError(f"regressor_fn must return a keras.Model, got {type(model).__name__}")
            shape = tuple(model.outputs[0].shape) if len(model.outputs) == 1 else None
            if shape is None or len(shape) != 2 or shape[1] != units:
                raise ValueError(
                    f"regressor_fn must return a model with one output of shape (batch, {units}) for the "
                    f"{self.head} head, got {shape if shape is not None else f'{len(model.outputs)} outputs'}"
                )
        model.compile(keras.optimizers.Adam(self.learning_rate), _head_loss(self.head, 1.0 - self.alpha))
        return model

    def fit_signal(self, x_public, s_public, *, target=None) -> "QuantileMIA":
        """Train the regressor on public non-members' inputs (N, ...) and hinge scores (N,).

        ``target`` only informs the default architecture (its copy); without it the MLP is used.
        """
        import keras

        x = _as_records_x(x_public, "x_public")
        s = as_float_array(s_public, "s_public", ndim=1).astype(np.float64, copy=False)
        if s.shape[0] != x.shape[0]:
            raise ValueError(f"x_public has {x.shape[0]} records but s_public has {s.shape[0]} scores")
        if not np.all(np.isfinite(s)):
            raise ValueError("s_public contains NaN or Inf")
        train, validation, calibration = self._splits(x.shape[0])
        centre = np.quantile(s[train], 1.0 - self.alpha) if self.head == "pinball" else s[train].mean()
        self._s_centre = float(centre)
        self._s_scale = float(s[train].std()) or 1.0
        self._input_shape = tuple(x.shape[1:])
        self.regressor = build_model(functools.partial(self._build, target, self._input_shape),
                                     seed=self._seed(1))
        target_values = ((s - self._s_centre) / self._s_scale).astype(np.float32)[:, None]
        callbacks, validation_data = [], None
        if validation.size:
            validation_data = (x[validation], target_values[validation])
            callbacks.append(keras.callbacks.EarlyStopping("val_loss", patience=self.patience,
                                                           restore_best_weights=True))
        recipe = FitConfig(epochs=self.epochs, batch_size=self.batch_size,
                           fit_kwargs={} if validation_data is None else {"validation_data": validation_data})
        history = fit_model(self.regressor, x[train], target_values[train], recipe, seed=self._seed(2),
                            callbacks=callbacks, verbose=2 if self.progress else 0)
        self.history = {k: [float(v) for v in values] for k, values in history.history.items()}
        self.sizes = {"train": int(train.size), "validation": int(validation.size),
                      "calibration": int(calibration.size)}
        self._held_out = self.score_signal(x[calibration], s[calibration])
        return self

    # -- scoring -----------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.regressor is None:
            raise ValueError(f"{self.name} must be fitted before scoring (call fit with public non-members)")

    def _predictions(self, x) -> np.ndarray:
        """The head's outputs in the units of s: q (N, 1) or (mu, sigma) (N, 2), float64."""
        self._check_fitted()
        x = _as_records_x(x, "x")
        if tuple(x.shape[1:]) != self._input_shape:
            raise ValueError(f"x has per-record shape {x.shape[1:]} but the regressor was fitted on "
                             f"{self._input_shape}")
        raw = np.asarray(predict(self.regressor, x), dtype=np.float64)
        centre = self._s_centre + self._s_scale * raw[:, 0]
        if self.head == "pinball":
            return centre[:, None]
        return np.stack([centre, self._s_scale * np.exp(raw[:, 1])], axis=1)

    def gaussian(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(mu(x), sigma(x)) of the Gaussian head."""
        if self.head != "gaussian":
            raise ValueError(f"{self.name} has a pinball head; use quantile(x)")
        predictions = self._predictions(x)
        return predictions[:, 0], predictions[:, 1]

    def quantile(self, x, alpha: float | None = None) -> np.ndarray:
        """q_alpha(x): the threshold s must exceed for a member decision (alpha: the fitted one by default)."""
        alpha = self.alpha if alpha is None else check_fraction(alpha, "alpha")
        predictions = self._predictions(x)
        if self.head == "pinball":
            if alpha != self.alpha:
                raise ValueError(f"alpha: the pinball regressor was trained for alpha={self.alpha:g}, not {alpha:g}")
            return predictions[:, 0]
        return predictions[:, 0] + predictions[:, 1] * _stats.norm.isf(alpha)

    def score_signal(self, x, s) -> np.ndarray:
        """ROC scores of records with inputs ``x`` and hinge scores ``s``: s - q(x), or (s - mu) / sigma."""
        s = as_float_array(s, "s", ndim=1).astype(np.float64, copy=False)
        predictions = self._predictions(x)
        if s.shape[0] != predictions.shape[0]:
            raise ValueError(f"x has {predictions.shape[0]} records but s has {s.shape[0]} scores")
        if self.head == "pinball":
            scores = s - predictions[:, 0]
        else:
            scores = (s - predictions[:, 0]) / predictions[:, 1]
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"{self.name}: the regressor's predictions are not finite (did its training diverge?)")
        return scores

    def score(self, records) -> np.ndarray:
        """ROC score of ``(target, x, y)`` records (higher = more likely a member)."""
        x, inputs = self.observe(records)
        return self.score_signal(x, hinge_scores(inputs))

    def threshold(self) -> float:
        """Member iff score > threshold (strictly): 0 for pinball, Phi^-1(1 - alpha) for the z-score."""
        return 0.0 if self.head == "pinball" else float(_stats.norm.isf(self.alpha))

    def predict(self, records) -> np.ndarray:
        """Member iff s > q_alpha(x)."""
        return self.score(records) > self.threshold()

    # -- calibration -------------------------------------------------------------
    def calibration_at(self, alpha: float | None = None) -> dict:
        """Observed FPR on the held-out public non-members at level ``alpha``, with its Clopper-Pearson interval.

        The pinball regressor answers for its own alpha only; the Gaussian one for any.
        """
        self._check_fitted()
        alpha = self.alpha if alpha is None else check_fraction(alpha, "alpha")
        if self.head == "pinball":
            if alpha != self.alpha:
                raise ValueError(f"alpha: the pinball regressor was trained for alpha={self.alpha:g}, not {alpha:g}")
            cut = 0.0
        else:
            cut = _stats.norm.isf(alpha)
        n = int(self._held_out.size)
        false_positives = int(np.count_nonzero(self._held_out > cut))
        low, high = _metrics.clopper_pearson(false_positives, n, self.confidence)
        return {"alpha": alpha, "observed_fpr": false_positives / n, "false_positives": false_positives,
                "held_out": n, "ci_low": low, "ci_high": high, "confidence": self.confidence}

    @property
    def calibration(self) -> dict | None:
        """:meth:`calibration_at` the fitted alpha (None before fit)."""
        return None if self.regressor is None else self.calibration_at()

    # -- evaluation --------------------------------------------------------------
    def evaluate(self, members, non_members, *, name: str | None = None) -> AttackResult:
        """Score ``(target, x_in, y_in)`` and ``(target, x_out, y_out)``; decisions are score > threshold."""
        x_in, members = self.observe(members, "members")
        x_out, non_members = self.observe(non_members, "non_members")
        return self.evaluate_observed(x_in, members, x_out, non_members, name=name)

    def evaluate_observed(self, x_members, members: AttackInputs, x_non_members, non_members: AttackInputs, *,
                          name: str | None = None) -> AttackResult:
        """:meth:`evaluate` for records whose target outputs are at hand: their inputs and AttackInputs."""
        member_scores = self.score_signal(x_members, hinge_scores(members))
        non_member_scores = self.score_signal(x_non_members, hinge_scores(non_members))
        decisions = np.concatenate([member_scores, non_member_scores]) > self.threshold()  # member iff s > q
        return self._result(members, non_members, member_scores, non_member_scores, name, decisions=decisions)

    def config(self) -> dict:
        return {
            "method": "QMIA",
            "alpha": self.alpha,
            "head": self.head,
            "architecture": self.architecture,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "validation_fraction": self.validation_fraction,
            "patience": self.patience,
            "calibration_fraction": self.calibration_fraction,
            "logits": self.logits,
            "seed": self.seed,
            "public_records": self.sizes,
            "epochs_run": None if self.history is None else len(self.history.get("loss", [])),
            "calibration": self.calibration,
        }
