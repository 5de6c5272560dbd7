"""Smoke tests: every example runs end to end with tiny settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script, *args, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          timeout=900, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def test_keras_callback(tmp_path):
    out = _run("keras_callback.py", "--epochs", "2", "--train-size", "200", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert "membership AUC" in out
    assert (tmp_path / "run" / "log.csv").exists() and list((tmp_path / "run" / "reports" / "fit-000").glob("*.json"))


def test_tf_privacy_report(tmp_path):
    pytest.importorskip("pandas")
    try:
        from tfmia import tf_privacy

        tf_privacy.load()
    except ImportError as exc:
        pytest.skip(f"tensorflow-privacy not installed: {str(exc).splitlines()[0]}")
    _run("tf_privacy_report.py", "--epochs", "2", "--every", "1", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert (tmp_path / "r" / "by_epoch.png").exists() and (tmp_path / "r" / "privacy_vs_accuracy.png").exists()


def test_shadow_models_dask(tmp_path):
    pytest.importorskip("distributed")
    # One worker process: it imports TensorFlow once and trains both shadows (two would cost a second import).
    args = ["--shadows", "2", "--epochs", "2", "--size", "100", "--workers", "1", "--run-dir", str(tmp_path / "run")]
    out = _run("shadow_models_dask.py", *args, cwd=tmp_path)
    assert "trained now: [0, 1]" in out and "shadow models (k=2" in out
    out = _run("shadow_models_dask.py", *args, cwd=tmp_path)
    assert f"trained now: [], resumed from {tmp_path / 'run'}: [0, 1]" in out


def test_seqmia_fashion_mnist(tmp_path):
    from tfmia.datasets import DEBIAN_FASHION_MNIST

    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    args = ["--split-size", "200", "--distill-size", "400", "--epochs", "2", "--distill-epochs", "2",
            "--attack-epochs", "2", "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "report")]
    out = _run("seqmia_fashion_mnist.py", *args, cwd=tmp_path)
    assert "SeqMIA" in out and "modified_entropy (class-dependent threshold)" in out
    assert (tmp_path / "report" / "report.html").exists()


def test_imagenet_pretrained_with_local_weights_and_folders(tmp_path):
    import numpy as np
    import tensorflow as tf

    from tfmia.applications import imagenet_model

    root = tmp_path / "imagenet"
    rng = np.random.default_rng(0)
    for wnid in ("n01440764", "n01443537"):
        for split in ("train", "val"):
            for i in range(6):
                path = root / split / wnid / f"{i}.JPEG"
                path.parent.mkdir(parents=True, exist_ok=True)
                tf.io.write_file(str(path), tf.io.encode_jpeg(rng.integers(0, 256, (90, 90, 3), dtype=np.uint8)))
    weights = tmp_path / "inception.weights.h5"
    imagenet_model("inception_v3", input_size=75, classes=2).save_weights(weights)
    out = _run("imagenet_pretrained.py", "--root", str(root), "--weights", str(weights), "--input-size", "75",
               "--num-classes", "2", "--class-index", "sorted", "--classes", "2", "--per-class", "6",
               "--features", "confidence", "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "out"),
               cwd=tmp_path)
    assert "12 members and 12 non-members from 2 classes" in out
    assert (tmp_path / "out" / "report.json").exists()
