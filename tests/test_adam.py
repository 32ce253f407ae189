import os
import subprocess
import sys

import chainer
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.core import adam

from _marks import needs_native

COMPILED = [False, pytest.param(True, marks=needs_native)]


# Contract exact: Adam is elementwise float32 (+, -, *, /, sqrt), each
# correctly rounded by IEEE 754 on every CPU, in the same order.
@pytest.mark.exact
@pytest.mark.parametrize('compiled', COMPILED)
@pytest.mark.parametrize('shape', [(3,), (13, 7), (100, 100), (300, 1000)])
def test_fused_adam_gives_chainers_bits(shape, compiled):
    # compiled=False: Chainer's own update.  (300, 1000) is above
    # NATIVE_SPLIT: split across threads; (13, 7) leaves a tail after the
    # kernels' vectors.
    assert numpy.prod(shape) < adam.NATIVE_SPLIT or \
        numpy.prod(shape) > 2 * adam.NATIVE_SPLIT
    rng = numpy.random.default_rng(0)
    start = rng.standard_normal(shape).astype(numpy.float32)
    finals = []
    fused = adam.FusedAdam(native=compiled)
    for optimizer in (chainer.optimizers.Adam(), fused):
        link = chainer.Link()
        with link.init_scope():
            link.p = chainer.Parameter(start.copy())
        optimizer.setup(link)
        grads = numpy.random.default_rng(1)
        for _ in range(5):
            link.p.grad = grads.standard_normal(shape).astype(numpy.float32)
            optimizer.update()
        finals.append((link.p.array.copy(),
                       link.p.update_rule.state['m'].copy(),
                       link.p.update_rule.state['v'].copy()))
    for a, b in zip(*finals):
        numpy.testing.assert_array_equal(a, b)


def test_make_optimizer_is_adam_with_the_defaults():
    optimizer = mh.make_optimizer(mh.make_model(4, seed=0))
    assert isinstance(optimizer, chainer.optimizers.Adam)
    hp = optimizer.hyperparam
    assert (hp.alpha, hp.beta1, hp.beta2, hp.eps) == (0.001, 0.9, 0.999, 1e-8)


@pytest.mark.exact
def test_step_sizes_are_chainers_alpha_t_in_float32():
    # The engines' step sizes: Chainer's formula, from Chainer's defaults.
    hp = chainer.optimizers.Adam().hyperparam
    assert adam.HYPERPARAMS == (hp.alpha, hp.beta1, hp.beta2, hp.eps, hp.eta)
    rule = chainer.optimizers.Adam(alpha=0.01).create_update_rule()
    got = adam.step_sizes(5, 300, alpha=0.01)
    assert got.dtype == numpy.float32 and got.shape == (300,)
    for t, value in enumerate(got, start=6):
        rule.t = t
        assert value == numpy.float32(rule.alpha_t)


@needs_native
def test_the_compiled_update_obeys_the_kernel_set_asked_for():
    # MINIBATCH_HYBRID_KERNELS names the kernel set of every compiled call,
    # the single model's Adam included: a set that cannot run is refused
    # at its first update, not ignored.
    code = (
        'import minibatch_hybrid as mh\n'
        'from minibatch_hybrid import kernels\n'
        'model = mh.make_model(4, 0)\n'
        'optimizer = mh.make_optimizer(model)\n'
        'model.cleargrads()\n'
        'data = mh.make_sin_dataset(10)\n'
        'loss = model(data.x, data.y)\n'
        'loss.backward()\n'
        'try:\n'
        '    optimizer.update()\n'
        'except kernels.NativeUnavailable as e:\n'
        '    print("refused:", e)\n')
    env = dict(os.environ, MINIBATCH_HYBRID_KERNELS='sse')
    out = subprocess.run([sys.executable, '-c', code], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out.startswith('refused: MINIBATCH_HYBRID_KERNELS=sse'), out


@needs_native
@pytest.mark.exact
@pytest.mark.parametrize('shape', [(1,), (3,), (16,), (17,), (13, 7)])
def test_the_compiled_update_runs_in_the_kernel_set_in_use(shape):
    # The compiled adam runs the selected kernel set's update (the portable
    # C code under 'c') and returns that set's name; every set gives
    # Chainer's bits, for fewer elements than a vector's lanes (4, 8 or
    # 16), exactly 16, and a tail after whole vectors.
    from minibatch_hybrid import kernels
    rng = numpy.random.default_rng(2)
    start, grad = (rng.standard_normal(shape).astype(numpy.float32)
                   for _ in range(2))
    link = chainer.Link()
    with link.init_scope():
        link.p = chainer.Parameter(start.copy())
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(link)
    link.p.grad = grad
    optimizer.update()
    rule, hp = link.p.update_rule, link.p.update_rule.hyperparam
    expected = (link.p.array, rule.state['m'], rule.state['v'])
    names = kernels.supported_kernels()
    assert 'c' in names
    for name in names:
        p, m, v = start.copy(), numpy.zeros_like(start), \
            numpy.zeros_like(start)
        with kernels.using_kernels(name):
            ran = kernels.module().adam(
                param=p, grad=grad, m=m, v=v, alpha_t=rule.alpha_t,
                beta1=hp.beta1, beta2=hp.beta2, eps=hp.eps, eta=hp.eta,
                start=0, stop=p.size)
        assert ran == name
        for a, b in zip((p, m, v), expected):
            numpy.testing.assert_array_equal(a, b, err_msg=name)
