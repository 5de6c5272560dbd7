"""TFMIA_ROW_ISA forces the instruction set of the core's CPU row kernels.

Each case starts a fresh interpreter, since the variable is read once, when
tfmia._core is loaded.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfmia import _core

ROOT = Path(__file__).resolve().parent.parent
KNOWN = ("avx512", "avx2", "avx_fma", "baseline")
SUPPORTED = _core.build_info()["row_isas"]


def load_core(row_isa):
    """Imports tfmia._core in a new interpreter with TFMIA_ROW_ISA=row_isa (None: unset)."""
    env = {key: value for key, value in os.environ.items() if key != "TFMIA_ROW_ISA"}
    if row_isa is not None:
        env["TFMIA_ROW_ISA"] = row_isa
    script = "import json; from tfmia import _core; print(json.dumps(_core.build_info()))"
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_supported_list_is_widest_first_down_to_baseline():
    assert SUPPORTED[-1] == "baseline"
    assert list(SUPPORTED) == [isa for isa in KNOWN if isa in SUPPORTED]  # KNOWN is widest first


def test_without_the_variable_the_widest_supported_kernels_run():
    for value in (None, ""):
        done = load_core(value)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["row_isa"] == SUPPORTED[0]


@pytest.mark.parametrize("isa", SUPPORTED)
def test_the_variable_forces_each_supported_instruction_set(isa):
    done = load_core(isa)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["row_isa"] == isa
    assert info["row_isas"] == SUPPORTED


@pytest.mark.parametrize("value", ["sse9", "AVX2", " avx2"])
def test_an_unknown_value_fails_the_import_naming_the_variable(value):
    done = load_core(value)
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: TFMIA_ROW_ISA must be one of")
    assert f"got '{value}'" in last_line
    assert all(isa in last_line for isa in SUPPORTED)


@pytest.mark.skipif(len(SUPPORTED) == len(KNOWN), reason="this CPU runs every instruction set")
def test_an_unsupported_instruction_set_fails_the_import_naming_the_variable():
    isa = next(isa for isa in KNOWN if isa not in SUPPORTED)
    done = load_core(isa)
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    # "is not supported by this CPU", or "must be one of the builds" where the compiler built no such kernels
    assert last_line.startswith("ImportError: TFMIA_ROW_ISA ") and isa in last_line
