"""Mini-batch order schedules for Chainer, and the blog's sin(x) experiment.

The package is laid out by concern:

* :mod:`~minibatch_hybrid.schedules`: order schedules (fixed, random, hybrid,
  ...) usable as Chainer order samplers.
* :mod:`~minibatch_hybrid.data`: the sin(x) data set.
* :mod:`~minibatch_hybrid.model`: the post's ``MyChain``, its optimizer and a
  real reset (:class:`~minibatch_hybrid.model.InitialState`).
* :mod:`~minibatch_hybrid.training`: the one training loop.
* :mod:`~minibatch_hybrid.reproduce`: the post's experiment.
* :mod:`~minibatch_hybrid.results`, :mod:`~minibatch_hybrid.plots`: output
  files and figures.
* :mod:`~minibatch_hybrid.cli`: the ``minibatch-hybrid`` command.
"""
from minibatch_hybrid import _compat

_compat.import_chainer()

from minibatch_hybrid._version import __version__  # NOQA: E402
from minibatch_hybrid.data import SinDataset, make_sin_dataset  # NOQA: E402
from minibatch_hybrid.model import InitialState  # NOQA: E402
from minibatch_hybrid.model import MyChain  # NOQA: E402
from minibatch_hybrid.model import make_model  # NOQA: E402
from minibatch_hybrid.model import make_optimizer  # NOQA: E402
from minibatch_hybrid.schedules import Fixed  # NOQA: E402
from minibatch_hybrid.schedules import Phased  # NOQA: E402
from minibatch_hybrid.schedules import Random  # NOQA: E402
from minibatch_hybrid.schedules import Schedule  # NOQA: E402
from minibatch_hybrid.schedules import ShuffleOnce  # NOQA: E402
from minibatch_hybrid.schedules import WithReplacement  # NOQA: E402
from minibatch_hybrid.schedules import hybrid  # NOQA: E402
from minibatch_hybrid.schedules import parse_schedule  # NOQA: E402
from minibatch_hybrid.schedules import parse_schedules  # NOQA: E402
from minibatch_hybrid.training import TrainResult  # NOQA: E402
from minibatch_hybrid.training import train  # NOQA: E402

__all__ = [
    '__version__', 'SinDataset', 'make_sin_dataset', 'InitialState',
    'MyChain', 'make_model', 'make_optimizer', 'Schedule', 'Fixed', 'Random',
    'ShuffleOnce', 'WithReplacement', 'Phased', 'hybrid', 'parse_schedule',
    'parse_schedules', 'TrainResult', 'train',
]
