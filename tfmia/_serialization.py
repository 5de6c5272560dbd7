"""Safe, exact, atomic persistence: JSON for results, ``.npz`` for arrays, never pickle.

* Arrays go to JSON as ``{"dtype", "shape", "data"}``; floats are written with
  ``repr`` precision so they round-trip bit for bit, and the non-finite values
  JSON cannot spell are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``.
* Files are written to a temporary name in the same directory, flushed,
  fsync'ed and renamed over the target, so a crash leaves either the old file
  or the new one, never a torn one.  They get the mode ``open(path, "w")``
  would give (0666 less the umask).
* ``.npz`` files are read with ``allow_pickle=False`` (:func:`read_npz`):
  each array's header is checked against the bytes the archive really holds
  before anything is allocated, so a few hundred bytes cannot declare
  petabytes.  :func:`write_npz` streams arrays to disk and gives the same
  bytes (and SHA-256) for the same arrays.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import socket
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

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
    "read_npz",
    "write_npz",
    "sha256_file",
    "memory_bound",
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
    """Inverse of :func:`encode_float`; anything else is a ValueError."""
    if x is None:
        return None
    if isinstance(x, str):
        if x not in _SPECIAL:
            raise ValueError(f"not a float encoding: {x!r}")
        return _SPECIAL[x]
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"not a number: {x!r}")
    try:
        return float(x)
    except OverflowError:
        raise ValueError(f"number out of the float range: {x!r}") from None


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


def _decode_values(data: list, dtype: np.dtype) -> np.ndarray:
    """JSON values as an array of ``dtype``, refusing what would be converted silently (2 as True, 1.5 as 1)."""
    if dtype.kind == "b":
        if not all(isinstance(v, bool) for v in data):
            raise ValueError("bool array data must be true/false")
        return np.asarray(data, dtype=dtype)
    if dtype.kind in "iu":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in data):
            raise ValueError(f"{dtype} array data must be integers")
        info = np.iinfo(dtype)
        if data and not info.min <= min(data) <= max(data) <= info.max:
            raise ValueError(f"{dtype} array data out of range [{info.min}, {info.max}]")
        return np.asarray(data, dtype=dtype)
    return np.asarray([decode_float(v) for v in data], dtype=dtype)


def decode_array(d: dict | None) -> np.ndarray | None:
    """Inverse of :func:`encode_array`; validates dtype, shape and every value."""
    if d is None:
        return None
    if not isinstance(d, dict) or set(d) != {"dtype", "shape", "data"}:
        raise ValueError("array record must be an object with dtype, shape and data")
    dtype, shape, data = d["dtype"], d["shape"], d["data"]
    if not isinstance(dtype, str) or dtype not in _ALLOWED_DTYPES:
        raise ValueError(f"unsupported dtype in file: {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ValueError(f"array shape must be a list of non-negative integers, got {shape!r}")
    if not isinstance(data, list):
        raise ValueError("array data must be a list")
    size = math.prod(shape)
    if len(data) != size:
        raise ValueError(f"array data has {len(data)} values, shape {tuple(shape)} needs {size}")
    return _decode_values(data, np.dtype(dtype)).reshape(shape)


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


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` as an uncompressed ``.npz`` atomically, streaming each array to disk.

    Unlike ``numpy.savez`` the bytes depend on the arrays alone (fixed
    member timestamps, keys in the given order), so the same arrays give the
    same file and the same SHA-256; no copy of the data is made in memory.
    """
    for key, array in arrays.items():
        if array.dtype.hasobject:
            raise ValueError(f"{key}: object arrays cannot be saved without pickle")
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
    return Path(path)


def load_npz(path, keys=None) -> dict[str, np.ndarray]:
    """Load the arrays ``keys`` (default: all) of an ``.npz`` file safely (see :func:`read_npz`)."""
    return read_npz(path, keys)


# -- reading untrusted .npz files ---------------------------------------------------------
_DEFLATE_MAX_RATIO = 1032
"""Deflate cannot expand data by more than about 1032:1, so a member claiming more is forged."""


def memory_bound() -> int | None:
    """Bytes of physical memory (None where the platform does not say): no file may declare more."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, header length) of an ``.npy`` archive member, reading only its header."""
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        return shape, dtype, fh.tell()


def _check_member(info: zipfile.ZipInfo, shape: tuple, dtype: np.dtype, header: int, archive_bytes: int) -> int:
    """The bytes the member's data will take, once they are shown to be really in the archive.

    The header's shape and dtype must account for exactly the member's
    uncompressed size, and that size must be possible from the compressed
    bytes the archive holds: a few hundred bytes cannot declare petabytes.
    """
    if dtype.hasobject:
        raise ValueError("it holds Python objects, which need pickle (refused)")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"structured dtype {dtype}; only plain arrays are read")
    declared = math.prod(shape) * dtype.itemsize
    if declared != info.file_size - header:
        raise ValueError(f"header declares shape {shape} of {dtype} ({declared} bytes) but the member holds "
                         f"{info.file_size - header} bytes (truncated or forged)")
    stored = info.compress_type == zipfile.ZIP_STORED
    if info.compress_size > archive_bytes or (
        info.file_size != info.compress_size if stored else info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + 64
    ):
        raise ValueError(f"the member claims {info.file_size} bytes from {info.compress_size} compressed bytes in a "
                         f"{archive_bytes}-byte file (forged sizes)")
    return declared


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with zf.open(info) as fh:
        array = np.lib.format.read_array(fh, allow_pickle=False)
    if array.dtype == np.bool_ and array.size and array.view(np.uint8).max() > 1:
        raise ValueError("a bool array holding bytes other than 0 and 1")
    return array


def read_npz(path, keys=None, *, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (default: every one) of an untrusted ``.npz`` file, each header checked first.

    Nothing is allocated before every requested array's header has been read
    and its declared size checked against the bytes the archive really holds
    and against ``max_bytes`` in total (default: the machine's physical
    memory); object arrays are refused (no pickle), so are structured dtypes
    and bool arrays holding bytes other than 0/1.  Every problem is a
    ValueError whose message starts with the file name (and names the array).
    """
    path = Path(path)
    max_bytes = memory_bound() if max_bytes is None else max_bytes
    try:
        archive_bytes = path.stat().st_size
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a valid .npz file (not a readable zip archive: {exc})") from None
    with zf:
        members = {info.filename[:-4]: info for info in zf.infolist() if info.filename.endswith(".npy")}
        wanted = list(members) if keys is None else list(keys)
        missing = [k for k in wanted if k not in members]
        if missing:
            raise ValueError(f"{path}: missing array(s) {missing}; found {sorted(members)}")
        total = 0
        for key in wanted:
            try:
                total += _check_member(members[key], *_npy_header(zf, members[key]), archive_bytes)
            except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as exc:
                raise ValueError(f"{path}: array {key!r}: cannot read safely: {_first_line(exc)}") from None
        if max_bytes is not None and total > max_bytes:
            raise ValueError(f"{path}: the arrays {wanted} need {total} bytes, more than the {max_bytes} bytes of memory")
        arrays = {}
        for key in wanted:
            try:
                arrays[key] = _read_member(zf, members[key])
            except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as exc:
                raise ValueError(f"{path}: array {key!r}: cannot read safely: {_first_line(exc)}") from None
        return arrays


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
