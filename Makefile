# Two commands on a fresh machine (see README.md):
#   make reproduce   set up .venv, then reproduce the post's figure
#   make test        set up .venv (NumPy 1.x) and .venv-numpy2 (NumPy 2.x),
#                    then run the test suite in both
PYTHON ?= python3
VENV ?= .venv
VENV2 ?= .venv-numpy2

# chainer 7.8.1 is an sdist that needs setuptools < 74 to build (and, at
# import, to run). pip < 26.2 passes PIP_CONSTRAINT to build environments,
# pip >= 25.3 reads PIP_BUILD_CONSTRAINT; both are set so any pip works.
BUILD := $(CURDIR)/requirements/build-constraints.txt
export PIP_BUILD_CONSTRAINT := $(BUILD)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install reproduce test test-numpy1 test-numpy2 bench study clean

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

reproduce: install
	$(VENV)/bin/minibatch-hybrid reproduce --out results/reproduce

test: test-numpy1 test-numpy2

# The compiled kernels are optional for users (no C compiler: NumPy), but
# the tests must exercise them: fail here if the install did not build them.
CHECK_NATIVE := from minibatch_hybrid import native; native.check_available()

test-numpy1: install
	$(VENV)/bin/python -c '$(CHECK_NATIVE)'
	$(VENV)/bin/python -m pytest

test-numpy2: $(VENV2)/.installed
	$(VENV2)/bin/python -c '$(CHECK_NATIVE)'
	$(VENV2)/bin/python -m pytest -p no:cacheprovider

study: install
	$(VENV)/bin/minibatch-hybrid study --out results/study

bench: install
	$(VENV)/bin/minibatch-hybrid bench --out results/bench

clean:
	rm -rf $(VENV) $(VENV2) results *.egg-info .pytest_cache build
	rm -f minibatch_hybrid/_native*.so
