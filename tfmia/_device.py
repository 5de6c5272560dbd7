"""Choosing where the core's kernels run: ``"cpu"``, ``"cuda"`` or ``"auto"``.

The CUDA kernels exist only when tfmia was built with ``TFMIA_CUDA=ON`` (or
``AUTO`` with nvcc present) and run only where a CUDA device is visible.  They
give the same numbers as the CPU kernels; ``"auto"`` picks CUDA when it can.
"""

from __future__ import annotations

from functools import lru_cache

from . import _core

DEVICES = ("cpu", "cuda", "auto")


@lru_cache(maxsize=1)
def build_info() -> dict:
    """What this build of the core supports (OpenMP threads, the CPU row kernels'
    instruction sets, CUDA devices); see ``tfmia._core.build_info``."""
    return dict(_core.build_info())


def cuda_available() -> bool:
    """True when the CUDA kernels are compiled in and a device is visible."""
    info = build_info()
    return bool(info["cuda_compiled"]) and info["cuda_devices"] > 0


def resolve(device: str) -> str:
    """Map a user's ``device`` argument to ``"cpu"`` or ``"cuda"``, or raise ``ValueError``."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        info = build_info()
        why = (
            "tfmia was built without CUDA (rebuild with TFMIA_CUDA=ON)"
            if not info["cuda_compiled"]
            else "no CUDA device is visible"
        )
        raise ValueError(f"device='cuda' is not available: {why}")
    return device
