"""Keras callbacks: follow records' signals through training, audit membership leakage while a model trains."""

from .audit import DEFAULT_ATTACKS, PrivacyAuditCallback
from .trajectory import Trajectory, TrajectoryRecorder, read_trajectory

__all__ = ["PrivacyAuditCallback", "DEFAULT_ATTACKS", "TrajectoryRecorder", "Trajectory", "read_trajectory"]
