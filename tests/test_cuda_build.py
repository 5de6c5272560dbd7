"""Where nvcc exists, the CUDA kernels must at least compile (they run only where a GPU is visible)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found: the CUDA path is optional")
def test_cuda_sources_compile(tmp_path):
    pybind11 = pytest.importorskip("pybind11")
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not found")
    # One GPU architecture is enough to prove the sources compile (a release build targets three).
    configure = [cmake, "-S", str(ROOT), "-B", str(tmp_path), "-DTFMIA_CUDA=ON", "-DCMAKE_BUILD_TYPE=Release",
                 "-DCMAKE_CUDA_ARCHITECTURES=80",
                 f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    done = subprocess.run(configure, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "building CUDA kernels" in done.stdout
    built = subprocess.run([cmake, "--build", str(tmp_path), "--target", "_core"], capture_output=True, text=True, env=env)
    assert built.returncode == 0, built.stdout[-5000:] + built.stderr[-3000:]
    assert list(tmp_path.glob("_core*.so"))
