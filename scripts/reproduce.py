#!/usr/bin/env python
"""Reproduces the post's figure: ``python scripts/reproduce.py --help``.

The same as ``minibatch-hybrid reproduce``.
"""
#: A command of minibatch_hybrid (see minibatch_hybrid._interrupts): a Ctrl-C
#: while it starts ends it in one line.  Set before the package's imports.
__minibatch_hybrid_command__ = True

import sys

from minibatch_hybrid.cli import main

if __name__ == '__main__':
    sys.exit(main(['reproduce'] + sys.argv[1:]))
