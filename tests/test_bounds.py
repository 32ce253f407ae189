"""Every engine takes one step within the bound the arithmetic allows.

Contract: ``bound``.  The engines sum in different orders (Chainer's path
on whichever BLAS kernels the CPU gets, the numpy engine's batched
products, the native engine's FMA chains), so their trajectories part
after enough steps; what they must each do is compute *one* step, from one
shared state, within the error bound that float32 arithmetic guarantees
for any summation order (``tests/bounds.py`` derives it).  That verdict
does not depend on the CPU, the BLAS or its kernel type.  The last tests
show that the bound is tight enough to catch a wrong step.
"""
import chainer
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.core import device as devices
from minibatch_hybrid import kernels
from minibatch_hybrid.engines.native import NativeEnsemble
from minibatch_hybrid.core import reference
from minibatch_hybrid.engines.stacked import Ensemble

import bounds
from _marks import needs_native

pytestmark = pytest.mark.bound

N_UNITS = 100
BATCH = 10
#: The numpy engine's names of the stacked parameters.
STACKED = ('W1', 'b1', 'W2', 'b2', 'W3', 'b3')


def state_dict(model, optimizer):
    """The model's weights and Adam's state as plain arrays (no files)."""
    out = {}
    for obj, prefix in ((model, ''), (optimizer, 'opt/')):
        serializer = chainer.serializers.DictionarySerializer()
        serializer.save(obj)
        out.update({prefix + k: numpy.array(v)
                    for k, v in serializer.target.items()})
    return out


def load_state(model, optimizer, state):
    """Sets the model and its optimizer to a :func:`state_dict` (copies:
    the deserializer would hand Adam the state's own arrays to update)."""
    chainer.serializers.NpzDeserializer(
        {k: numpy.array(v) for k, v in state.items()
         if not k.startswith('opt/')}).load(model)
    chainer.serializers.NpzDeserializer(
        {k[4:]: numpy.array(v) for k, v in state.items()
         if k.startswith('opt/')}).load(optimizer)


def make_state(kind):
    """A state every engine starts its step from: ``make_model`` weights
    with Adam's zero moments (``'fresh'``), or the state after three epochs
    of training (``'late'``: moments of all sizes, some dead units); the
    step's mini-batch; and the exact step with its bounds."""
    model = mh.make_model(N_UNITS, seed=3)
    optimizer = mh.make_optimizer(model)
    dataset = mh.make_sin_dataset(100)
    if kind == 'late':
        mh.train(model, optimizer, dataset, mh.Random(3), 3)
        state = state_dict(model, optimizer)
    else:
        state = state_dict(model, optimizer)
        for name in bounds.LINKS:
            state['opt/{}/m'.format(name)] = numpy.zeros_like(state[name])
            state['opt/{}/v'.format(name)] = numpy.zeros_like(state[name])
            state['opt/{}/t'.format(name)] = numpy.array(0)
        state['opt/t'] = numpy.array(0)
        state['opt/epoch'] = numpy.array(0)
    index = numpy.random.default_rng(9).permutation(100)[:BATCH]
    x, t = dataset.x[index], dataset.y[index]
    params = {name: state[name] for name in bounds.LINKS}
    m = {name: state['opt/{}/m'.format(name)] for name in bounds.LINKS}
    v = {name: state['opt/{}/v'.format(name)] for name in bounds.LINKS}
    step = int(state['opt/t']) + 1
    alpha_t = chainer.optimizers.adam._learning_rate(
        chainer.optimizers.Adam().hyperparam, step)
    expected = bounds.step(params, m, v, x, t, alpha_t)
    return dict(state=state, params=params, m=m, v=v, x=x, t=t, step=step,
                alpha_t=alpha_t, expected=expected)


@pytest.fixture(scope='module', params=['fresh', 'late'])
def shared_state(request):
    return make_state(request.param)


def check_step(loss, params, m, v, expected):
    bounds.check(loss, expected['loss'], 'loss')
    for which, got in (('params', params), ('m', m), ('v', v)):
        for name in bounds.LINKS:
            bounds.check(got[name], expected[which][name],
                         '{} {}'.format(which, name))


def chainer_step(s, model, optimizer, device='@numpy'):
    """One step of the post's loop body on a model set to the state, on a
    Chainer device; returns the loss, weights and moments on the CPU."""
    load_state(model, optimizer, s['state'])
    device = devices.get_device(device)
    model.to_device(device)
    model.cleargrads()
    loss = model(device.send(s['x']), device.send(s['t']))
    loss.backward()
    optimizer.update()
    cpu = chainer.backend.CpuDevice()
    out = {}, {}, {}
    for name, p in model.namedparams():
        name = name.lstrip('/')
        out[0][name] = cpu.send(p.array)
        out[1][name] = cpu.send(p.update_rule.state['m'])
        out[2][name] = cpu.send(p.update_rule.state['v'])
    return (float(cpu.send(loss.array)),) + out


def test_the_package_loop_takes_one_step_within_the_bound(shared_state):
    model = mh.make_model(N_UNITS, seed=0)
    check_step(*chainer_step(shared_state, model, mh.make_optimizer(model)),
               shared_state['expected'])


def test_the_posts_chain_takes_one_step_within_the_bound(shared_state):
    # The post's MyChain with Chainer's own Linear, relu, MSE and Adam.
    model = reference.MyChain(N_UNITS)
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    check_step(*chainer_step(shared_state, model, optimizer),
               shared_state['expected'])


def ensemble_step(s, replicas=3, device='@numpy'):
    """One step of the numpy engine's Ensemble, every replica set to the
    state and given the same mini-batch, on a Chainer device; returns each
    replica's loss, weights and moments on the CPU."""
    ensemble = Ensemble([mh.make_model(N_UNITS, 0)] * replicas)
    optimizer = mh.make_optimizer(ensemble)
    state = {'opt/t': s['state']['opt/t'], 'opt/epoch': 0}
    for name, stacked in zip(bounds.LINKS, STACKED):
        state[stacked] = numpy.stack([s['params'][name]] * replicas)
        for which in 'mv':
            state['opt/{}/{}'.format(stacked, which)] = numpy.stack(
                [s[which][name]] * replicas)
        state['opt/{}/t'.format(stacked)] = s['state']['opt/t']
    load_state(ensemble, optimizer, state)
    device = devices.get_device(device)
    ensemble.to_device(device)
    ensemble.cleargrads()
    loss = ensemble(device.send(numpy.stack([s['x']] * replicas)),
                    device.send(numpy.stack([s['t']] * replicas)))
    loss.grad = device.xp.ones_like(loss.array)
    loss.backward()
    optimizer.update()
    cpu = chainer.backend.CpuDevice()
    losses = cpu.send(loss.array)
    out = []
    for k in range(replicas):
        got = {which: {} for which in ('params', 'm', 'v')}
        for name, stacked in zip(bounds.LINKS, STACKED):
            param = getattr(ensemble, stacked)
            got['params'][name] = cpu.send(param.array[k])
            got['m'][name] = cpu.send(param.update_rule.state['m'][k])
            got['v'][name] = cpu.send(param.update_rule.state['v'][k])
        out.append((float(losses[k]), got['params'], got['m'], got['v']))
    return out


def test_the_numpy_engine_takes_one_step_within_the_bound(shared_state):
    for replica in ensemble_step(shared_state):
        check_step(*replica, shared_state['expected'])


@needs_native
@pytest.mark.parametrize('kernel_set', kernels.supported_kernels() or ['none'])
def test_the_native_engine_takes_one_step_within_the_bound(shared_state,
                                                           kernel_set):
    # Two replicas of the state; the data set is the mini-batch itself, so
    # that one epoch is this one step.
    s = shared_state
    ensemble = NativeEnsemble.from_seeds([0, 1], N_UNITS)
    for which, arrays in (('params', s['params']), ('m', s['m']),
                          ('v', s['v'])):
        ensemble.load(which, {k: numpy.stack([a] * 2)
                              for k, a in arrays.items()})
    ensemble.t = s['step'] - 1
    with kernels.using_kernels(kernel_set):
        sums = ensemble.train_epoch(s['x'], s['t'], numpy.tile(
            numpy.arange(BATCH), (2, 1)), BATCH)
    for k in range(2):
        got = {which: {n: a[k] for n, a in ensemble.arrays(which).items()}
               for which in ('params', 'm', 'v')}
        check_step(sums[k] / BATCH, got['params'], got['m'], got['v'],
                   s['expected'])


@pytest.mark.parametrize('engine', [
    'chainer', 'numpy', pytest.param('native', marks=needs_native)])
def test_every_engine_evaluates_within_the_bound(engine):
    # The full-data loss: one forward pass over 1000 points.
    model = mh.make_model(N_UNITS, seed=4)
    dataset = mh.make_sin_dataset(1000)
    params = {name.lstrip('/'): p.array for name, p in model.namedparams()}
    expected = bounds.forward(params, dataset.x, dataset.y)['loss']
    if engine == 'chainer':
        got = mh.core.loop.evaluate(model, dataset)
    elif engine == 'numpy':
        got = mh.core.loop.evaluate(Ensemble([model] * 2), dataset)
    else:
        got = mh.core.loop.evaluate(NativeEnsemble([model] * 2),
                                   dataset)
    bounds.check(got, expected, engine)


def test_the_bound_is_tight_enough_to_catch_a_wrong_step(shared_state):
    # The same step with the step size 1% too large, or with one point of
    # the mini-batch replaced by another, lands outside the bound: the
    # bound is not so loose that any answer passes.
    s = shared_state
    model = mh.make_model(N_UNITS, seed=0)
    optimizer = mh.make_optimizer(model)
    optimizer.alpha *= 1.01
    loss, params, m, v = chainer_step(s, model, optimizer)
    assert max(bounds.excess(params[n], *s['expected']['params'][n])
               for n in bounds.LINKS) > 0
    other = dict(s, x=s['x'].copy(), t=s['t'].copy())
    other['x'][0], other['t'][0] = s['x'][1], s['t'][1]
    loss, params, m, v = chainer_step(other, model, mh.make_optimizer(model))
    assert bounds.excess(loss, *s['expected']['loss']) > 0
    assert max(bounds.excess(m[n], *s['expected']['m'][n])
               for n in bounds.LINKS) > 0


def test_the_bound_is_small(shared_state):
    # Worst-case bounds grow with the sums' lengths (100 here), yet stay
    # small beside the quantities: under 0.1% of the loss, and a few
    # percent of the step for the typical weight the step moves (about 1%
    # here).
    s = shared_state
    loss, e_loss = s['expected']['loss']
    assert e_loss < 1e-3 * loss
    for name in bounds.LINKS:
        exact, bound = s['expected']['params'][name]
        moved = exact != s['params'][name]
        assert moved.any()
        step = numpy.abs(exact - s['params'][name])[moved]
        assert numpy.median(bound[moved] / step) < 3e-2, name
