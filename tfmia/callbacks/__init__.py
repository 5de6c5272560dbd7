"""Keras callbacks: follow records' signals through training, audit membership leakage while a model trains."""

from .audit import DEFAULT_ATTACKS, AuditView, ModelAudit, PrivacyAuditCallback
from .model_audits import QMIAAudit, RMIAAudit, qmia_audit, rmia_audit
from .trajectory import Trajectory, TrajectoryRecorder, read_trajectory

__all__ = ["PrivacyAuditCallback", "DEFAULT_ATTACKS", "ModelAudit", "AuditView", "RMIAAudit", "QMIAAudit",
           "rmia_audit", "qmia_audit", "TrajectoryRecorder", "Trajectory", "read_trajectory"]
