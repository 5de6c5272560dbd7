"""Safe, exact, atomic persistence: JSON for results, ``.npz`` for arrays, never pickle.

* Arrays go to JSON as ``{"dtype", "shape", "data"}``; floats are written with
  ``repr`` precision so they round-trip bit for bit, and the non-finite values
  JSON cannot spell are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``.
* Files are written to a temporary name in the same directory, flushed,
  fsync'ed and renamed over the target, so a crash leaves either the old file
  or the new one, never a torn one.  They get the mode ``open(path, "w")``
  would give (0666 less the umask).
* ``.npz`` files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "encode_array",
    "decode_array",
    "encode_float",
    "decode_float",
    "to_json_text",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "create_exclusively",
    "remove_stale_temporaries",
    "save_npz",
    "load_npz",
]

_ALLOWED_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"}
_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode_float(x) -> float | str | None:
    """A float as JSON can hold it exactly (non-finite values as strings)."""
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def decode_float(x) -> float | None:
    """Inverse of :func:`encode_float`."""
    if x is None:
        return None
    if isinstance(x, str):
        if x not in _SPECIAL:
            raise ValueError(f"not a float encoding: {x!r}")
        return _SPECIAL[x]
    return float(x)


def encode_array(a) -> dict | None:
    """Encode a numeric/bool array as a JSON-ready dict that round-trips exactly."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype.name not in _ALLOWED_DTYPES:
        raise ValueError(f"cannot encode arrays of dtype {a.dtype}")
    flat = a.ravel()
    if a.dtype.kind == "f":
        data = [encode_float(v) for v in flat.tolist()]
    else:
        data = flat.tolist()
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": data}


def decode_array(d: dict | None) -> np.ndarray | None:
    """Inverse of :func:`encode_array`; validates dtype and shape."""
    if d is None:
        return None
    try:
        dtype, shape, data = d["dtype"], tuple(d["shape"]), d["data"]
    except (KeyError, TypeError):
        raise ValueError("array record must have dtype, shape and data") from None
    if dtype not in _ALLOWED_DTYPES:
        raise ValueError(f"unsupported dtype in file: {dtype!r}")
    if np.dtype(dtype).kind == "f":
        data = [decode_float(v) for v in data]
    arr = np.asarray(data, dtype=dtype)
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"array data has {arr.size} values, shape {shape} needs {int(np.prod(shape))}")
    return arr.reshape(shape)


def to_json_text(obj: Any) -> str:
    """Strict JSON (no NaN tokens): callers encode floats with :func:`encode_float`."""
    return json.dumps(obj, allow_nan=False, indent=1, sort_keys=False)


_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
# ".<target name>~<host>~<pid>~<random hex><suffix>": who wrote a temporary, so that a later
# run can tell the leftovers of a killed writer from the file a live writer is filling.
_TEMPORARY = re.compile(r"^\.(?P<target>.+)~(?P<host>[A-Za-z0-9.-]+)~(?P<pid>\d+)~[0-9a-f]{16}\.")


@contextlib.contextmanager
def _temporary(path: Path, suffix: str):
    """A new empty file beside ``path``, named after its writer; removed on exit if still there.

    Created by ``os.open(O_CREAT | O_EXCL, 0o666)``, so it gets the mode a
    plain ``open(path, "w")`` would give under the current umask (not
    ``mkstemp``'s 0600); a rename keeps that mode.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}~{_HOST}~{os.getpid()}~{secrets.token_hex(8)}{suffix}"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """A temporary file name beside ``path`` for a writer to fill.

    When the ``with`` block succeeds the file is fsync'ed and renamed over
    ``path``; when it fails the file is removed and ``path`` is untouched.
    ``suffix`` is for writers that insist on one (Keras: ``.weights.h5``).
    A writer killed mid-way leaves the temporary behind; see
    :func:`remove_stale_temporaries`.
    """
    path = Path(path)
    with _temporary(path, suffix) as tmp:
        yield str(tmp)
        _fsync(tmp)
        os.replace(tmp, path)


def create_exclusively(path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless it exists; True when this call created it.

    The data is written to a temporary file first and hard-linked into place
    (``os.link`` fails if ``path`` exists), so of several processes racing
    exactly one creates the file, and a reader never sees it partly written.
    """
    path = Path(path)
    with _temporary(path, ".tmp") as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
        _fsync(tmp)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    return True


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to another user
        pass
    return True


def remove_stale_temporaries(folder) -> list[Path]:
    """Remove the temporaries of :func:`atomic_path` in ``folder`` whose writer has died; return them.

    A temporary belongs to a dead writer when it was made on this host by a
    process that no longer exists (a writer killed before its rename).
    Temporaries of live processes, possibly writing the same run right now,
    and those made on other hosts (a shared filesystem) are left alone.
    """
    removed = []
    for entry in Path(folder).iterdir():
        match = _TEMPORARY.match(entry.name)
        if match and match["host"] == _HOST and not _is_alive(int(match["pid"])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_npz(path, **arrays) -> Path:
    """Save arrays to an ``.npz`` file atomically (object arrays are refused)."""
    import io

    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise ValueError(f"{name}: object arrays cannot be saved without pickle")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def load_npz(path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file with ``allow_pickle=False``."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
