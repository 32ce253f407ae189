"""Mini-batch order schedules for Chainer, and the blog's sin(x) experiment.

Layers, lowest first (``tests/test_layout.py`` keeps them): ``errors``,
``checks``; ``schedules``, ``kernels``; ``core``, ``settings``; ``engines``,
``io``; ``chainer_ext``; ``experiments``; ``cli``.  Importing the package
imports nothing else: each name of :data:`PUBLIC` and each module of
:data:`MODULES` is imported when first used; one that uses Chainer imports
it on today's stacks (:mod:`._compat`), so import it before ``chainer``.
The old module names (``minibatch_hybrid.study``, ...) import with a
DeprecationWarning until :data:`~minibatch_hybrid._legacy.REMOVAL`.
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
        value = _legacy.moved(name)
        if value is None:
            raise AttributeError('module {!r} has no attribute {!r}'.format(
                __name__, name))
        return value
    globals()[name] = value
    return value


def __dir__():
    return sorted({'__version__'} | set(PUBLIC) | set(MODULES))
