"""tfmia: membership-inference auditing for TensorFlow/Keras classifiers.

Importing ``tfmia`` does not import TensorFlow; the numeric modules
(``signals``, ``thresholds``, ``metrics``, ``gradstats``) run on numpy and the
C++ core alone.  Modules that touch Keras models import TensorFlow on first use.
"""

__version__ = "0.1.0"
