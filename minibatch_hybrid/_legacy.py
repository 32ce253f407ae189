"""The module names of versions before the layers, until :data:`REMOVAL`.

``import minibatch_hybrid.study`` (and ``mh.study``, and a submodule such as
``minibatch_hybrid.study.config``) still gives the module now in its place,
with a :class:`DeprecationWarning` that names that place.  Nothing heavy is
imported here: an old name imports its new module when it is used.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: The version that no longer has these names.
REMOVAL = '0.5.0'

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
    kernels = importlib.import_module(_PACKAGE + '.kernels')
    engines = importlib.import_module(_PACKAGE + '.engines')
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


def moved(old):
    """Returns the module that ``minibatch_hybrid.<old>`` now is, with a
    DeprecationWarning, or None if ``old`` is not an old name.

    ``old`` may name a submodule of an old package (``study.config``).
    """
    top, _, rest = old.partition('.')
    if top not in MOVED:
        return None
    new = MOVED[top]
    warnings.warn('minibatch_hybrid.{} has moved to minibatch_hybrid.{}; '
                  'import it from there (the old name goes in {})'.format(
                      old, (new or 'kernels and .engines') +
                      ('.' + rest if rest else ''), REMOVAL),
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
        module = moved(spec.name[len(_PACKAGE) + 1:])
        if module is None:
            raise ImportError('no module named {}'.format(spec.name),
                              name=spec.name)
        return module

    def exec_module(self, module):
        pass  # the new module has run already


def install():
    """Lets the old names import (once per process)."""
    if not any(type(f).__name__ == '_Moved' and f.__module__ == __name__
               for f in sys.meta_path):
        # First: the path finder would load an old package's submodules
        # (study.config) a second time, as other modules.
        sys.meta_path.insert(0, _Moved())
