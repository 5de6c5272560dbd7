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

.PHONY: test install system-deps demo bench clean

test: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

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
