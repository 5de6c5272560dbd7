"""Keras callbacks: audit membership leakage while a model trains."""

from .audit import DEFAULT_ATTACKS, PrivacyAuditCallback

__all__ = ["PrivacyAuditCallback", "DEFAULT_ATTACKS"]
