"""Training-time defences as transformations of a compiled model, and defended ``model_fn``s.

A :class:`TrainingDefense` turns a compiled Sequential or functional
classifier into a model of the *same graph* -- the same layer objects, hence
the same weights -- compiled with the same arguments, whose ``train_step``
implements the defence; ``model.fit`` then trains with it and the defended
model's weights load into the undefended architecture (``load_weights``).

Song & Mittal (2021, section 6) ask that a defence be judged by an *adaptive*
attacker, one who trains its shadow or reference models with the defence it
faces.  :func:`defended` wraps a ``model_fn`` so that every model it builds is
defended; pass it wherever an attack takes a ``model_fn`` (shadow models,
LiRA's reference models, SeqMIA's shadow model) and the attack is adaptive.
Attacks report it through ``Attack.adaptive`` -> ``AttackResult.adaptive``
(:func:`is_defended` tells them).

This module imports neither Keras nor TensorFlow, so attacks can ask
:func:`is_defended` cheaply; the Keras machinery the defences share is in
``_training``.
"""

from __future__ import annotations

import abc
import json

from ..training import build_model

__all__ = ["TrainingDefense", "DefendedModelFn", "defended", "is_defended"]


class TrainingDefense(abc.ABC):
    """A change to how a classifier is trained (DP-SGD, adversarial regularisation, MixupMMD, ...)."""

    @abc.abstractmethod
    def apply(self, model):
        """A model of the same graph as the compiled ``model`` whose ``fit`` trains with the defence."""

    @abc.abstractmethod
    def config(self) -> dict:
        """JSON-able settings (reported with results, part of a run directory's configuration)."""

    def description(self) -> dict:
        """``{"defense": "module.QualName", "config": config()}``: what a run directory records of the defence.

        The class is part of it because two defences may share setting names.
        Raises ``ValueError`` when ``config()`` is not JSON.
        """
        name = f"{type(self).__module__}.{type(self).__qualname__}"
        try:
            text = json.dumps({"defense": name, "config": self.config()}, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}.config() must return JSON-able settings for a run directory ({exc})") from None
        return json.loads(text)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class DefendedModelFn:
    """A picklable ``model_fn`` that builds ``model_fn()`` and applies ``defense`` to it.

    Picklable when ``model_fn`` and ``defense`` are (module-level functions,
    ``functools.partial`` of them, and the defences of this package are), so
    it runs on process pools and Dask like any ``model_fn``.
    """

    def __init__(self, model_fn, defense: TrainingDefense):
        if not callable(model_fn):
            raise ValueError(f"model_fn must be callable, got {type(model_fn).__name__}")
        if not isinstance(defense, TrainingDefense):
            raise ValueError(f"defense must be a TrainingDefense, got {type(defense).__name__}")
        self.model_fn = model_fn
        self.defense = defense

    def __call__(self):
        return self.defense.apply(build_model(self.model_fn))

    def __repr__(self) -> str:
        name = getattr(self.model_fn, "__qualname__", None) or repr(self.model_fn)
        return f"defended({name}, {self.defense!r})"


def defended(model_fn, defense: TrainingDefense) -> DefendedModelFn:
    """``model_fn`` whose models train with ``defense`` (for adaptive attacks)."""
    return DefendedModelFn(model_fn, defense)


def is_defended(model_fn) -> bool:
    """Whether ``model_fn`` builds defended models (made by :func:`defended`)."""
    return isinstance(model_fn, DefendedModelFn)
