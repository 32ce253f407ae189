"""Mini-batch order schedules for Chainer, and the blog's sin(x) experiment.

The package is laid out in layers, each using only itself and those before
it here (``tests/test_layout.py`` keeps them):

* :mod:`~minibatch_hybrid.errors`, :mod:`~minibatch_hybrid.checks`: the
  errors a user can fix, and the checks of values at the boundary.
* :mod:`~minibatch_hybrid.schedules`: order schedules (fixed, random,
  hybrid, ...), usable as Chainer order samplers;
  :mod:`~minibatch_hybrid.kernels`: the compiled kernels, one arithmetic
  on every CPU (optional), and the threads that run them.
* :mod:`~minibatch_hybrid.core`: the post's data, ``MyChain``, its loss,
  Adam, a real reset, and the one training loop;
  :mod:`~minibatch_hybrid.settings`: the settings the commands share.
* :mod:`~minibatch_hybrid.engines`: K replicas at once, in Chainer's
  operations (numpy) or the kernels' (native), and which one runs;
  :mod:`~minibatch_hybrid.io`: result files written whole, snapshots read
  without pickle, figures, progress.
* :mod:`~minibatch_hybrid.chainer_ext`: schedules in Chainer's own
  iterators and Trainer, resumed exactly.
* :mod:`~minibatch_hybrid.experiments`: the post's reproduction, the
  many-seed study and sweep, statistics, the benchmark.
* :mod:`~minibatch_hybrid.cli`: the ``minibatch-hybrid`` command.

Importing the package imports nothing else: each name below (``mh.train``,
``mh.MyChain``, ...) and each subpackage (``mh.engines``) is imported when
it is first used, so ``import minibatch_hybrid.errors`` stays light.  The
subpackages that use Chainer import it on today's stacks (NumPy 2, Python
3.12: :mod:`~minibatch_hybrid._compat`) before anything else: import one of
them, or a name from the package, before ``import chainer``.

The module names of versions before this layout (``minibatch_hybrid.study``,
``minibatch_hybrid.native``, ...) still import, with a
:class:`DeprecationWarning` that names the new place, until version
:data:`~minibatch_hybrid._legacy.REMOVAL` (:mod:`~minibatch_hybrid._legacy`).
"""
import importlib

from minibatch_hybrid import _legacy
from minibatch_hybrid._version import __version__

#: The package's public names, by the module that defines them.
PUBLIC = {
    'SinDataset': 'core.data', 'make_sin_dataset': 'core.data',
    'Ensemble': 'engines.stacked', 'NativeEnsemble': 'engines.native',
    'Error': 'errors', 'SettingsError': 'errors', 'FileError': 'errors',
    'InitialState': 'core.model', 'MyChain': 'core.model',
    'make_model': 'core.model', 'make_optimizer': 'core.model',
    'Schedule': 'schedules', 'Fixed': 'schedules', 'Random': 'schedules',
    'ShuffleOnce': 'schedules', 'WithReplacement': 'schedules',
    'Phased': 'schedules', 'hybrid': 'schedules',
    'parse_schedule': 'schedules', 'parse_schedules': 'schedules',
    'TrainResult': 'core.loop', 'train': 'core.loop',
    'load_npz': 'io.snapshots',
}

#: The subpackages and modules that ``mh.<name>`` imports when used.
MODULES = ('errors', 'checks', 'schedules', 'kernels', 'core', 'engines',
           'io', 'chainer_ext', 'settings', 'experiments', 'iterators',
           'extensions')

__all__ = ['__version__'] + list(PUBLIC)

_legacy.install()


def __getattr__(name):
    if name in PUBLIC:
        module = importlib.import_module(__name__ + '.' + PUBLIC[name])
        value = getattr(module, name)
    elif name in MODULES:
        value = importlib.import_module(__name__ + '.' + name)
    else:
        # Modules of earlier versions, by their old names (``mh.study``).
        value = _legacy.moved(name)
        if value is None:
            raise AttributeError('module {!r} has no attribute {!r}'.format(
                __name__, name))
        return value
    globals()[name] = value
    return value


def __dir__():
    # What a user may reach: the public names and the subpackages.
    return sorted({'__version__'} | set(PUBLIC) | set(MODULES))
