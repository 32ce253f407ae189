"""Schedules in Chainer's Trainer: equivalence, exact resume, checks."""
import json
import os
import subprocess
import sys

import chainer
from chainer import training
from chainer.training import extensions
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.chainer_ext import iterators
from minibatch_hybrid.chainer_ext import trainer as trainer_module
from minibatch_hybrid.chainer_ext.extensions import CheckSchedules

import bounds

HERE = os.path.dirname(os.path.abspath(__file__))


def log_of(trainer, key='main/loss'):
    return [entry[key] for entry in
            trainer.get_extension('LogReport').log]


@pytest.mark.per_stack
def test_trainer_matches_the_package_loop(tmp_path):
    # The Trainer's updates are the package loop's BLAS calls: the same
    # weights, bit for bit, on one NumPy + BLAS stack.  Its logged loss is
    # the same 20 mini-batch losses a epoch averaged otherwise (Chainer's
    # reporter sums them in float32, the package in float64): within the
    # bound of a float32 sum of 20 terms and a division.
    trainer = trainer_module.build_trainer(
        'fixed:2+random:2', 4, seed=1, n_units=16, n_data=200,
        out=str(tmp_path), evaluate=False, report=False)
    trainer.run()
    model = mh.make_model(16, 1)
    result = mh.train(model, mh.make_optimizer(model),
                      mh.make_sin_dataset(200),
                      mh.parse_schedule('fixed:2+random:2', 1), 4)
    batches = 200 // 10
    assert (numpy.abs(numpy.array(log_of(trainer)) - result.loss) <=
            bounds.gamma(batches + 1) * result.loss).all()
    trained = trainer.updater.get_optimizer('main').target
    for (name, a), (_, b) in zip(sorted(trained.namedparams()),
                                 sorted(model.namedparams())):
        numpy.testing.assert_array_equal(a.array, b.array, err_msg=name)


def test_evaluator_sharing_the_schedule_does_not_shift_training(tmp_path):
    schedule = mh.parse_schedule('fixed:2+random:2', seed=0)
    logs = []
    for evaluate in (False, True):
        dataset = mh.make_sin_dataset(200)
        model = mh.make_model(16, 0)
        it = iterators.SerialIterator(dataset, 10, order_sampler=schedule)
        updater = training.StandardUpdater(it, mh.make_optimizer(model))
        trainer = training.Trainer(updater, (4, 'epoch'),
                                   out=str(tmp_path / str(evaluate)))
        if evaluate:
            # Its iterator uses the same schedule object and is reset at
            # every evaluation.
            trainer.extend(extensions.Evaluator(
                chainer.iterators.SerialIterator(
                    dataset, 50, repeat=False, order_sampler=schedule),
                model))
        trainer.extend(extensions.LogReport())
        trainer.run()
        logs.append(log_of(trainer))
    assert logs[0] == logs[1]


ALL_ITERATORS = [
    chainer.iterators.SerialIterator, chainer.iterators.MultithreadIterator,
    chainer.iterators.MultiprocessIterator] + [
    trainer_module.ITERATORS[name]
    for name in sorted(trainer_module.ITERATORS)]


@pytest.mark.parametrize('cls', ALL_ITERATORS)
def test_every_iterator_visits_the_schedules_orders(cls):
    # Chainer's own iterators take a schedule unchanged, as do the package's.
    schedule = mh.parse_schedule('fixed:1+random:2', seed=4)
    dataset = numpy.arange(20)
    it = cls(dataset, 5, order_sampler=schedule)
    try:
        for epoch in range(3):
            seen = numpy.concatenate([it.next() for _ in range(4)])
            numpy.testing.assert_array_equal(seen,
                                             schedule.order(epoch, 20))
            assert sorted(seen.tolist()) == list(range(20))
    finally:
        getattr(it, 'finalize', lambda: None)()


@pytest.mark.parametrize('name', sorted(trainer_module.ITERATORS))
def test_serialize_round_trip_keeps_iterating_identically(name):
    cls = trainer_module.ITERATORS[name]
    dataset = numpy.arange(20)
    first = cls(dataset, 5, order_sampler=mh.parse_schedule('random', 2))
    try:
        for _ in range(6):  # into epoch 1
            first.next()
        saved = {}
        first.serialize(chainer.serializers.DictionarySerializer(saved))
        npz = {k: numpy.asarray(v) for k, v in saved.items()}
        expected = [first.next() for _ in range(10)]
    finally:
        getattr(first, 'finalize', lambda: None)()
    second = cls(dataset, 5, order_sampler=mh.parse_schedule('random', 2))
    try:
        second.serialize(chainer.serializers.NpzDeserializer(npz))
        assert second.epoch == 1
        for batch in expected:
            numpy.testing.assert_array_equal(second.next(), batch)
    finally:
        getattr(second, 'finalize', lambda: None)()


def run_child(out, schedule, iterator, snapshot=None):
    args = [sys.executable, os.path.join(HERE, 'resume_child.py'), str(out),
            schedule, iterator, '6'] + ([str(snapshot)] if snapshot else [])
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(out, 'log')) as f:
        log = json.load(f)
    with open(os.path.join(out, 'orders.json')) as f:
        orders = json.load(f)
    return log, orders


@pytest.mark.parametrize('schedule,iterator', [
    ('random', 'serial'),
    ('fixed', 'serial'),
    ('shuffle_once', 'serial'),
    ('with_replacement', 'serial'),
    ('fixed:2+random:4', 'serial'),     # switch before the resume point
    ('fixed:4+random:2', 'serial'),     # switch after it
    ('fixed:4+random:2', 'multithread'),
    ('random:2+fixed:4', 'multiprocess'),
])
@pytest.mark.per_stack
def test_resume_in_a_new_process_is_exact(tmp_path, schedule, iterator):
    # The snapshot after epoch 3 is what a run stopped there leaves behind.
    full_log, full_orders = run_child(tmp_path / 'a', schedule, iterator)
    resumed_log, resumed_orders = run_child(
        tmp_path / 'b', schedule, iterator,
        snapshot=tmp_path / 'a' / 'snapshot_epoch_3')
    assert len(full_log) == len(resumed_log) == 6
    for key in ('main/loss', 'validation/main/loss'):
        assert [e[key] for e in resumed_log] == [e[key] for e in full_log]
    assert sorted(resumed_orders, key=int) == ['3', '4', '5', '6']
    for epoch, order in resumed_orders.items():
        assert order == full_orders[epoch], epoch
    with numpy.load(tmp_path / 'a' / 'snapshot_epoch_6') as a, \
            numpy.load(tmp_path / 'b' / 'snapshot_epoch_6') as b:
        params = [k for k in a.files if k.startswith('updater/model:main/')]
        assert len(params) >= 6
        for key in params:
            numpy.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_check_schedules_fails_before_the_first_update(tmp_path):
    dataset = mh.make_sin_dataset(100)
    model = mh.make_model(4, 0)
    it = iterators.SerialIterator(
        dataset, 10, order_sampler=mh.parse_schedule('fixed:2+random:2', 0))
    updater = training.StandardUpdater(it, mh.make_optimizer(model))
    trainer = training.Trainer(updater, (5, 'epoch'), out=str(tmp_path))
    trainer.extend(CheckSchedules())
    with pytest.raises(ValueError, match='defines 4 epochs, but the run has '
                       '5'):
        trainer.run()
    assert updater.iteration == 0


def test_check_schedules_catches_a_resume_with_a_plain_iterator(tmp_path):
    def build(stop):
        model = mh.make_model(4, 0)
        it = chainer.iterators.SerialIterator(
            mh.make_sin_dataset(100), 10,
            order_sampler=mh.parse_schedule('random', 0))
        trainer = training.Trainer(
            training.StandardUpdater(it, mh.make_optimizer(model)),
            (stop, 'epoch'), out=str(tmp_path))
        trainer.extend(CheckSchedules())
        return trainer

    first = build(2)
    first.run()
    chainer.serializers.save_npz(str(tmp_path / 'snap'), first)
    second = build(4)
    chainer.serializers.load_npz(str(tmp_path / 'snap'), second)
    with pytest.raises(ValueError, match='is at epoch 2 but its order is '
                       'that of epoch 0.*minibatch_hybrid.iterators'):
        second.run()


def test_a_schedule_shorter_than_the_run_fails_when_it_ends():
    # Without CheckSchedules, the error comes when the run passes the end.
    it = chainer.iterators.SerialIterator(
        numpy.arange(10), 5, order_sampler=mh.parse_schedule('fixed:1', 0))
    it.next()
    it.next()  # ends epoch 0, the last; asks for epoch 1 (the lookahead)
    it.next()
    with pytest.raises(ValueError, match='went on past them'):
        it.next()  # ends epoch 1, which the schedule does not have


@pytest.mark.slow
def test_script_runs_and_resumes(tmp_path):
    script = os.path.join(HERE, '..', 'scripts', 'train_chainer.py')
    out = tmp_path / 'out'
    args = [sys.executable, script, '-e', '4', '-u', '8', '-o', str(out),
            '--snapshot-every', '2']
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert {'log', 'loss.png', 'snapshot_epoch_2',
            'snapshot_epoch_4'} <= set(os.listdir(out))
    with open(out / 'loss.png', 'rb') as f:
        assert f.read(4) == b'\x89PNG'
    resumed = tmp_path / 'resumed'
    proc = subprocess.run(
        args[:-4] + ['-o', str(resumed), '-r', str(out / 'snapshot_epoch_2'),
                     '--no-report'],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(out / 'log') as f, open(resumed / 'log') as g:
        assert [e['main/loss'] for e in json.load(f)] == \
            [e['main/loss'] for e in json.load(g)]
    bad = subprocess.run(args + ['-r', str(out / 'missing')],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert 'snapshot' in bad.stderr and 'does not exist' in bad.stderr
