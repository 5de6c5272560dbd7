"""Defences to audit against.

* Output defences (``output``): what the model's API returns (top-k, rounding,
  temperature, confidence capping).
* Training-time defences (``adaptive`` for the shared machinery): DP-SGD with
  privacy accounting (``dp_sgd``), adversarial regularisation
  (``adversarial``), MixupMMD (``mixup_mmd``), and the early-stopping baseline
  a defence that costs accuracy is compared with (``early_stopping``).

The training-time defences import Keras and TensorFlow; they are loaded on
first access so that ``import tfmia.defenses`` stays light.
"""

import importlib

from .adaptive import DefendedModelFn, TrainingDefense, defended, is_defended
from .output import DefendedModel, MemGuardStyle, OutputDefense, Rounding, Temperature, TopK

_LAZY = {
    "DPSGD": "dp_sgd",
    "DPSGDModel": "dp_sgd",
    "make_private": "dp_sgd",
    "dp_sgd_epsilon": "dp_sgd",
    "AdversarialRegularization": "adversarial",
    "AdversarialRegularizationModel": "adversarial",
    "MixupMMD": "mixup_mmd",
    "MixupMMDModel": "mixup_mmd",
    "mmd2": "mixup_mmd",
    "EarlyStoppingBaseline": "early_stopping",
    "EpochMatch": "early_stopping",
    "closest_epoch": "early_stopping",
    "side_by_side": "early_stopping",
}

__all__ = ["OutputDefense", "TopK", "Rounding", "Temperature", "MemGuardStyle", "DefendedModel",
           "TrainingDefense", "DefendedModelFn", "defended", "is_defended", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
