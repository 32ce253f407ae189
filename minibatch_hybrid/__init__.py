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

The modules of versions before this layout (``minibatch_hybrid.study``,
``minibatch_hybrid.native``, ...) still import under their old names, with
a :class:`DeprecationWarning` that names the new place (:data:`MOVED`).
"""
import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

from minibatch_hybrid import _startup

# Ctrl-C during these imports ends a command in one line (see _startup).
with _startup.interruptible():
    from minibatch_hybrid import _compat

    _compat.import_chainer()

    from minibatch_hybrid._version import __version__
    from minibatch_hybrid.core.data import SinDataset, make_sin_dataset
    from minibatch_hybrid import engines
    from minibatch_hybrid import kernels
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

#: Modules of earlier versions, by their name under ``minibatch_hybrid``,
#: to where they are now; ``native`` was split into ``kernels`` and
#: ``engines`` (:func:`_old_native`).
MOVED = {
    '_checks': 'checks', '_parallel': 'kernels.threads',
    'adam': 'core.adam', 'bench': 'experiments.bench', 'data': 'core.data',
    'device': 'core.device', 'ensemble': 'engines.stacked',
    'functions': 'core.loss', 'model': 'core.model', 'native': None,
    'plots': 'io.plots', 'progress': 'io.progress',
    'reference': 'core.reference', 'reproduce': 'experiments.reproduce',
    'results': 'io.results', 'snapshots': 'io.snapshots',
    'stats': 'experiments.stats', 'study': 'experiments.study',
    'trainer': 'chainer_ext.trainer', 'training': 'core.loop',
}

_PACKAGE = 'minibatch_hybrid'


def _old_native():
    """The old ``native`` module's names, from their new places."""
    module = types.ModuleType(_PACKAGE + '.native', 'The old name of '
                              ':mod:`minibatch_hybrid.kernels` and the '
                              'native engine.')
    for name in ('available', 'check_available', 'supported_kernels',
                 'using_kernels', 'ieee_subnormals', 'NativeUnavailable',
                 'GROUP', 'KERNELS_VARIABLE'):
        setattr(module, name, getattr(kernels, name))
    for name in ('ENGINES', 'check_engine', 'resolve_engine', 'is_native',
                 'NativeEnsemble'):
        setattr(module, name, getattr(engines, name))
    module.kernels = kernels.current
    return module


def _moved(old):
    """Returns the module that ``minibatch_hybrid.<old>`` now is, with a
    DeprecationWarning, or None if ``old`` is not an old name.

    ``old`` may name a submodule of an old package (``study.config``).
    """
    top, _, rest = old.partition('.')
    if top not in MOVED:
        return None
    new = MOVED[top]
    warnings.warn('minibatch_hybrid.{} has moved to minibatch_hybrid.{}; '
                  'import it from there'.format(
                      old, (new or 'kernels and .engines') +
                      ('.' + rest if rest else '')),
                  DeprecationWarning, stacklevel=3)
    name = _PACKAGE + '.' + old
    if name in sys.modules:
        return sys.modules[name]
    if new is None:
        return _old_native() if not rest else None
    return importlib.import_module(
        _PACKAGE + '.' + new + ('.' + rest if rest else ''))


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``import minibatch_hybrid.<old>`` (:data:`MOVED`): the module
    is the new one, under its old name too."""

    def find_spec(self, name, path, target=None):
        prefix = _PACKAGE + '.'
        if not name.startswith(prefix) or \
                name[len(prefix):].partition('.')[0] not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        module = _moved(spec.name[len(_PACKAGE) + 1:])
        if module is None:
            raise ImportError('no module named {}'.format(spec.name),
                              name=spec.name)
        return module

    def exec_module(self, module):
        pass  # the new module has run already


if not any(type(f).__name__ == '_Moved' and f.__module__ == __name__
           for f in sys.meta_path):
    # First: the path finder would load an old package's submodules
    # (study.config) a second time, as other modules.
    sys.meta_path.insert(0, _Moved())


def __getattr__(name):
    # Modules of earlier versions, by their old names (``mh.study``).
    module = _moved(name)
    if module is None:
        raise AttributeError('module {!r} has no attribute {!r}'.format(
            __name__, name))
    return module
