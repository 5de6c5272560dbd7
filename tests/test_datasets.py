"""Offline loaders: IDX parsing, the Fashion-MNIST search order and its error message."""

import gzip
import struct

import numpy as np
import pytest

from tfmia import datasets
from tfmia.datasets import FASHION_MNIST_FILES, binarize, load_digits, load_fashion_mnist, read_idx


def _write_idx(path, array, type_code=0x08):
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(">u1" if type_code == 0x08 else ">i4").tobytes())


def _fake_fashion(folder, n_train=6, n_test=4):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28)), "y_train": rng.integers(0, 10, n_train),
              "x_test": rng.integers(0, 256, (n_test, 28, 28)), "y_test": rng.integers(0, 10, n_test)}
    for key, name in FASHION_MNIST_FILES.items():
        _write_idx(folder / name, arrays[key])
    return arrays


def test_read_idx_round_trip(tmp_path):
    a = np.arange(24).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", a, type_code=0x0C)
    b = read_idx(tmp_path / "a.gz")
    assert b.shape == (2, 3, 4) and np.array_equal(a, b) and b.dtype.isnative


@pytest.mark.parametrize("payload, match", [(b"\x01\x00\x08\x01", "magic"), (b"\x00\x00\x08\x02\x00\x00", "truncated"),
                                            (b"\x00\x00\x08\x01\x00\x00\x00\x05ab", "promises")])
def test_read_idx_rejects_malformed_files(tmp_path, payload, match):
    path = tmp_path / "bad.idx"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert "bad.idx" in str(info.value)


def test_fashion_mnist_from_explicit_path_and_env(tmp_path, monkeypatch):
    arrays = _fake_fashion(tmp_path / "explicit")
    ds = load_fashion_mnist(tmp_path / "explicit", allow_download=False)
    assert ds.x.shape == (10, 28, 28, 1) and ds.x.dtype == np.float32
    assert np.array_equal(ds.x[:6, ..., 0], arrays["x_train"].astype(np.float32) / np.float32(255))
    assert np.array_equal(ds.y, np.r_[arrays["y_train"], arrays["y_test"]])
    _fake_fashion(tmp_path / "env" / "fashion-mnist", n_train=3, n_test=2)
    monkeypatch.setenv("TFMIA_DATA", str(tmp_path / "env"))
    assert len(load_fashion_mnist(allow_download=False)) == 5
    assert len(load_fashion_mnist(tmp_path / "explicit", allow_download=False)) == 10  # explicit path first


def test_fashion_mnist_missing_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TFMIA_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(tmp_path / "given", allow_download=False)
    message = str(info.value)
    for place in ("given", "nowhere", "debian", "keras"):
        assert place in message
    assert "dataset-fashion-mnist" in message


@pytest.mark.skipif(not datasets.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_debian_fashion_mnist():
    ds = load_fashion_mnist(allow_download=False)
    assert ds.x.shape == (70000, 28, 28, 1) and ds.y.shape == (70000,)
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    assert np.array_equal(np.bincount(ds.y), np.full(10, 7000))


def test_digits_and_binarize():
    d = load_digits()
    assert d.x.shape == (1797, 64) and d.x.max() == 1.0 and d.num_classes == 10
    assert load_digits(image=True).x.shape == (1797, 8, 8, 1)
    b = binarize(d.x)
    assert set(np.unique(b)) == {0.0, 1.0} and np.array_equal(b, (d.x >= 0.5).astype(np.float32))
