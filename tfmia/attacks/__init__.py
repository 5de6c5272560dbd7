"""Membership-inference attacks.  Each exposes ``fit``, ``score`` and ``evaluate``."""

from .base import Attack, as_attack_inputs
from .metric import METRICS, MetricAttack
from .risk_score import PrivacyRiskScore
from .shadow import ShadowModelAttack
from .whitebox import FeatureAttack

__all__ = ["Attack", "as_attack_inputs", "MetricAttack", "METRICS", "PrivacyRiskScore", "ShadowModelAttack", "FeatureAttack"]
