"""tfmia: membership-inference auditing for TensorFlow/Keras classifiers.

Importing ``tfmia`` does not import TensorFlow; the numeric modules
(``signals``, ``thresholds``, ``metrics``, ``gradstats``) run on numpy and the
C++ core alone.  Modules that touch Keras models import TensorFlow on first use.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # ``tfmia.distill`` without importing TensorFlow at ``import tfmia``.
    if name == "distill":
        from .distillation import distill

        return distill
    raise AttributeError(f"module 'tfmia' has no attribute {name!r}")
