"""Where nvcc exists, the CUDA kernels must at least compile (they run only where a GPU is visible).

The build directory persists under ``build/`` (ignored by git, removed by ``make clean``):
CMake and the build tool recompile only the sources changed since the last run, so the
~80 CPU-seconds of a full CUDA build are paid once per change, not on every test run.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "cuda-compile-check"


def _configure(cmake, pybind11):
    # One GPU architecture is enough to prove the sources compile (a release build targets three).
    command = [cmake, "-S", str(ROOT), "-B", str(BUILD), "-DTFMIA_CUDA=ON", "-DCMAKE_BUILD_TYPE=Release",
               "-DCMAKE_CUDA_ARCHITECTURES=80",
               f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}"]
    if shutil.which("ninja"):
        command += ["-G", "Ninja"]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found: the CUDA path is optional")
def test_cuda_sources_compile():
    pybind11 = pytest.importorskip("pybind11")
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not found")
    done = _configure(cmake, pybind11)
    if done.returncode != 0 and BUILD.exists():  # a directory left by another checkout, compiler or generator
        shutil.rmtree(BUILD)
        done = _configure(cmake, pybind11)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "building CUDA kernels" in done.stdout
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    built = subprocess.run([cmake, "--build", str(BUILD), "--target", "_core"], capture_output=True, text=True, env=env)
    assert built.returncode == 0, built.stdout[-5000:] + built.stderr[-3000:]
    assert list(BUILD.glob("_core*.so"))
