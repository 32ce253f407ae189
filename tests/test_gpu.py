"""The GPU path (CuPy), held to the contracts the CPU keeps.

Run where CuPy sees a GPU (``scripts/gpu_check.sh``); elsewhere the tests
marked ``gpu`` are skipped, unless ``MINIBATCH_HYBRID_GPU=1`` says a GPU was
asked for: then they fail with the reason CuPy cannot be used (conftest.py).
The tests at the end, not marked, run everywhere: how a missing cuDNN and
an unusable GPU are met, with CuPy's failures simulated.

* ``exact``: the batches every epoch sees are the CPU's, element for
  element (the same orders index the same data on the device).
* ``per_stack``: a user's own Chainer model trained by a Trainer with this
  package's schedule and iterator, snapshotted and resumed on the GPU, sees
  the same batches and ends with the same weights, bit for bit, as an
  uninterrupted run on the GPU (one device, the same kernels); on the CPU
  too, in every leg.
* ``bound``: cuBLAS sums in its own order and Chainer's CUDA Adam orders
  its operations otherwise than its CPU Adam, so one step from a shared
  state is held to the float32 error bound of ``tests/bounds.py``, as every
  CPU engine is (``tests/test_bounds.py``): no tolerance tuned on a GPU.
"""
import copy
import os
import subprocess
import sys

import chainer
import chainer.functions as F
import chainer.links as L
from chainer import training
from chainer.training import extensions
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.core import reference
from minibatch_hybrid import _compat
from minibatch_hybrid import errors
from minibatch_hybrid.chainer_ext import iterators
from minibatch_hybrid.chainer_ext import trainer as trainer_module
from minibatch_hybrid.core import device as device_module
from minibatch_hybrid.experiments.reproduce import ReproductionConfig
from minibatch_hybrid.experiments.reproduce import run_reproduction

from test_bounds import N_UNITS
from test_bounds import chainer_step
from test_bounds import check_step
from test_bounds import ensemble_step
from test_bounds import make_state

gpu = pytest.mark.gpu
GPU = '@cupy:0'


@pytest.fixture(scope='module', params=['fresh', 'late'])
def shared_state(request):
    return make_state(request.param)


@gpu
@pytest.mark.bound
def test_the_package_loop_steps_within_the_bound_on_the_gpu(shared_state):
    model = mh.make_model(N_UNITS, seed=0)
    check_step(*chainer_step(shared_state, model, mh.make_optimizer(model),
                             device=GPU), shared_state['expected'])


@gpu
@pytest.mark.bound
def test_the_posts_chain_steps_within_the_bound_on_the_gpu(shared_state):
    model = reference.MyChain(N_UNITS)
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    check_step(*chainer_step(shared_state, model, optimizer, device=GPU),
               shared_state['expected'])


@gpu
@pytest.mark.bound
def test_the_numpy_engine_steps_within_the_bound_on_the_gpu(shared_state):
    for replica in ensemble_step(shared_state, device=GPU):
        check_step(*replica, shared_state['expected'])


class Recording(mh.MyChain):
    """MyChain that keeps, on the CPU, every mini-batch it is given."""

    def __init__(self, n_units, seed):
        super().__init__(n_units)
        self.copyparams(mh.make_model(n_units, seed))
        self.batches = []

    def forward(self, x, t):
        cpu = chainer.backend.CpuDevice()
        self.batches.append((cpu.send(chainer.as_array(x)),
                             cpu.send(chainer.as_array(t))))
        return super().forward(x, t)


@gpu
@pytest.mark.exact
def test_every_epoch_sees_the_cpus_batches_on_the_gpu():
    seen = {}
    for device in ('@numpy', GPU):
        model = Recording(8, seed=2)
        model.to_device(mh.core.device.get_device(device))
        mh.train(model, mh.make_optimizer(model), mh.make_sin_dataset(100),
                 mh.parse_schedule('fixed:2+random:2', 2), 4, batchsize=7,
                 train_loss='never')
        seen[device] = model.batches
    assert len(seen[GPU]) == len(seen['@numpy']) == 4 * 15
    for (x, t), (x_cpu, t_cpu) in zip(seen[GPU], seen['@numpy']):
        numpy.testing.assert_array_equal(x, x_cpu)
        numpy.testing.assert_array_equal(t, t_cpu)


@gpu
def test_the_trainer_runs_on_the_gpu(tmp_path):
    trainer = trainer_module.build_trainer(
        'fixed:2+random:2', 4, seed=1, device=GPU, out=str(tmp_path),
        report=False)
    trainer.run()
    log = trainer.get_extension('LogReport').log
    assert [e['epoch'] for e in log] == [1, 2, 3, 4]
    assert all(numpy.isfinite(e['main/loss']) for e in log)


@gpu
def test_the_reproduction_runs_on_the_gpu():
    config = ReproductionConfig(epochs=6, device=GPU)
    lines = []
    outcome = run_reproduction(config, log=lines.append)
    assert str(outcome['device']) == GPU
    assert len(outcome['normal'].loss) == 6
    assert numpy.isfinite(outcome['hybrid'].loss).all()
    assert any(line.startswith('execution time (hybrid random)')
               for line in lines)


class UserNet(chainer.Chain):
    """A user's own model: a plain Chain, not the package's MyChain.

    It keeps, on the CPU, every input mini-batch it is given.
    """

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.hidden = L.Linear(1, 12)
            self.out = L.Linear(12, 1)
        self.batches = []

    def forward(self, x, t):
        self.batches.append(chainer.backend.CpuDevice().send(x))
        loss = F.mean_squared_error(self.out(F.relu(self.hidden(x))), t)
        chainer.report({'loss': loss}, self)
        return loss


def train_user_net(template, device, out, epochs, snapshot=None):
    """Trains a copy of ``template`` in a Trainer with the hybrid schedule.

    The Trainer saves a snapshot at epoch 2.

    Args:
        template (UserNet): The initial weights (copied).
        device: A Chainer device specifier.
        out: The Trainer's output folder.
        epochs (int): Where the Trainer stops.
        snapshot (str): A snapshot to resume from, or ``None``.

    Returns:
        tuple: The final weights by name and the mini-batches' inputs, on
        the CPU, and the number of iterations.

    """
    device = chainer.get_device(device)
    model = copy.deepcopy(template)
    model.to_device(device)
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    iterator = iterators.SerialIterator(
        mh.make_sin_dataset(60), 8,
        order_sampler=mh.parse_schedule('fixed:2+random:3', seed=5))
    updater = training.StandardUpdater(iterator, optimizer, device=device)
    trainer = training.Trainer(updater, (epochs, 'epoch'), out=str(out))
    trainer.extend(extensions.snapshot(filename='snapshot_{.updater.epoch}'),
                   trigger=(2, 'epoch'))
    if snapshot is not None:
        chainer.serializers.load_npz(snapshot, trainer)
    trainer.run()
    cpu = chainer.backend.CpuDevice()
    weights = {name: cpu.send(p.array) for name, p in model.namedparams()}
    return weights, model.batches, updater.iteration


@pytest.mark.per_stack
@pytest.mark.parametrize('device', [
    '@numpy', pytest.param(GPU, marks=gpu)])
def test_a_users_chain_resumes_exactly_in_a_trainer(tmp_path, device):
    template = UserNet()
    weights, batches, iterations = train_user_net(
        template, device, tmp_path / 'whole', 5)
    # 60 points in batches of 8: 7.5 an epoch, so the snapshot at epoch 2
    # falls inside a batch that spans two epochs' orders.
    assert iterations == 38
    interrupted = train_user_net(template, device, tmp_path / 'cut', 2)
    resumed, rest, _ = train_user_net(
        template, device, tmp_path / 'resumed', 5,
        snapshot=str(tmp_path / 'cut' / 'snapshot_2'))
    done = len(interrupted[1])
    assert done + len(rest) == len(batches)
    for a, b in zip(interrupted[1] + rest, batches):
        numpy.testing.assert_array_equal(a, b)
    assert sorted(resumed) == sorted(weights)
    for name in weights:
        numpy.testing.assert_array_equal(resumed[name], weights[name],
                                         err_msg=name)


# Without a GPU: CuPy's failures, simulated.

def test_a_gpu_that_cannot_be_made_current_is_one_line(monkeypatch):
    class Unusable:
        def use(self):
            raise RuntimeError(
                'cudaErrorInvalidDevice: invalid device ordinal\n(more)')

        def __str__(self):
            return '@cupy:3'

    monkeypatch.setattr(chainer, 'get_device', lambda spec: Unusable())
    with pytest.raises(errors.SettingsError) as e:
        device_module.get_device('@cupy:3')
    message = str(e.value)
    assert '\n' not in message
    assert message.startswith("cannot use device '@cupy:3'")
    assert 'cudaErrorInvalidDevice: invalid device ordinal (more)' in message
    assert isinstance(e.value.__cause__, RuntimeError)


def test_a_missing_cudnn_is_not_blamed_where_cupy_works(monkeypatch):
    cuda = chainer.backends.cuda
    monkeypatch.setattr(cuda, 'available', True)
    monkeypatch.setattr(cuda, '_resolution_error', ModuleNotFoundError(
        "No module named 'cupy.cuda.cudnn'"), raising=False)

    def refuse(spec):
        raise ValueError('no such device: {}'.format(spec))

    monkeypatch.setattr(chainer, 'get_device', refuse)
    with pytest.raises(errors.SettingsError) as e:
        device_module.get_device('@cupy:1')
    assert 'no such device' in str(e.value)
    assert 'cudnn' not in str(e.value).lower()


def test_a_broken_cupy_is_named_as_the_cause(monkeypatch):
    cuda = chainer.backends.cuda
    monkeypatch.setattr(cuda, 'available', False)
    monkeypatch.setattr(cuda, '_resolution_error', ImportError(
        'libcudart.so.13: cannot open shared object file'), raising=False)

    def refuse(spec):
        raise RuntimeError('CUDA environment is not correctly set up')

    monkeypatch.setattr(chainer, 'get_device', refuse)
    for spec in ('@cupy:0', 0, '0'):
        with pytest.raises(errors.SettingsError,
                           match='ImportError: libcudart.so.13: cannot open'):
            device_module.get_device(spec)


#: A CuPy that imports, as CuPy 14 does, without cupy.cuda.cudnn: enough of
#: it for chainer's import (any other name is a do-nothing callable).
FAKE_CUPY = {
    'cupy/__init__.py': """
__version__ = '14.0.0'
from cupy import cuda  # noqa


class ndarray:
    pass


class _Anything:
    def __call__(self, *args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]  # a decorator
        return _Anything()

    def __getattr__(self, name):
        return _Anything()


def __getattr__(name):
    return _Anything()
""",
    'cupy/cuda/__init__.py': """
class Device:
    def __init__(self, device=None):
        self.id = device or 0


class Event:
    pass


class Stream:
    pass
""",
    'cupy/cuda/cublas.py': '',
    'cupy/_util.py': 'class PerformanceWarning(Warning):\n    pass\n',
    'cupyx/__init__.py': '',
    'cupyx/scipy/__init__.py': '',
    'cupyx/scipy/linalg.py': '',
    'cupyx/scipy/special.py': '',
}

#: chainer imported with only the layer's NumPy shims and its filters of
#: the CPU stack's warnings (_compat.py loaded alone, as in test_compat).
PLAIN_IMPORT = """
import importlib.util, sys, warnings
spec = importlib.util.spec_from_file_location('compat_alone', sys.argv[1])
compat = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compat)
for category, message in compat.IMPORT_WARNINGS:
    warnings.filterwarnings('ignore', message=message, category=category)
compat._ensure_numpy_distutils()
compat._ensure_numpy_sctypes()
import chainer
"""

REPORT_CUDNN = """
import logging
# On its own logger: numpy.distutils, imported by chainer on Python 3.11,
# sets the root logger's level.
handler = logging.StreamHandler()
handler.setFormatter(logging.Formatter('%(name)s: %(message)s'))
logging.getLogger('minibatch_hybrid').addHandler(handler)
logging.getLogger('minibatch_hybrid').setLevel(logging.INFO)
from minibatch_hybrid._compat import chainer
from minibatch_hybrid import _compat
cuda = chainer.backends.cuda
cuda.check_cuda_available()  # warns, unless cuDNN was turned off
print(cuda.available, cuda.cudnn_enabled, chainer.config.use_cudnn,
      'cuDNN off' in _compat.APPLIED)
"""


@pytest.mark.parametrize('chainer_cudnn', [None, '0'])
def test_a_cupy_without_cudnn_imports_with_cudnn_off(tmp_path,
                                                     chainer_cudnn):
    for name, text in FAKE_CUPY.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path)] + sys.path))
    env.pop('CHAINER_CUDNN', None)
    if chainer_cudnn is not None:
        env['CHAINER_CUDNN'] = chainer_cudnn
    plain = subprocess.run(
        [sys.executable, '-W', 'error', '-c', PLAIN_IMPORT, _compat.__file__],
        env=env,
        capture_output=True, text=True, timeout=120)
    proc = subprocess.run(
        [sys.executable, '-W', 'error', '-c', REPORT_CUDNN], env=env,
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if chainer_cudnn is None:
        # Without the layer, chainer's warning is an error at import ...
        assert plain.returncode != 0
        assert 'cuDNN is not enabled' in plain.stderr
        # ... with it, cuDNN is off, as CHAINER_CUDNN=0 would make it, and
        # that is said once, with the reason.
        assert proc.stdout.split() == ['True', 'False', 'never', 'True']
        notes = proc.stderr.splitlines()
        assert len(notes) == 1, proc.stderr
        assert notes[0].startswith('minibatch_hybrid: CuPy 14.0.0 has no '
                                   "usable cuDNN (No module named 'cupy.")
    else:  # the user's choice: nothing to do
        assert plain.returncode == 0, plain.stderr
        assert proc.stdout.split() == ['True', 'False', 'auto', 'False']
        assert proc.stderr == ''
