"""Files and what the user sees: result sets written whole, snapshots
read without pickle, figures, progress."""
# Chainer on today's stacks (NumPy 2, Python 3.12), before any module here
# imports it: see minibatch_hybrid._compat.
from minibatch_hybrid._compat import chainer  # NOQA
