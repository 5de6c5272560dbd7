# tfmia developer entry points.  `make test` does all set-up on a fresh clone:
# system packages (Fashion-MNIST IDX files, Chromium; needs root and apt-get,
# skipped otherwise), a virtual environment, the package with its C++ core and
# test extras, then the test suite.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=

SOURCES := pyproject.toml setup.py CMakeLists.txt $(wildcard csrc/*.cpp csrc/*.hpp csrc/cuda/*.cu csrc/cuda/*.hpp)

# The test files whose code runs through the core's CPU row kernels (signals,
# gradient statistics, the vectorised exp/log).  The kernels exist once per
# instruction set and the widest the CPU runs is used; after the main suite,
# `make test` reruns these files with TFMIA_ROW_ISA forcing each other one this
# CPU supports, so that an AVX-512 machine tests the AVX2, AVX and baseline code.
ROW_KERNEL_TESTS := tests/test_signals.py tests/test_gradstats.py
OTHER_ROW_ISAS = $(PY) -c "from tfmia import _core; info = _core.build_info(); \
	print(*(isa for isa in info['row_isas'] if isa != info['row_isa']))"

.PHONY: test test-row-isas install system-deps demo bench clean

test: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-row-isas

test-row-isas: install
	@for isa in $$($(OTHER_ROW_ISAS)); do \
		echo "== row kernels forced to $$isa (TFMIA_ROW_ISA=$$isa): $(ROW_KERNEL_TESTS)"; \
		TFMIA_ROW_ISA=$$isa $(PY) -m pytest -q $(ROW_KERNEL_TESTS) || exit 1; \
	done

install: $(VENV)/.installed

$(VENV)/.installed: $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[test]"
	$(PIP) install --quiet --no-deps -r requirements-tf-privacy.txt
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

demo: install
	$(VENV)/bin/tfmia demo

bench: install
	$(PY) benchmarks/bench_core.py

clean:
	rm -rf build $(VENV) tfmia/_core*.so *.egg-info
