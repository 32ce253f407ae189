"""The GPU path (CuPy), held to the contracts the CPU keeps.

Run where CuPy sees a GPU (``scripts/gpu_check.sh``); elsewhere these tests
are skipped, unless ``MINIBATCH_HYBRID_GPU=1`` says a GPU was asked for:
then they fail with the reason CuPy cannot be used (conftest.py).

* ``exact``: the batches every epoch sees are the CPU's, element for
  element (the same orders index the same data on the device).
* ``bound``: cuBLAS sums in its own order and Chainer's CUDA Adam orders
  its operations otherwise than its CPU Adam, so one step from a shared
  state is held to the float32 error bound of ``tests/bounds.py``, as every
  CPU engine is (``tests/test_bounds.py``): no tolerance tuned on a GPU.
"""
import chainer
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.core import reference
from minibatch_hybrid.chainer_ext import trainer as trainer_module
from minibatch_hybrid.experiments.reproduce import ReproductionConfig
from minibatch_hybrid.experiments.reproduce import run_reproduction

from test_bounds import N_UNITS
from test_bounds import chainer_step
from test_bounds import check_step
from test_bounds import ensemble_step
from test_bounds import make_state

pytestmark = pytest.mark.gpu
GPU = '@cupy:0'


@pytest.fixture(scope='module', params=['fresh', 'late'])
def shared_state(request):
    return make_state(request.param)


@pytest.mark.bound
def test_the_package_loop_steps_within_the_bound_on_the_gpu(shared_state):
    model = mh.make_model(N_UNITS, seed=0)
    check_step(*chainer_step(shared_state, model, mh.make_optimizer(model),
                             device=GPU), shared_state['expected'])


@pytest.mark.bound
def test_the_posts_chain_steps_within_the_bound_on_the_gpu(shared_state):
    model = reference.MyChain(N_UNITS)
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    check_step(*chainer_step(shared_state, model, optimizer, device=GPU),
               shared_state['expected'])


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


def test_the_trainer_runs_on_the_gpu(tmp_path):
    trainer = trainer_module.build_trainer(
        'fixed:2+random:2', 4, seed=1, device=GPU, out=str(tmp_path),
        report=False)
    trainer.run()
    log = trainer.get_extension('LogReport').log
    assert [e['epoch'] for e in log] == [1, 2, 3, 4]
    assert all(numpy.isfinite(e['main/loss']) for e in log)


def test_the_reproduction_runs_on_the_gpu():
    config = ReproductionConfig(epochs=6, device=GPU)
    lines = []
    outcome = run_reproduction(config, log=lines.append)
    assert str(outcome['device']) == GPU
    assert len(outcome['normal'].loss) == 6
    assert numpy.isfinite(outcome['hybrid'].loss).all()
    assert any(line.startswith('execution time (hybrid random)')
               for line in lines)
