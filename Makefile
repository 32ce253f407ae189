# Two commands on a fresh machine (see README.md):
#   make reproduce   set up .venv, then reproduce the post's figure
#   make test        set up .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# chainer 7.8.1 is an sdist that needs setuptools < 74 to build (and, at
# import, to run). pip < 26.2 passes PIP_CONSTRAINT to build environments,
# pip >= 25.3 reads PIP_BUILD_CONSTRAINT; both are set so any pip works.
CONSTRAINTS := $(CURDIR)/requirements/build-constraints.txt
export PIP_CONSTRAINT := $(CONSTRAINTS)
export PIP_BUILD_CONSTRAINT := $(CONSTRAINTS)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install reproduce test clean

install: $(STAMP)

$(STAMP): setup.py requirements/build-constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

reproduce: $(STAMP)
	$(BIN)/minibatch-hybrid reproduce --out results/reproduce

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) results *.egg-info .pytest_cache
