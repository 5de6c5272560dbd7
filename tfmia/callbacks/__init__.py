"""Keras callbacks: :class:`TrajectoryRecorder` follows records' signals through training."""

from .trajectory import Trajectory, TrajectoryRecorder, read_trajectory

__all__ = ["TrajectoryRecorder", "Trajectory", "read_trajectory"]
