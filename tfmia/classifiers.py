"""Binary attack classifiers (member vs non-member) behind one interface.

Trained attacks (Shokri et al.'s attack models, Rezaei & Liu's feature
attacks) fit a binary classifier on attack features.  :func:`make_classifier`
returns an object with ``fit(X, y)`` and ``predict_proba(X) -> P(member)``:

``"mlp"``     Keras MLP, ReLU hidden layers (default 128, 64) and a sigmoid output,
              Adam, binary cross-entropy (Rezaei & Liu's NN).
``"logreg"``  scikit-learn logistic regression with balanced class weights.
``"rf"``      random forest; ``search=True`` tunes it with a randomised search.
``"gbdt"``    gradient boosting; ``search=True`` as above.

Every random choice takes ``seed``.
"""

from __future__ import annotations

import functools

import numpy as np

from ._validate import check_positive_int
from .training import FitConfig, build_model, fit_model

__all__ = ["make_classifier", "CLASSIFIERS", "KerasMLP"]

CLASSIFIERS = ("mlp", "logreg", "rf", "gbdt")


def _compiled_mlp(n_features: int, hidden: tuple[int, ...], learning_rate: float):
    import keras

    layers = [keras.Input((n_features,))]
    layers += [keras.layers.Dense(h, activation="relu") for h in hidden]
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(learning_rate), "binary_crossentropy")
    return model


class KerasMLP:
    """Dense ReLU layers then one sigmoid unit, trained with Adam on binary cross-entropy."""

    def __init__(self, hidden=(128, 64), *, epochs: int = 50, batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 0):
        self.hidden = tuple(check_positive_int(h, "hidden") for h in hidden)
        self.epochs = check_positive_int(epochs, "epochs")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.learning_rate = float(learning_rate)
        self.seed = int(seed)
        self.model = None

    def fit(self, X, y) -> "KerasMLP":
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        self.model = build_model(functools.partial(_compiled_mlp, X.shape[1], self.hidden, self.learning_rate),
                                 seed=self.seed)
        fit_model(self.model, X, y, FitConfig(epochs=self.epochs, batch_size=self.batch_size), seed=self.seed)
        return self

    def predict_proba(self, X) -> np.ndarray:
        if self.model is None:
            raise ValueError("the classifier must be fitted first")
        X = np.asarray(X, dtype=np.float32)
        return self.model.predict(X, batch_size=1024, verbose=0).reshape(-1).astype(np.float64)


class _SklearnBinary:
    """Adapter: ``predict_proba`` returns P(class 1) only; single-class training data is refused."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X, y) -> "_SklearnBinary":
        y = np.asarray(y).astype(int)
        if np.unique(y).size < 2:
            raise ValueError("attack training data must contain both members and non-members")
        self.estimator.fit(np.asarray(X, dtype=np.float64), y)
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.estimator.predict_proba(np.asarray(X, dtype=np.float64))[:, 1]


def _search(estimator, space: dict, seed: int, n_iter: int):
    from sklearn.model_selection import RandomizedSearchCV

    return RandomizedSearchCV(estimator, space, n_iter=n_iter, cv=3, scoring="balanced_accuracy",
                              random_state=seed, n_jobs=1)


def make_classifier(kind: str = "mlp", *, seed: int = 0, search: bool = False, n_iter: int = 10, **options):
    """A fresh binary classifier of ``kind`` (see module docstring); ``options`` go to its constructor."""
    if kind not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {kind!r}")
    if kind == "mlp":
        return KerasMLP(seed=seed, **options)
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        est = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000, **options))
        return _SklearnBinary(est)
    if kind == "rf":
        est = RandomForestClassifier(random_state=seed, n_estimators=options.pop("n_estimators", 100), **options)
        space = {"n_estimators": [50, 100, 200], "max_depth": [None, 5, 10, 20], "min_samples_leaf": [1, 2, 5, 10],
                 "max_features": ["sqrt", "log2", None]}
    else:
        est = GradientBoostingClassifier(random_state=seed, **options)
        space = {"n_estimators": [50, 100, 200], "learning_rate": [0.03, 0.1, 0.3], "max_depth": [2, 3, 5],
                 "subsample": [0.7, 1.0]}
    return _SklearnBinary(_search(est, space, seed, check_positive_int(n_iter, "n_iter")) if search else est)
