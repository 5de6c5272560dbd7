"""Build the ``tfmia._core`` extension with CMake (pybind11, C++17, OpenMP, optional CUDA).

Metadata lives in ``pyproject.toml``; this file only teaches setuptools to run
CMake.  Environment variables:

``TFMIA_CUDA``        ``OFF`` (default), ``AUTO`` (use CUDA when nvcc is found) or ``ON``.
``TFMIA_BUILD_TYPE``  CMake build type, default ``Release``.
``CMAKE_ARGS``        extra arguments passed to the CMake configure step.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import pybind11

        ext_path = Path(self.get_ext_fullpath(ext.name)).resolve()
        build_dir = Path(self.build_temp).resolve() / ext.name
        build_dir.mkdir(parents=True, exist_ok=True)
        cuda = os.environ.get("TFMIA_CUDA", "OFF").upper()
        if cuda not in {"ON", "OFF", "AUTO"}:
            raise ValueError(f"TFMIA_CUDA must be ON, OFF or AUTO, not {cuda!r}")
        configure = [
            "cmake",
            str(ROOT),
            f"-DCMAKE_BUILD_TYPE={os.environ.get('TFMIA_BUILD_TYPE', 'Release')}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DTFMIA_CUDA={cuda}",
            f"-DTFMIA_OUTPUT_DIR={ext_path.parent}",
        ]
        configure += shlex.split(os.environ.get("CMAKE_ARGS", ""))
        env = dict(os.environ)
        env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.run(configure, cwd=build_dir, check=True, env=env)
        subprocess.run(["cmake", "--build", ".", "--target", "_core"], cwd=build_dir, check=True, env=env)


setup(
    ext_modules=[CMakeExtension("tfmia._core")],
    cmdclass={"build_ext": CMakeBuild},
)
