"""Offline dataset loaders: scikit-learn's digits and Fashion-MNIST from IDX files.

Fashion-MNIST is looked up, in order, at

1. the ``path`` argument,
2. ``$TFMIA_DATA`` (the folder itself or its ``fashion-mnist`` subfolder),
3. ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``),
4. the Keras cache folder (``~/.keras/datasets/fashion-mnist``),

and only then downloaded through ``keras.datasets.fashion_mnist`` (for users
with a network; ``allow_download=False`` turns that off).  When nothing works
the error names every place tried.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "load_digits", "load_fashion_mnist", "read_idx", "binarize", "FASHION_MNIST_FILES"]

FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A labelled pool of records. ``x`` is float32 in [0, 1], ``y`` int64."""

    name: str
    x: np.ndarray
    y: np.ndarray
    num_classes: int
    source: str

    def __len__(self) -> int:
        return int(self.y.shape[0])


def load_digits(*, image: bool = False) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 records, 10 classes), scaled to [0, 1].

    ``image=True`` gives shape (N, 8, 8, 1) for convolutional models, else (N, 64).
    """
    from sklearn.datasets import load_digits as _load

    d = _load()
    x = (d.data / 16.0).astype(np.float32)
    if image:
        x = x.reshape(-1, 8, 8, 1)
    return Dataset("digits", x, d.target.astype(np.int64), 10, "sklearn.datasets.load_digits")


def read_idx(path) -> np.ndarray:
    """Read one (optionally gzipped) IDX file, validating its header against its size."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX header promises shape {shape} ({expected} bytes) but the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _fashion_candidates(path) -> list[Path]:
    places = []
    if path is not None:
        places.append(Path(path))
    env = os.environ.get("TFMIA_DATA")
    if env:
        places += [Path(env), Path(env) / "fashion-mnist"]
    places.append(DEBIAN_FASHION_MNIST)
    places.append(Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "fashion-mnist")
    return places


def load_fashion_mnist(path=None, *, allow_download: bool = True) -> Dataset:
    """Fashion-MNIST, the official train then test images pooled (70,000 x 28 x 28 x 1).

    The first 60,000 records are the official training split.  See the module
    docstring for where the files are looked up.
    """
    tried = []
    for folder in _fashion_candidates(path):
        files = {k: folder / v for k, v in FASHION_MNIST_FILES.items()}
        if all(f.is_file() for f in files.values()):
            arrays = {k: read_idx(f) for k, f in files.items()}
            return _fashion_dataset(arrays, str(folder))
        tried.append(str(folder))
    if allow_download:
        try:
            import keras

            (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
            arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
            return _fashion_dataset(arrays, "keras.datasets.fashion_mnist")
        except Exception as exc:  # no network, proxy errors, ...
            tried.append(f"keras.datasets.fashion_mnist download ({exc.__class__.__name__}: {exc})")
    raise FileNotFoundError(
        "Fashion-MNIST not found. Looked for "
        + ", ".join(FASHION_MNIST_FILES.values())
        + " in: "
        + "; ".join(tried)
        + ". Install Debian's package dataset-fashion-mnist, set TFMIA_DATA, or pass path=."
    )


def _fashion_dataset(arrays: dict, source: str) -> Dataset:
    x = np.concatenate([arrays["x_train"], arrays["x_test"]])
    y = np.concatenate([arrays["y_train"], arrays["y_test"]]).astype(np.int64)
    if x.ndim != 3 or x.shape[1:] != (28, 28) or x.shape[0] != y.shape[0]:
        raise ValueError(f"{source}: unexpected Fashion-MNIST shapes {x.shape} and {y.shape}")
    return Dataset("fashion-mnist", (x.astype(np.float32) / 255.0)[..., None], y, 10, source)


def binarize(x, threshold: float = 0.5) -> np.ndarray:
    """Threshold features to {0, 1} float32 (for Shokri's synthesis, which flips binary features)."""
    return (np.asarray(x) >= threshold).astype(np.float32)
