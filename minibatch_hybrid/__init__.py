"""Mini-batch order schedules for Chainer, and the blog's sin(x) experiment.

The package is laid out in layers, each using only those above it here:

* :mod:`~minibatch_hybrid.schedules`: order schedules (fixed, random,
  hybrid, ...), usable as Chainer order samplers.
* :mod:`~minibatch_hybrid.kernels`: the compiled kernels, one arithmetic
  on every CPU (optional), and the threads that run them.
* :mod:`~minibatch_hybrid.core`: the post's data, ``MyChain``, its loss,
  Adam, a real reset, and the one training loop.
* :mod:`~minibatch_hybrid.engines`: K replicas at once, in Chainer's
  operations (numpy) or the kernels' (native), and which one runs.
* :mod:`~minibatch_hybrid.chainer_ext`: schedules in Chainer's own
  iterators and Trainer, resumed exactly.
* :mod:`~minibatch_hybrid.io`: result files written whole, snapshots read
  without pickle, figures, progress.
* :mod:`~minibatch_hybrid.experiments`: the post's reproduction, the
  many-seed study and sweep, statistics, the benchmark.
* :mod:`~minibatch_hybrid.settings`, :mod:`~minibatch_hybrid.errors`,
  :mod:`~minibatch_hybrid.cli`: the settings, the errors a user can fix,
  the ``minibatch-hybrid`` command.
"""
from minibatch_hybrid import _startup

# Ctrl-C during these imports ends a command in one line (see _startup).
with _startup.interruptible():
    from minibatch_hybrid import _compat

    _compat.import_chainer()

    from minibatch_hybrid._version import __version__
    from minibatch_hybrid.core.data import SinDataset, make_sin_dataset
    from minibatch_hybrid.engines.native import NativeEnsemble
    from minibatch_hybrid.engines.stacked import Ensemble
    from minibatch_hybrid.errors import Error
    from minibatch_hybrid.errors import FileError
    from minibatch_hybrid.errors import SettingsError
    from minibatch_hybrid.core.model import InitialState
    from minibatch_hybrid.core.model import MyChain
    from minibatch_hybrid.core.model import make_model
    from minibatch_hybrid.core.model import make_optimizer
    from minibatch_hybrid.schedules import Fixed
    from minibatch_hybrid.schedules import Phased
    from minibatch_hybrid.schedules import Random
    from minibatch_hybrid.schedules import Schedule
    from minibatch_hybrid.schedules import ShuffleOnce
    from minibatch_hybrid.schedules import WithReplacement
    from minibatch_hybrid.schedules import hybrid
    from minibatch_hybrid.schedules import parse_schedule
    from minibatch_hybrid.schedules import parse_schedules
    from minibatch_hybrid.io.snapshots import load_npz
    from minibatch_hybrid.core.loop import TrainResult
    from minibatch_hybrid.core.loop import train

__all__ = [
    '__version__', 'SinDataset', 'make_sin_dataset', 'Ensemble',
    'NativeEnsemble', 'Error', 'SettingsError', 'FileError',
    'InitialState',
    'MyChain', 'make_model', 'make_optimizer', 'Schedule', 'Fixed', 'Random',
    'ShuffleOnce', 'WithReplacement', 'Phased', 'hybrid', 'parse_schedule',
    'parse_schedules', 'TrainResult', 'train', 'load_npz',
]
