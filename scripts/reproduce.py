#!/usr/bin/env python
"""Reproduces the post's figure: ``python scripts/reproduce.py --help``.

The same as ``minibatch-hybrid reproduce``.
"""
import sys

from minibatch_hybrid.cli import main

if __name__ == '__main__':
    sys.exit(main(['reproduce'] + sys.argv[1:]))
