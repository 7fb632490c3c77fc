# The study's two commands (see README):
#   make study   set up, then run every notebook on the quick profile; results go to
#                work/<profile>/ and are compared with the committed ones (reports/<profile>/)
#   make test    set up, then the whole check (CI's command): ruff lint and format check,
#                the type check, unit tests (the slow ones and the JupyterLab browser test
#                too) and nbval over notebooks/
# The set-up makes .venv inside the checkout, installs the package editable with the extras
# dev (tests, tools) and notebooks (JupyterLab), every distribution pinned by
# requirements-lock.txt (the exact set the committed results come from), and registers the
# venv's Jupyter kernel "cxrsr". `make test` also checks the package from its ranges alone in a
# Python 3.12 venv that already has torch 2.11 (test-compat).

PYTHON  ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.cxrsr-installed
PROFILE ?= quick

# Use the offline mirror beside the checkout when there is one (CI always has it).
MIRROR := $(abspath ../shared/mirror)
ifneq ($(wildcard $(MIRROR)/data),)
export CXRSR_MIRROR ?= $(MIRROR)
endif

# OMP_WAIT_POLICY is left to OpenMP's default (spin briefly, then sleep): PASSIVE (sleep at
# once) doubled a mirror fine-tuning step on 2 AMX cores (1.08 s against 0.55 s) and slowed
# torch inference by 14-27%. The tests set PASSIVE themselves (conftest.py), where pytest and
# an nbval kernel share the two cores and spinning threads would starve each other.

.PHONY: setup study test test-compat lock test-fast lint typecheck browser expected publish bench \
	bench-cpu bench-mirror-avx2 paper-smoke clean

setup: $(STAMP)

LOCK    := requirements-lock.txt

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "the lock is for Python 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(LOCK) -e ".[dev,notebooks]"
	$(PY) -m ipykernel install --sys-prefix --name cxrsr --display-name "Python 3 (cxrsr)"
	touch $(STAMP)

study: $(STAMP)
	$(VENV)/bin/cxrsr study --profile $(PROFILE)

test: $(STAMP) browser
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest --nbval-lax tests notebooks
	$(MAKE) test-compat

# The package from its ranges (not the lock) in a fresh Python 3.12 venv that already has
# torch 2.11, as Colab and GPU images do: the Colab set-up cell's steps, then the fast tests
# and notebook 01 (tests/compat/py312.sh; about 10 minutes, most of it downloads).
test-compat:
	bash tests/compat/py312.sh

# After a deliberate upgrade: re-resolve .venv from the ranges and write the new lock.
lock:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade -e ".[dev,notebooks]"
	{ sed -n '/^#/p' $(LOCK); $(PY) -m pip freeze --exclude-editable | grep -v '^cxrsr'; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

# Developer helpers (not needed to reproduce the study).
# A change checked in about a minute: lint, then the tests not marked slow (no training, no
# notebook runs, no nbval).
test-fast: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not slow" -q tests

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

# tests/test_jupyterlab.py drives Debian's Chromium (never a browser downloaded by Playwright).
# Install it where this can (root with apt-get, as on CI's fresh machine); else say why that
# test will skip.
export CXRSR_CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(CXRSR_CHROMIUM)" ]; then \
		echo "browser test: $(CXRSR_CHROMIUM)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser test: installing chromium with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
		|| echo "browser test: apt-get could not install chromium; tests/test_jupyterlab.py will skip"; \
	else \
		echo "browser test: no $(CXRSR_CHROMIUM), and not root with apt-get to install it;" \
			"tests/test_jupyterlab.py will skip (install Debian's chromium to run it)"; \
	fi

# After an intended change of results: rerun quick, make the run the committed reference
# (reports/quick/, figures/quick/), then rerun it (every finished step reused) and store
# nbval's expected outputs, whose verdict lines compare with the reference just published.
expected: $(STAMP)
	$(PY) -m cxrsr_utils.runner --profile quick --refresh-expected --publish

# Make the last run of PROFILE the committed reference results.
publish: $(STAMP)
	$(PY) -m cxrsr_utils.runner --profile $(PROFILE) --publish --no-run

bench: $(STAMP)
	$(PY) bench/fp16_rounding.py
	$(PY) bench/inference.py
	$(PY) bench/backends.py
	$(PY) bench/training.py

# Results across CPU instruction sets (three quick-study runs; the basis of the tolerances).
bench-cpu: $(STAMP)
	$(PY) bench/cpu_portability.py

# The mirror study's time on an AVX2-only CPU, projected from measured parts (~15 min; needs a
# finished `make study PROFILE=mirror` in work/mirror).
bench-mirror-avx2: $(STAMP)
	$(PY) bench/mirror_cpu.py

# Notebooks 01-05 under the paper profile, shrunk, on CPU with stand-in netD/VGG19 (minutes;
# also part of make test).
paper-smoke: $(STAMP)
	$(PY) -m pytest tests/test_paper_notebooks.py

clean:
	rm -rf work .cache
