"""The GPU path agrees with the CPU (run where CuPy sees a GPU)."""
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid import trainer as trainer_module
from minibatch_hybrid.ensemble import Ensemble
from minibatch_hybrid.reproduce import ReproductionConfig
from minibatch_hybrid.reproduce import run_reproduction

pytestmark = pytest.mark.gpu
GPU = '@cupy:0'


def run_single(device):
    model = mh.make_model(100, seed=2)
    model.to_device(mh.device.get_device(device))
    return mh.train(model, mh.make_optimizer(model), mh.make_sin_dataset(),
                    mh.parse_schedule('fixed:2+random:2', 2), 4,
                    heldout=mh.data.make_heldout_dataset(500, 2))


def test_single_model_loop_agrees_with_cpu():
    cpu, gpu = run_single('@numpy'), run_single(GPU)
    numpy.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-4)
    numpy.testing.assert_allclose(gpu.train_loss, cpu.train_loss, rtol=1e-4)
    assert gpu.heldout_mse == pytest.approx(cpu.heldout_mse, rel=1e-4)


def run_ensemble(device):
    ensemble = Ensemble.from_seeds([0, 1, 2, 3], 100)
    ensemble.to_device(mh.device.get_device(device))
    schedules = [mh.parse_schedule(t, s) for t in ('random', 'hybrid:2')
                 for s in (0, 1)]
    return mh.train(ensemble, mh.make_optimizer(ensemble),
                    mh.make_sin_dataset(), schedules, 4)


def test_ensemble_agrees_with_cpu():
    cpu, gpu = run_ensemble('@numpy'), run_ensemble(GPU)
    numpy.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-4)
    numpy.testing.assert_allclose(gpu.train_loss[-1], cpu.train_loss[-1],
                                  rtol=1e-4)


def test_trainer_agrees_with_cpu(tmp_path):
    logs = []
    for device in ('@numpy', GPU):
        trainer = trainer_module.build_trainer(
            'fixed:2+random:2', 4, seed=1, device=device,
            out=str(tmp_path / device.strip('@').replace(':', '')),
            report=False)
        trainer.run()
        logs.append([(e['main/loss'], e['validation/main/loss'])
                     for e in trainer.get_extension('LogReport').log])
    numpy.testing.assert_allclose(logs[1], logs[0], rtol=1e-4)


def test_reproduction_runs_on_the_gpu():
    config = ReproductionConfig(epochs=6, device=GPU)
    lines = []
    outcome = run_reproduction(config, log=lines.append)
    assert str(outcome['device']) == GPU
    assert len(outcome['normal'].loss) == 6
    assert numpy.isfinite(outcome['hybrid'].loss).all()
    assert any(line.startswith('execution time (hybrid random)')
               for line in lines)
