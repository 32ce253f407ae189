# Two commands on a fresh machine (see README.md):
#   make reproduce   set up .venv, then reproduce the post's figure
#   make test        the test suite on Python 3.11 with NumPy 1.x (.venv) and
#                    2.x (.venv-numpy2), on Python 3.12 with NumPy 2.5
#                    (.venv-py312), then a wheel installed as users install
#                    it, every command run from outside the checkout
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

.PHONY: install reproduce test test-numpy1 test-numpy2 test-py312 test-wheel \
        bench study clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py requirements/*.txt minibatch_hybrid/_native.c minibatch_hybrid/_native_body.h
	$(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT="$(BUILD) $(CURDIR)/requirements/numpy1.txt" \
	    $(VENV)/bin/python -m pip install -e '.[dev]'
	touch $@

$(VENV2)/.installed: setup.py requirements/*.txt minibatch_hybrid/_native.c minibatch_hybrid/_native_body.h
	$(PYTHON) -m venv $(VENV2)
	PIP_CONSTRAINT="$(BUILD) $(CURDIR)/requirements/numpy2.txt" \
	    $(VENV2)/bin/python -m pip install -e '.[dev]'
	touch $@

$(VENV3)/.installed: setup.py requirements/*.txt minibatch_hybrid/_native.c minibatch_hybrid/_native_body.h
	@test -n "$(PYTHON312)" || { echo 'Python 3.12 not found: install it (pyenv install 3.12) or set PYTHON312'; exit 1; }
	$(PYTHON312) -m venv $(VENV3)
	PIP_CONSTRAINT="$(BUILD) $(CURDIR)/requirements/numpy25.txt" \
	    $(VENV3)/bin/python -m pip install -e '.[dev]'
	touch $@

reproduce: install
	$(VENV)/bin/minibatch-hybrid reproduce --out results/reproduce

test: test-numpy1 test-numpy2 test-py312 test-wheel

# The compiled kernels are optional for users (no C compiler: NumPy), but
# the tests must exercise them: fail here if the install did not build them.
CHECK_NATIVE := from minibatch_hybrid import native; native.check_available()

test-numpy1: install
	$(VENV)/bin/python -c '$(CHECK_NATIVE)'
	$(VENV)/bin/python -m pytest

test-numpy2: $(VENV2)/.installed
	$(VENV2)/bin/python -c '$(CHECK_NATIVE)'
	$(VENV2)/bin/python -m pytest -p no:cacheprovider

test-py312: $(VENV3)/.installed
	$(VENV3)/bin/python -c '$(CHECK_NATIVE)'
	$(VENV3)/bin/python -m pytest -p no:cacheprovider

test-wheel:
	bash scripts/check_wheel.sh $(PYTHON)

study: install
	$(VENV)/bin/minibatch-hybrid study --out results/study

bench: install
	$(VENV)/bin/minibatch-hybrid bench --out results/bench

clean:
	rm -rf $(VENV) $(VENV2) $(VENV3) results *.egg-info .pytest_cache build
	rm -f minibatch_hybrid/_native*.so
