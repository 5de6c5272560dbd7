"""Membership-inference attacks.  Each exposes ``fit``, ``score`` and ``evaluate``."""

from .base import Attack, as_attack_inputs
from .lira import LiRA
from .metric import METRICS, MetricAttack
from .qmia import QuantileMIA
from .risk_score import PrivacyRiskScore
from .rmia import RMIA
from .seqmia import SeqMIA
from .shadow import ShadowModelAttack
from .trajectory import TrajectoryMIA
from .whitebox import FeatureAttack

__all__ = ["Attack", "as_attack_inputs", "MetricAttack", "METRICS", "PrivacyRiskScore", "ShadowModelAttack",
           "SeqMIA", "TrajectoryMIA", "LiRA", "RMIA", "QuantileMIA", "FeatureAttack"]
