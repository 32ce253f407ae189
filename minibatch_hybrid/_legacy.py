"""The module names of versions before the layers, until :data:`REMOVAL`.

``import minibatch_hybrid.study`` (or ``mh.study``, ``study.config``) gives
the module now in its place, with a DeprecationWarning that names it.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: The version that no longer has these names.
REMOVAL = '0.5.0'

#: Old module names under ``minibatch_hybrid`` to their new ones; ``native``
#: was split into ``kernels`` and ``engines`` (:func:`_old_native`).
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
    module = types.ModuleType(_PACKAGE + '.native')
    for source, names in (
            (kernels, ('available', 'check_available', 'supported_kernels',
                       'using_kernels', 'ieee_subnormals',
                       'NativeUnavailable', 'GROUP', 'KERNELS_VARIABLE')),
            (engines, ('ENGINES', 'check_engine', 'resolve_engine',
                       'is_native', 'NativeEnsemble'))):
        for name in names:
            setattr(module, name, getattr(source, name))
    module.kernels = kernels.current
    return module


def moved(old):
    """Returns the module ``minibatch_hybrid.<old>`` now is, with a
    DeprecationWarning; None if ``old`` (``study.config`` too) is no old
    name."""
    top, _, rest = old.partition('.')
    if top not in MOVED:
        return None
    new = MOVED[top]
    where = (new or 'kernels and .engines') + ('.' + rest if rest else '')
    warnings.warn('minibatch_hybrid.{} has moved to minibatch_hybrid.{}; '
                  'import it from there (the old name goes in {})'.format(
                      old, where, REMOVAL), DeprecationWarning, stacklevel=3)
    if _PACKAGE + '.' + old in sys.modules:
        return sys.modules[_PACKAGE + '.' + old]
    if new is None:
        return None if rest else _old_native()
    return importlib.import_module(_PACKAGE + '.' + where)


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old name (:data:`MOVED`) as the new module."""

    def find_spec(self, name, path, target=None):
        package, _, old = name.partition('.')
        if package != _PACKAGE or old.partition('.')[0] not in MOVED:
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
