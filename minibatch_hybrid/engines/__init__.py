"""Engines: what trains K replicas of MyChain, and which one runs.

* :class:`~minibatch_hybrid.engines.stacked.Ensemble`: the numpy engine,
  Chainer's operations on K stacked replicas (CuPy's on a GPU).
* :class:`~minibatch_hybrid.engines.native.NativeEnsemble`: the native
  engine, the compiled kernels' one arithmetic (CPU).

Both answer the loop's protocol (:mod:`~minibatch_hybrid.core.engine`), as
does a single model with its optimizer.  This module chooses among them:
:func:`resolve_engine` is the one place that decides.
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
# The engines one can ask for, and their check: the settings' (below).
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
    if engine == 'native':
        if not on_cpu:
            raise SettingsError(
                'the native engine runs on the CPU only; on {} use '
                '--engine numpy (or auto)'.format(device))
        kernels.check_available()
    if not on_cpu:
        return 'cupy'
    if engine == 'numpy' or (engine == 'auto' and not kernels.available()):
        return 'numpy'
    kernels.check_available()
    return 'native'


def is_native(engine_name):
    """Whether a resolved engine name means the compiled kernels.

    (Folders of earlier versions recorded ``'native-avx2'`` and the like:
    another arithmetic, which these kernels do not reproduce.)
    """
    return engine_name == 'native'


def make_ensemble(engine, models, device):
    """Returns the replicas of ``models`` as an engine of the loop.

    Args:
        engine (str): A resolved engine (:func:`resolve_engine`):
            ``'native'`` gives a
            :class:`~minibatch_hybrid.engines.native.NativeEnsemble`;
            ``'numpy'`` or ``'cupy'`` an
            :class:`~minibatch_hybrid.engines.stacked.Ensemble` on
            ``device`` with the post's Adam.
        models (list of MyChain): The replicas' initial weights (copied).
        device (chainer.backend.Device): Where the numpy engine runs.

    """
    if is_native(engine):
        return NativeEnsemble(models)
    ensemble = Ensemble(models)
    ensemble.to_device(device)
    return ChainerEngine(ensemble, make_optimizer(ensemble))


def make_single(engine, model, optimizer):
    """Returns one model as an engine of the loop (of one replica).

    Args:
        engine (str): ``'native'``: a one-replica
            :class:`~minibatch_hybrid.engines.native.NativeEnsemble` of a
            copy of ``model``; ``'numpy'`` or ``'cupy'``: ``model`` itself
            with ``optimizer`` (Chainer's operations, the post's loop).
        model (MyChain): The model, on its device.
        optimizer (chainer.Optimizer): Set up on ``model`` (unused by the
            native engine, which carries its own Adam).

    """
    if is_native(engine):
        return NativeEnsemble([model])
    return ChainerEngine(model, optimizer)
