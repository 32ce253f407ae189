"""Mini-batch order schedules for Chainer, and the blog's sin(x) experiment.

The package is laid out by concern:

* :mod:`~minibatch_hybrid.schedules`: order schedules (fixed, random, hybrid,
  ...) usable as Chainer order samplers.
* :mod:`~minibatch_hybrid.data`: the sin(x) data set.
* :mod:`~minibatch_hybrid.model`: the post's ``MyChain``, its optimizer and a
  real reset (:class:`~minibatch_hybrid.model.InitialState`).
* :mod:`~minibatch_hybrid.functions`, :mod:`~minibatch_hybrid.adam`: the
  loss as one graph node and Adam without temporaries (Chainer's bits).
* :mod:`~minibatch_hybrid.ensemble`: K stacked replicas of ``MyChain``;
  :mod:`~minibatch_hybrid.native`: its compiled kernels (optional).
* :mod:`~minibatch_hybrid.training`: the one training loop.
* :mod:`~minibatch_hybrid.iterators`, :mod:`~minibatch_hybrid.extensions`,
  :mod:`~minibatch_hybrid.trainer`: schedules in Chainer's Trainer, resumed.
* :mod:`~minibatch_hybrid.reproduce`, :mod:`~minibatch_hybrid.study`,
  :mod:`~minibatch_hybrid.stats`, :mod:`~minibatch_hybrid.bench`: the post's
  experiment, the many-seed study, its statistics, the benchmark.
* :mod:`~minibatch_hybrid.results`, :mod:`~minibatch_hybrid.plots`: output
  files and figures.
* :mod:`~minibatch_hybrid.cli`: the ``minibatch-hybrid`` command.
"""
from minibatch_hybrid import _startup

# Ctrl-C during these imports ends a command in one line (see _startup).
with _startup.interruptible():
    from minibatch_hybrid import _compat

    _compat.import_chainer()

    from minibatch_hybrid._version import __version__
    from minibatch_hybrid.data import SinDataset, make_sin_dataset
    from minibatch_hybrid.ensemble import Ensemble
    from minibatch_hybrid.model import InitialState
    from minibatch_hybrid.model import MyChain
    from minibatch_hybrid.model import make_model
    from minibatch_hybrid.model import make_optimizer
    from minibatch_hybrid.schedules import Fixed
    from minibatch_hybrid.schedules import Phased
    from minibatch_hybrid.schedules import Random
    from minibatch_hybrid.schedules import Schedule
    from minibatch_hybrid.schedules import ShuffleOnce
    from minibatch_hybrid.schedules import WithReplacement
    from minibatch_hybrid.schedules import hybrid
    from minibatch_hybrid.schedules import parse_schedule
    from minibatch_hybrid.schedules import parse_schedules
    from minibatch_hybrid.snapshots import load_npz
    from minibatch_hybrid.training import TrainResult
    from minibatch_hybrid.training import train

__all__ = [
    '__version__', 'SinDataset', 'make_sin_dataset', 'Ensemble',
    'InitialState',
    'MyChain', 'make_model', 'make_optimizer', 'Schedule', 'Fixed', 'Random',
    'ShuffleOnce', 'WithReplacement', 'Phased', 'hybrid', 'parse_schedule',
    'parse_schedules', 'TrainResult', 'train', 'load_npz',
]
