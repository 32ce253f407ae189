"""The plateau's diagnosis and cure: activity, coverage, revival, the
Trainer extension and a study's revived arms."""
import csv
import json
import os
import subprocess
import sys

import chainer
import chainer.functions as F
import chainer.links as L
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid import kernels
from minibatch_hybrid.core.diagnosis import Activity
from minibatch_hybrid.core.diagnosis import chain_activity
from minibatch_hybrid.core.diagnosis import params_activity
from minibatch_hybrid.core.engine import ChainerEngine
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.core.model import make_optimizer
from minibatch_hybrid.core.model import stack_models
from minibatch_hybrid.core.revival import Revival
from minibatch_hybrid.core.revival import fresh_weights
from minibatch_hybrid.engines.native import NativeEnsemble
from minibatch_hybrid.engines.stacked import Ensemble
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.experiments import plateau
from minibatch_hybrid.experiments import remedies
from minibatch_hybrid.experiments import stats
from minibatch_hybrid.experiments.study.config import StudyConfig
from minibatch_hybrid.experiments.study.run import train_chunk
from minibatch_hybrid.extensions import ReviveDeadUnits
from minibatch_hybrid.extensions import revive_chain

import _marks
import native_reference as ref
from test_faults import run_main

HERE = os.path.dirname(os.path.abspath(__file__))
f32 = numpy.float32


def reference_activity(params, x):
    """Counts and reach of one replica in the kernels' arithmetic
    (native_reference: each output one chain of fused multiply-adds)."""
    W1, b1 = params['l1/W'][:, 0], params['l1/b']
    W2, b2 = params['l2/W'], params['l2/b']
    xs = numpy.asarray(x, f32)[:, 0]
    h1 = ref.relu(xs[:, None] * W1[None, :] + b1[None, :])
    z = numpy.zeros((len(xs), len(b1)), f32)
    for i in range(len(b1)):
        z = ref.fma32(h1[:, i:i + 1], W2[None, :, i], z)
    h2 = ref.relu(z + b2[None, :])
    counts = numpy.stack([(h > 0).sum(0) for h in (h1, h2)])
    reach = numpy.stack([numpy.where(h > 0, xs[:, None], -numpy.inf).max(0)
                         for h in (h1, h2)]).astype(f32)
    return counts, reach


def trained_native(seeds, epochs, schedule='fixed'):
    dataset = mh.make_sin_dataset(120)
    ensemble = NativeEnsemble.from_seeds(seeds, n_units=12)
    mh.train(ensemble, None, dataset,
             [mh.parse_schedule(schedule, s) for s in seeds], epochs,
             train_loss='never')
    return ensemble, dataset


@_marks.needs_native
@pytest.mark.exact
def test_native_activity_is_the_kernels_forward_on_every_kernel_set():
    ensemble, dataset = trained_native([0, 1, 2, 5], 15)
    params = ensemble.arrays()
    for name in kernels.supported_kernels():
        with kernels.using_kernels(name):
            got = ensemble.activity(dataset.x)
        for k in range(len(ensemble)):
            counts, reach = reference_activity(
                {n: a[k] for n, a in params.items()}, dataset.x)
            numpy.testing.assert_array_equal(got.counts[k], counts)
            numpy.testing.assert_array_equal(got.reach[k], reach)
    # Not a trivial comparison: some units are dead, some active at only
    # part of the data.
    assert got.dead().sum() > 0
    assert ((got.counts > 0) & (got.counts < 120)).any()


@pytest.mark.per_stack
def test_a_chains_activity_equals_its_stacked_weights_activity():
    models = [make_model(16, seed) for seed in (0, 3)]
    x = mh.make_sin_dataset(90).x
    stacked = params_activity(stack_models(models), x)
    for k, model in enumerate(models):
        links, one = chain_activity(model, x)
        assert [link.name for link in links] == ['l1', 'l2', 'l3']
        numpy.testing.assert_array_equal(one.counts[0], stacked.counts[k])
        numpy.testing.assert_array_equal(one.reach[0], stacked.reach[k])


def test_coverage_and_dead_units_by_hand():
    # Layer 1: unit 0 active up to x = 2, unit 1 never; layer 2: none.
    counts = numpy.array([[[3, 0], [0, 0]]])
    reach = numpy.array([[[2.0, -numpy.inf], [-numpy.inf, -numpy.inf]]])
    activity = Activity(counts, reach)
    assert activity.dead().tolist() == [[1, 2]]
    coverage = activity.coverage()
    assert coverage[0, 0] == 2.0 and numpy.isnan(coverage[0, 1])
    with pytest.raises(SettingsError, match='one shape'):
        Activity(counts, reach[0])


def test_fresh_weights_are_decided_by_the_seed_and_the_epoch():
    a = fresh_weights(5, 250, 2, 100, 100)
    assert a.dtype == f32 and a.shape == (100, 100)
    numpy.testing.assert_array_equal(a, fresh_weights(5, 250, 2, 100, 100))
    assert not numpy.array_equal(a, fresh_weights(5, 251, 2, 100, 100))
    assert not numpy.array_equal(a, fresh_weights(6, 250, 2, 100, 100))
    # LeCun normal: standard deviation 1 / sqrt(fan in).
    assert abs(a.std() * 10 - 1) < 0.05


#: MyChain's names of hidden layer l's incoming weights and bias, and the
#: next layer's weights.
LAYER_NAMES = {1: ('l1/W', 'l1/b', 'l2/W'), 2: ('l2/W', 'l2/b', 'l3/W')}


def check_revived(before, after, dead, revived, seeds, epoch, layers):
    """Checks a revival of ``layers`` on replica-stacked arrays: only the
    dead units' weights, biases, outgoing weights and their moments
    changed, to the fresh weights, zeros and zeros."""
    for k in range(len(seeds)):
        keep = {which: {name: numpy.ones(a[k].shape, bool)
                        for name, a in before[which].items()}
                for which in before}
        for layer in layers if k in revived else ():
            d = dead[k, layer - 1]
            w_in, b_in, w_out = LAYER_NAMES[layer]
            rows = fresh_weights(seeds[k], epoch, layer,
                                 *before['params'][w_in][k].shape)
            p = after['params']
            numpy.testing.assert_array_equal(p[w_in][k][d], rows[d])
            assert (p[b_in][k][d] == 0).all()
            # Outgoing weights zero, but in rows that the next layer's
            # revival redraws whole (their own outgoing weights are zero).
            rows_kept = ~dead[k, layer] if layer + 1 in layers \
                else slice(None)
            assert (p[w_out][k][rows_kept][:, d] == 0).all()
            for which in keep:
                keep[which][w_in][d] = False
                keep[which][b_in][d] = False
                keep[which][w_out][:, d] = False
        for which in before:
            for name, b in before[which].items():
                a, mask = after[which][name][k], keep[which][name]
                numpy.testing.assert_array_equal(a[mask], b[k][mask])
                if which != 'params':
                    assert (a[~mask] == 0).all()


@_marks.needs_native
@pytest.mark.exact
@pytest.mark.parametrize('layers', [(1,), (2,), (1, 2)])
def test_revival_keeps_the_outputs_and_only_what_it_must_change(layers):
    seeds = [0, 1, 2, 5, 0]
    ensemble, dataset = trained_native(seeds, 20)
    before = {w: ensemble.arrays(w) for w in ('params', 'm', 'v')}
    loss = ensemble.evaluate(dataset.x, dataset.y)
    dead = ensemble.activity(dataset.x).dead_units()
    revival = Revival(20, [1, 2, 4], seeds, layers)
    revival(ensemble, dataset.x)
    after = {w: ensemble.arrays(w) for w in ('params', 'm', 'v')}
    check_revived(before, after, dead, {1, 2, 4}, seeds, 20, layers)
    assert revival.revived.tolist() == [
        [int(dead[k, layer - 1].sum()) if k in (1, 2, 4) else 0
         for layer in layers] for k in range(5)]
    assert revival.revived.sum() > 0
    # The outputs at the training points are the same, bit for bit.
    numpy.testing.assert_array_equal(
        ensemble.evaluate(dataset.x, dataset.y), loss)
    # Replicas 0 and 4 share a seed and weights; only 4 was revived, and
    # some revived units are alive now.
    now = ensemble.activity(dataset.x).dead_units()
    assert now[4].sum() < dead[4].sum()
    numpy.testing.assert_array_equal(now[0], dead[0])


def test_a_revival_names_what_it_needs():
    with pytest.raises(SettingsError, match=r'numbered 0 to 1 .* \[2\]'):
        Revival(3, [2], [0, 1])
    model = make_model(4, 0)
    single = ChainerEngine(model, make_optimizer(model))
    with pytest.raises(SettingsError, match='the revival has 2 seeds for an '
                       'ensemble of 1 replicas'):
        Revival(3, [0], [0, 1])(single, mh.make_sin_dataset(10).x)


@pytest.mark.per_stack
def test_one_model_is_revived_as_the_extension_revives_it():
    # One MyChain is an engine of one replica: Revival acts on it as
    # revive_chain does (it was refused, as if it were another shape).
    dataset = mh.make_sin_dataset(150)
    model, twin = make_model(16, 4), make_model(16, 4)
    optimizer, twin_optimizer = make_optimizer(model), make_optimizer(twin)
    for m, o in ((model, optimizer), (twin, twin_optimizer)):
        mh.train(m, o, dataset, mh.parse_schedule('fixed', 4), 3,
                 train_loss='never')
    revival = Revival(3, [0], [4])
    revival(ChainerEngine(model, optimizer), dataset.x)
    assert revival.revived.sum() > 0
    assert sum(revive_chain(twin, dataset.x, 4, 3)) == revival.revived.sum()
    for (name, a), (_, b) in zip(sorted(model.namedparams()),
                                 sorted(twin.namedparams())):
        numpy.testing.assert_array_equal(a.array, b.array, err_msg=name)
        for key in ('m', 'v'):
            numpy.testing.assert_array_equal(
                a.update_rule.state[key], b.update_rule.state[key],
                err_msg=name + key)


@pytest.mark.per_stack
def test_the_numpy_engine_revives_as_the_extension_revives_one_model():
    # The same operation on a replica of the numpy engine (Revival) and on
    # that replica as one MyChain with its Adam (revive_chain, what the
    # Trainer extension runs): the same arrays, bit for bit.
    seeds, dataset = [4, 9], mh.make_sin_dataset(150)
    ensemble = Ensemble([make_model(16, s) for s in seeds])
    engine = ChainerEngine(ensemble, make_optimizer(ensemble))
    mh.train(ensemble, engine.optimizer, dataset,
             [mh.parse_schedule('fixed', s) for s in seeds], 3,
             train_loss='never')
    model = engine.replica(1)
    single = ChainerEngine(model, make_optimizer(model))
    for which in ('m', 'v'):
        single.load(which, {name: a[1:2] for name, a in
                            engine.arrays(which).items()})
    Revival(3, [1], seeds)(engine, dataset.x)
    assert sum(revive_chain(model, dataset.x, seeds[1], 3)) > 0
    for which in ('params', 'm', 'v'):
        for name, a in single.arrays(which).items():
            numpy.testing.assert_array_equal(
                a[0], engine.arrays(which)[name][1], err_msg=which + name)


class Deep(chainer.Chain):
    """A user's chain: three hidden layers, other names."""

    def __init__(self, n=12):
        super().__init__()
        rng = numpy.random.RandomState(1)
        init = chainer.initializers.LeCunNormal(rng=rng)
        with self.init_scope():
            self.a = L.Linear(1, n, initialW=init)
            self.b = L.Linear(n, n, initialW=init)
            self.c = L.Linear(n, n, initialW=init)
            self.d = L.Linear(n, 1, initialW=init)

    def forward(self, x):
        h = F.relu(self.a(x))
        h = F.relu(self.b(h))
        return self.d(F.relu(self.c(h)))


@pytest.mark.per_stack
def test_revive_chain_keeps_a_user_chains_function():
    model = Deep()
    optimizer = chainer.optimizers.Adam().setup(model)
    dataset = mh.make_sin_dataset(100)
    x, y = dataset.x, dataset.y
    for i in range(0, 100, 10):  # some Adam state, some dead units
        model.cleargrads()
        F.mean_squared_error(model(x[i:i + 10]), y[i:i + 10]).backward()
        optimizer.update()
    with chainer.using_config('train', False):
        out = model(x).array.copy()
    _, activity = chain_activity(model, x)
    revived = revive_chain(model, x, 0, 1, 'all')
    assert revived == tuple(int(d) for d in activity.dead()[0])
    assert sum(revived) > 0
    with chainer.using_config('train', False):
        numpy.testing.assert_array_equal(model(x).array, out)
    for link in (model.a, model.b, model.c):
        dead = activity.dead_units()[0][[model.a, model.b, model.c]
                                        .index(link)]
        if dead.any():
            assert (link.W.update_rule.state['m'][dead] == 0).all()
            assert (link.b.update_rule.state['v'][dead] == 0).all()


def test_a_classifier_around_mychain_and_other_optimizer_state():
    # Classifier(MyChain()): the diagnosis runs MyChain.predict; AMSGrad's
    # vhat of the revived entries is zeroed as m and v are.
    dataset = mh.make_sin_dataset(100)
    model = L.Classifier(make_model(16, 4), lossfun=F.mean_squared_error)
    optimizer = chainer.optimizers.Adam(amsgrad=True).setup(model)
    for i in range(0, 100, 10):
        model.cleargrads()
        F.mean_squared_error(model.predictor.predict(dataset.x[i:i + 10]),
                             dataset.y[i:i + 10]).backward()
        optimizer.update()
    links, activity = chain_activity(model, dataset.x)
    assert [link.name for link in links] == ['l1', 'l2', 'l3']
    dead = activity.dead_units()[0, 1]
    assert dead.any()
    revive_chain(model, dataset.x, 0, 1)
    state = model.predictor.l2.W.update_rule.state
    assert set(state) == {'m', 'v', 'vhat'}
    for key in state:
        assert (state[key][dead] == 0).all(), key
    assert (model.predictor.l3.W.update_rule.state['vhat'][:, dead] ==
            0).all()


def test_the_extension_refuses_a_chain_it_cannot_serve_before_training(
        tmp_path):
    from chainer import training
    dataset = mh.make_sin_dataset(20)
    model = L.Classifier(Deep(), lossfun=F.mean_squared_error)
    model.compute_accuracy = False
    optimizer = chainer.optimizers.Adam().setup(model)
    iterator = chainer.iterators.SerialIterator(dataset, 10)
    trainer = training.Trainer(training.StandardUpdater(iterator, optimizer),
                               (3, 'epoch'), out=str(tmp_path))
    trainer.extend(ReviveDeadUnits(dataset.x, 0, epochs=(2,), layers=(4,)))
    with pytest.raises(SettingsError, match='from 1 to 3'):
        trainer.run()
    assert optimizer.t == 0  # refused before the first update


def test_bad_revivals_are_refused_with_the_fix():
    x = mh.make_sin_dataset(20).x
    single = L.Linear(1, 1)
    with pytest.raises(SettingsError, match='two or more'):
        chain_activity(single, x)
    with pytest.raises(SettingsError, match='from 1 to 3'):
        revive_chain(Deep(), x, 0, 1, (4,))
    with pytest.raises(SettingsError, match='shape \\(N, 1\\)'):
        chain_activity(Deep(), numpy.zeros((3, 2), f32))
    for bad in [(), (0,), (1.5,), 'x', (True,)]:
        with pytest.raises(SettingsError, match='hidden-layer numbers'):
            ReviveDeadUnits(x, 0, layers=bad)
    for bad in [(), (0,), (2.0,)]:
        with pytest.raises(SettingsError, match='positive integers'):
            ReviveDeadUnits(x, 0, epochs=bad)
    for bad in [2.5, True, 'soon']:
        with pytest.raises(SettingsError, match='takes an epoch'):
            StudyConfig(['random'], 2, epochs=10, revive=bad)
    with pytest.raises(SettingsError, match='non-negative integer'):
        ReviveDeadUnits(x, -1)


def run_child(out, *args):
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, 'revive_child.py'), str(out)] +
        [str(a) for a in args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(out, 'revived.json')) as f:
        return json.load(f)


@pytest.mark.per_stack
def test_a_trainer_with_revival_resumes_exactly_in_a_new_process(tmp_path):
    # A user's own chain (tests/revive_child.py), revived after epoch 3 of
    # 6; resumed from the snapshots before and after the revival.
    full = run_child(tmp_path / 'full', 6, 3)
    assert list(full) == ['3'] and sum(full['3']) > 0
    before = run_child(tmp_path / 'before', 6, 3,
                       tmp_path / 'full' / 'snapshot_epoch_2')
    after = run_child(tmp_path / 'after', 6, 3,
                      tmp_path / 'full' / 'snapshot_epoch_4')
    assert before == full   # it revived, as the full run did
    assert after == {}      # the revival was in the snapshot already
    with numpy.load(tmp_path / 'full' / 'snapshot_epoch_6') as a:
        keys = [k for k in a.files if k.startswith('updater/')]
        assert any('hid/W' in k for k in keys)
        for run in ('before', 'after'):
            with numpy.load(tmp_path / run / 'snapshot_epoch_6') as b:
                for key in keys:
                    numpy.testing.assert_array_equal(a[key], b[key],
                                                     err_msg=run + key)


def small_config(**settings):
    values = dict(seeds=2, epochs=12, n_units=10, chunk=2, revive=6)
    values.update(settings)
    return StudyConfig(['random', 'fixed:6+random:6'], **values)


@_marks.needs_native
@pytest.mark.exact
def test_revived_arms_have_the_same_bits_on_every_kernel_set():
    config = small_config()
    assert config.labels() == ['random', 'fixed:6+random:6',
                               'random revive@6', 'fixed:6+random:6 revive@6']
    runs = {}
    for name in kernels.supported_kernels():
        with kernels.using_kernels(name):
            runs[name] = train_chunk(config, 'native', [3, 4])
    first = runs[kernels.supported_kernels()[0]]
    for name, got in runs.items():
        for key in ('loss', 'final_loss', 'heldout_mse', 'coverage'):
            numpy.testing.assert_array_equal(got[key], first[key],
                                             err_msg=name + key)
    # The revived arms differ from their schedules after epoch 6 only.
    loss = first['loss']
    numpy.testing.assert_array_equal(loss[2:, :, :6], loss[:2, :, :6])
    assert (loss[2:, :, 6:] != loss[:2, :, 6:]).any()
    # Adding revived arms leaves the schedules' own runs as they were.
    plain = train_chunk(small_config(revive=None), 'native', [3, 4])
    numpy.testing.assert_array_equal(plain['loss'], loss[:2])
    numpy.testing.assert_array_equal(plain['coverage'],
                                     first['coverage'][:2])


def test_study_revive_writes_the_arms_and_coverage(tmp_path, capsys):
    out = tmp_path / 's'
    status, stdout, err = run_main(capsys, 'study', '--quick', '--seeds',
                                   '2', '--revive', '20', '--out', str(out))
    assert status == 0, err
    assert 'fixed:20+random:20 revive@20' in stdout
    with open(out / 'final.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['schedule'] for r in rows[::2]] == [
        'random', 'fixed:20+random:20', 'random revive@20',
        'fixed:20+random:20 revive@20']
    coverage = [float(r['coverage']) for r in rows]
    assert all(0 < c <= 2 * numpy.pi + 1e-6 for c in coverage)
    with open(out / 'summary.json') as f:
        summary = json.load(f)['summary']
    low, high = summary['schedules']['random revive@20']['stuck_ci95']
    assert 0 <= low <= high <= 1


@pytest.mark.parametrize('args,message', [
    (['--revive', '0'], 'from 1 to 39'),
    (['--revive', '40'], 'from 1 to 39'),
    (['--revive', 'soon'], "takes an epoch"),
    (['--revive', 'switch', '--schedules', 'random,fixed'], 'none of'),
])
def test_bad_revive_values_are_one_line(tmp_path, capsys, args, message):
    status, stdout, err = run_main(capsys, 'study', '--quick', '--out',
                                   str(tmp_path / 'o'), *args)
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / 'o').exists()


def test_sweep_revives_at_each_switch(tmp_path, capsys):
    status, stdout, err = run_main(
        capsys, 'sweep', '--quick', '--seeds', '2', '--fractions',
        '0,0.25,0.5', '--no-reverse', '--revive', 'switch', '--out',
        str(tmp_path / 'w'))
    assert status == 0, err
    with open(tmp_path / 'w' / 'sweep.csv') as f:
        rows = list(csv.DictReader(f))
    revived = [r['schedule'] for r in rows
               if r['order'] == 'fixed first, revived']
    assert revived == ['fixed:10+random:30 revive@10',
                       'fixed:20+random:20 revive@20']


def test_the_plateau_derivation():
    c = plateau.plateau_boundary()
    # The boundary where the fitted left part meets the best constant.
    assert abs(numpy.sin(c) - plateau.tail_mean(c)) < 1e-12
    assert 3.9 < c < 4.0
    # The closed form against a fine Riemann sum of the same integral.
    x = numpy.linspace(c, 2 * numpy.pi, 2000001)
    tail = numpy.sin(x)
    numeric = ((tail - tail.mean()) ** 2).mean() * (2 * numpy.pi - c) / \
        (2 * numpy.pi)
    assert abs(plateau.plateau_loss() - numeric) < 1e-6
    # c* is where the loss stands still as c moves, not a minimum of it.
    h = 1e-4
    slope = (plateau.plateau_loss(c + h) - plateau.plateau_loss(c - h)) / \
        (2 * h)
    assert abs(slope) < 1e-6
    assert plateau.plateau_loss(c - 0.5) > plateau.plateau_loss(c) > \
        plateau.plateau_loss(c + 0.5)


@_marks.needs_native
@pytest.mark.exact
@pytest.mark.slow
def test_a_stuck_hybrid_sits_on_the_derived_plateau():
    # Seed 4's post's hybrid gets stuck with the native engine (the same
    # on every CPU): its coverage is c*, its loss the derived one.
    dataset = mh.make_sin_dataset()
    ensemble = NativeEnsemble.from_seeds([4])
    result = mh.train(ensemble, None, dataset,
                      [mh.parse_schedule('fixed:250+random:250', 4)], 500,
                      train_loss='last')
    assert stats.plateau(result.loss[:, 0])
    c = float(ensemble.activity(dataset.x).coverage()[0, 1])
    assert abs(c - plateau.plateau_boundary()) < 0.02
    derived = plateau.plateau_loss(c, dataset.x)
    assert abs(result.train_loss[-1, 0] / derived - 1) < 0.002
    # The network is flat beyond c: its output there is b3.
    x = numpy.linspace(c + 0.01, 2 * numpy.pi, 50)
    out = plateau.replica_functions(ensemble, x)[0]
    assert numpy.ptp(out) < 1e-9


def test_rate_interval():
    low, high = stats.rate_interval(15, 64)
    assert low < 15 / 64 < high
    # Wilson's interval of 1/2 is symmetric; of 0 starts at 0.
    low, high = stats.rate_interval(32, 64)
    assert abs((low + high) / 2 - 0.5) < 1e-12
    assert stats.rate_interval(0, 10)[0] == 0.0
    assert stats.rate_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        stats.rate_interval(0, 0)


@_marks.needs_native
@pytest.mark.exact
def test_remedies_start_from_the_studys_hybrid(tmp_path, capsys):
    # The arm 'none' is the study's hybrid arm, bit for bit; a remedy
    # changes nothing before the switch.
    seeds = [3, 4]
    runs = remedies.run_remedies(seeds, 12, n_units=10, engine='native')
    chunk = train_chunk(small_config(revive=None), 'native', seeds)
    numpy.testing.assert_array_equal(
        runs['none']['final'].astype(f32), chunk['final_loss'][1])
    numpy.testing.assert_array_equal(runs['none']['coverage'],
                                     chunk['coverage'][1])
    rows = {r['remedy']: r for r in remedies.compare(runs)}
    assert rows['none']['freed'] == rows['none']['made_stuck'] == 0
    assert rows['none']['median_ratio_healthy'] == 1
    for remedy in remedies.REMEDIES[1:]:
        assert not numpy.array_equal(runs[remedy]['final'],
                                     runs['none']['final']), remedy
    status, out, err = run_main(capsys, 'remedies', '--seeds', '2',
                                '--epoch', '12', '--units', '10', '--out',
                                str(tmp_path / 'r'))
    assert status == 0, err
    with open(tmp_path / 'r' / 'remedies.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(remedies.REMEDIES)


@pytest.mark.parametrize('engine', ['numpy', 'native'])
def test_adam_reset_and_step_size_act_on_both_engines(engine):
    if engine == 'native' and not kernels.available():
        pytest.skip('the native kernels are not built here')
    seeds = [0, 1]
    dataset = mh.make_sin_dataset(50)
    models = [make_model(8, s) for s in seeds]
    if engine == 'native':
        trained = model = NativeEnsemble(models)
        optimizer = None
    else:
        model = Ensemble(models)
        trained = ChainerEngine(model, make_optimizer(model))
        optimizer = trained.optimizer
    mh.train(model, optimizer, dataset,
             [mh.parse_schedule('random', s) for s in seeds], 2,
             train_loss='never')
    assert trained.t > 0
    remedies.AdamReset(2)(trained, dataset.x)
    assert trained.t == 0
    for which in ('m', 'v'):
        assert all((numpy.asarray(a) == 0).all()
                   for a in trained.arrays(which).values())
    remedies.StepSize(2, 0.01)(trained, dataset.x)
    alpha = trained.hyperparams['alpha'] if engine == 'native' \
        else trained.optimizer.alpha
    assert alpha == 0.01


def test_a_restart_that_cannot_end_is_refused():
    with pytest.raises(SettingsError, match='--epoch 6 or more'):
        remedies.interventions('learning-rate restart', 1, [0], 2)


def test_freed_counts_seed_by_seed():
    base = numpy.array([0.03, 0.03, 1e-4, 2e-4, 4e-4])
    base_stuck = numpy.array([True, True, False, False, False])
    other = numpy.array([1e-5, 0.03, 0.03, 1e-4, 8e-4])
    other_stuck = numpy.array([False, True, True, False, False])
    assert stats.freed(base, base_stuck, other, other_stuck) == {
        'stuck': 2, 'freed': 1, 'healthy': 3, 'made_stuck': 1,
        'healthy_higher': 2, 'median_ratio_healthy': 0.5}
