"""Run directories: long work checkpoints here and resumes instead of starting over.

A run directory holds ``run.json`` (what kind of run, and its configuration)
and the run's artefacts, each written atomically (temp file, fsync, rename).
Opening an existing directory with a different configuration is refused: a
rerun either resumes the same work or fails loudly, it never mixes two runs.
The configuration includes a fingerprint of the data, so changing the data
counts as a different configuration.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ._serialization import atomic_write_text, load_npz, save_npz, to_json_text

__all__ = ["RunDirectory", "fingerprint_arrays", "describe_callable"]


def fingerprint_arrays(*arrays) -> str:
    """SHA-256 over the dtype, shape and bytes of each array."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()


def describe_callable(fn) -> str:
    """A description of ``fn`` that is the same in every process (no memory addresses).

    ``module.qualname`` for functions and classes; for ``functools.partial``
    the wrapped function plus its bound arguments.
    """
    import functools

    if isinstance(fn, functools.partial):
        args = ", ".join([repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in sorted(fn.keywords.items())])
        return f"{describe_callable(fn.func)}({args})"
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if module and name:
        return f"{module}.{name}"
    return type(fn).__qualname__


def _canonical(config: dict) -> dict:
    """Round-trip through JSON so that tuples and lists compare equal."""
    return json.loads(json.dumps(config, sort_keys=True))


class RunDirectory:
    """A folder owned by one run of kind ``kind`` with configuration ``config`` (JSON-able)."""

    MANIFEST = "run.json"

    def __init__(self, path, kind: str, config: dict[str, Any]):
        self.root = Path(path)
        self.kind = kind
        self.config = _canonical(config)
        manifest = self.root / self.MANIFEST
        if manifest.exists():
            try:
                existing = json.loads(manifest.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"run_dir {self.root}: {self.MANIFEST} is not valid JSON ({exc})") from None
            if existing.get("kind") != kind:
                raise ValueError(f"run_dir {self.root} holds a {existing.get('kind')!r} run, not a {kind!r} run")
            if existing.get("config") != self.config:
                old, new = existing.get("config", {}), self.config
                differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                raise ValueError(
                    f"run_dir {self.root} was made with a different configuration "
                    f"(differs in: {', '.join(differing)}); use a new directory or the original settings"
                )
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(manifest, to_json_text({"kind": kind, "config": self.config}))

    def path(self, name: str) -> Path:
        return self.root / name

    def has(self, name: str) -> bool:
        return (self.root / name).exists()

    def save_arrays(self, name: str, **arrays) -> Path:
        return save_npz(self.root / name, **arrays)

    def load_arrays(self, name: str) -> dict[str, np.ndarray]:
        return load_npz(self.root / name)

    def save_json(self, name: str, obj) -> Path:
        return atomic_write_text(self.root / name, to_json_text(obj))

    def load_json(self, name: str):
        return json.loads((self.root / name).read_text())
