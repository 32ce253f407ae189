# Two commands on a fresh machine (see README.md):
#   make reproduce   set up .venv, then reproduce the post's figure
#   make test        the test suite on Python 3.11 with NumPy 1.x (.venv) and
#                    2.x (.venv-numpy2), on Python 3.12 with NumPy 2.5
#                    (.venv-py312), then a wheel installed as users install
#                    it, every command run from outside the checkout, then
#                    the CUDA kernels compiled to PTX (NVRTC, no GPU)
# and one for every day:
#   make check       the linter, then the quick tests in .venv
PYTHON ?= python3
VENV ?= .venv
VENV2 ?= .venv-numpy2
VENV3 ?= .venv-py312
# Python 3.12 for its leg: on PATH, or the one pyenv keeps.
PYTHON312 ?= $(firstword $(shell python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null) $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12))

# chainer 7.8.1 is an sdist that needs setuptools < 74 to build (and, at
# import, to run). pip < 26.2 passes PIP_CONSTRAINT to build environments,
# pip >= 25.3 reads PIP_BUILD_CONSTRAINT; both are set so any pip works.
BUILD := $(CURDIR)/requirements/build-constraints.txt
export PIP_BUILD_CONSTRAINT := $(BUILD)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install reproduce check lint test test-numpy1 test-numpy2 \
        test-py312 test-wheel py312-leg need-python312 bench study \
        clean

install: $(VENV)/.installed

reproduce: install
	$(VENV)/bin/minibatch-hybrid reproduce --out results/reproduce

# The compiled kernels are optional for users (no C compiler: NumPy), but
# the tests must exercise them: fail here if the install did not build them.
CHECK_NATIVE := from minibatch_hybrid import kernels; kernels.check_available()

# A test leg, written once:
#   $(call leg,NAME,VENV,PYTHON VARIABLE,CONSTRAINTS,PYTEST OPTIONS,GUARD,EXTRA)
# VENV/.installed: a venv made by the Python the variable names (read only
# when the recipe runs), the package installed in it editable with the
# EXTRA (dev: the tests and the linter; test: the tests), NumPy as
# requirements/CONSTRAINTS says, after the GUARD target;
# test-NAME: the check that the kernels were built, then pytest.
define leg
$(2)/.installed: setup.py requirements/*.txt minibatch_hybrid/kernels/_native*.[ch] | $(6)
	$$($(3)) -m venv $(2)
	PIP_CONSTRAINT="$$(BUILD) $$(CURDIR)/requirements/$(4)" \
	    $(2)/bin/python -m pip install -e '.[$(7)]'
	touch $$@

test-$(1): $(2)/.installed
	$(2)/bin/python -c '$$(CHECK_NATIVE)'
	$(2)/bin/python -m pytest$(if $(5), $(5))
endef

# Only the first leg keeps pytest's cache (for --lf, --ff), and runs the
# tests that wait out the package's Dask time limits (marked waits: about
# a minute of sleeping, the same on every NumPy and Python). The second
# leg (Python 3.11, NumPy 2.5) leaves out the slow tests: their Python is
# the first leg's and their NumPy the third's (2 of its 6 minutes on a
# 2-core Zen 3).
$(eval $(call leg,numpy1,$(VENV),PYTHON,numpy1.txt,,,dev))
$(eval $(call leg,numpy2,$(VENV2),PYTHON,numpy2.txt,-p no:cacheprovider -m 'not slow',,test))
$(eval $(call leg,py312,$(VENV3),PYTHON312,numpy25.txt,-p no:cacheprovider -m 'not waits',need-python312,test))

# Python 3.12 missing: `make test` skips its leg and says so, except in CI
# (CI=true), where the leg is required; `make test-py312` always needs it.
PY312_OK = $(eval PY312_OK := $(if $(strip $(PYTHON312)),$(filter 1,$(shell '$(PYTHON312)' -c 'import sys; print(int(sys.version_info[:2] == (3, 12)))' 2>/dev/null))))$(PY312_OK)
IN_CI := $(filter-out 0 false False FALSE no,$(strip $(CI)))
PY312_LEG = $(if $(PY312_OK)$(IN_CI),test-py312)
PY312_HOW := install it (pyenv install 3.12, or your distribution's python3.12 package) or name one: make test PYTHON312=/path/to/python3.12

test: lint test-numpy1 test-numpy2 py312-leg test-wheel test-cuda-compile
	@$(if $(PY312_LEG),:,echo "make test: the Python 3.12 leg was skipped, Python 3.12 not found (PYTHON312='$(PYTHON312)'); to run it, $(PY312_HOW)")

# Decided when it runs, so that no other target looks for Python 3.12.
py312-leg:
	@$(if $(PY312_LEG),$(MAKE) --no-print-directory test-py312 PYTHON312='$(PYTHON312)',:)

need-python312:
	@$(if $(PY312_OK),:,echo "Python 3.12 not found (PYTHON312='$(PYTHON312)')$(if $(IN_CI), and CI=$(CI) requires its leg): $(PY312_HOW)" >&2; exit 1)

test-wheel:
	bash scripts/check_wheel.sh $(PYTHON)

# The daily check: the linter, then the tests not marked slow in .venv,
# the notebooks left to `make test`.
check: lint
	$(VENV)/bin/python -c '$(CHECK_NATIVE)'
	$(VENV)/bin/python -m pytest -m 'not slow' tests minibatch_hybrid

# The CUDA kernels compiled to PTX by NVRTC, no GPU needed
# (tests/test_cuda_kernels.py): NVRTC from the nvidia-cuda-nvrtc wheel of
# CUDA 13 (a 58 MB download, 142 MB installed), kept in build/nvrtc and put
# on the path, where scripts/cuda_host.py finds it. It fails,
# rather than skips, if NVRTC does not load.
NVRTC_DIR := build/nvrtc
NVRTC_PATH := PYTHONPATH='$(CURDIR)/$(NVRTC_DIR)'
CHECK_NVRTC := import sys; sys.path.insert(0, "scripts"); import cuda_host; \
    print("NVRTC", *cuda_host.version(), "at", cuda_host.nvrtc()._name)

$(NVRTC_DIR)/.installed: | $(VENV)/.installed
	$(VENV)/bin/python -m pip install --quiet --upgrade \
	    --target $(NVRTC_DIR) 'nvidia-cuda-nvrtc>=13,<14'
	touch $@

.PHONY: test-cuda-compile
test-cuda-compile: $(NVRTC_DIR)/.installed
	$(NVRTC_PATH) $(VENV)/bin/python -c '$(CHECK_NVRTC)'
	$(NVRTC_PATH) $(VENV)/bin/python -m pytest -p no:cacheprovider \
	    tests/test_cuda_kernels.py

# The GPU check's wheels and its rehearsal without a GPU (docs/gpus.md):
# gpu-wheels/ is carried to the lent GPU machine; the rehearsal fetches
# CuPy 14 and the CUDA 13 libraries (about 1.4 GB, git-ignored, never
# carried) into a Python 3.12 venv and runs scripts/gpu_check.sh there.
.PHONY: gpu-wheels gpu-rehearse
gpu-wheels:
	bash scripts/gpu_wheels.sh

gpu-rehearse:
	PYTHON312='$(PYTHON312)' bash scripts/gpu_wheels.sh --rehearsal
	bash scripts/gpu_check.sh --rehearse

lint: install
	$(VENV)/bin/ruff check .

study: install
	$(VENV)/bin/minibatch-hybrid study --out results/study

bench: install
	$(VENV)/bin/minibatch-hybrid bench --out results/bench

clean:
	rm -rf $(VENV) $(VENV2) $(VENV3) results *.egg-info .pytest_cache build \
	    .ruff_cache
	rm -f minibatch_hybrid/kernels/_native*.so
	rm -rf .venv-gpu-rehearsal gpu-rehearsal-wheels gpu-wheels
