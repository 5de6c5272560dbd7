"""Defences to audit against: output perturbations (this package's ``output``
module) and training-time defences."""

from .output import DefendedModel, MemGuardStyle, OutputDefense, Rounding, Temperature, TopK

__all__ = ["OutputDefense", "TopK", "Rounding", "Temperature", "MemGuardStyle", "DefendedModel"]
