"""Engines: what trains K replicas of MyChain, and which one runs.

The numpy engine is :class:`~minibatch_hybrid.engines.stacked.Ensemble`
(Chainer's operations; CuPy's on a GPU), the native engine
:class:`~minibatch_hybrid.engines.native.NativeEnsemble` (the compiled
kernels, CPU).  :func:`resolve_engine` is the one place that decides.
"""
# Chainer on today's stacks (NumPy 2, Python 3.12), before any module here
# imports it: see minibatch_hybrid._compat.
from minibatch_hybrid._compat import chainer  # NOQA
from minibatch_hybrid import kernels
from minibatch_hybrid.core.engine import ChainerEngine
from minibatch_hybrid.core.model import make_optimizer
from minibatch_hybrid.engines.native import NativeEnsemble
from minibatch_hybrid.engines.stacked import Ensemble
from minibatch_hybrid.errors import SettingsError
# The engines one can ask for, and their check, live in settings.
from minibatch_hybrid.settings import ENGINES  # NOQA
from minibatch_hybrid.settings import check_engine  # NOQA


def resolve_engine(engine, device):
    """Returns the name of the engine that will run, for the record.

    Args:
        engine (str): ``'auto'`` (the compiled kernels on the CPU where
            they run, else NumPy), ``'native'`` or ``'numpy'``.
        device (chainer.backend.Device): Where the ensemble runs.

    Returns:
        str: ``'native'``, ``'numpy'`` or, on a GPU, ``'cupy'``.

    """
    check_engine(engine)
    on_cpu = device.xp.__name__ == 'numpy'
    if not on_cpu:
        if engine == 'native':
            raise SettingsError(
                'the native engine runs on the CPU only; on {} use '
                '--engine numpy (or auto)'.format(device))
        return 'cupy'
    if engine == 'numpy' or (engine == 'auto' and not kernels.available()):
        return 'numpy'
    kernels.check_available()
    return 'native'


def is_native(engine_name):
    """Whether a resolved engine name means the compiled kernels (not an
    earlier version's ``'native-avx2'`` and the like)."""
    return engine_name == 'native'


def make_ensemble(engine, models, device):
    """Returns the replicas of ``models`` (copied) as an engine of the
    loop, for a resolved ``engine`` (:func:`resolve_engine`); the numpy
    engine on ``device`` with the post's Adam."""
    if is_native(engine):
        return NativeEnsemble(models)
    ensemble = Ensemble(models)
    ensemble.to_device(device)
    return ChainerEngine(ensemble, make_optimizer(ensemble))


def make_single(engine, model, optimizer):
    """Returns one model as an engine of one replica: for ``'native'`` a
    copy of ``model`` with its own Adam (``optimizer`` unused), else
    ``model`` itself with ``optimizer``."""
    if is_native(engine):
        return NativeEnsemble([model])
    return ChainerEngine(model, optimizer)
