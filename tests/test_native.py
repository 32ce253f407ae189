"""The native engine: one arithmetic on every kernel set, checked bit for bit
against an independent NumPy port of that arithmetic (contract ``exact``:
the same on every machine).  Against Chainer's path, whose arithmetic is
the BLAS's: tests/test_bounds.py."""
import contextlib
import inspect
import os
import subprocess
import sys
import threading

import chainer
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.kernels import threads
from minibatch_hybrid import engines
from minibatch_hybrid import kernels
from minibatch_hybrid.core.adam import FusedAdam
from minibatch_hybrid.engines.native import NativeEnsemble

import native_reference as ref
from _marks import needs_native

KERNELS = kernels.supported_kernels()
TINY = numpy.finfo(numpy.float32).tiny


def orders_for(schedules, epoch, size):
    return numpy.stack([s.order(epoch, size) for s in schedules])


def trained(kernel_set, seeds, n_units, epochs, batchsize, size=100):
    """A NativeEnsemble trained with the given kernel set; its record."""
    dataset = mh.make_sin_dataset(size)
    schedules = [mh.parse_schedule(t, s) for t in ('random', 'fixed')
                 for s in seeds]
    ensemble = NativeEnsemble.from_seeds(list(seeds) * 2, n_units)
    losses = []
    with kernels.using_kernels(kernel_set):
        for epoch in range(epochs):
            losses.append(ensemble.train_epoch(
                dataset.x, dataset.y, orders_for(schedules, epoch, size),
                batchsize))
        heldout = mh.core.data.make_heldout_dataset(37, 1)
        mse = ensemble.evaluate(heldout.x, heldout.y)
    return numpy.array(losses), ensemble, mse


@pytest.mark.exact
@needs_native
@pytest.mark.parametrize('n_units,batchsize', [(100, 10), (7, 3), (33, 16)])
def test_every_kernel_set_gives_the_same_bits(n_units, batchsize):
    # 2 x 9 replicas: a full group and a part-filled one; batch sizes that
    # do not divide the data (a short last batch), widths that leave
    # partial register blocks.
    if len(KERNELS) < 2:
        pytest.skip('this CPU runs one kernel set only: {}'.format(KERNELS))
    runs = {k: trained(k, range(9), n_units, 3, batchsize) for k in KERNELS}
    (l0, e0, mse0) = runs[KERNELS[0]]
    for k in KERNELS[1:]:
        losses, ensemble, mse = runs[k]
        numpy.testing.assert_array_equal(losses, l0, err_msg=k)
        numpy.testing.assert_array_equal(mse, mse0, err_msg=k)
        for which in ('params', 'm', 'v'):
            numpy.testing.assert_array_equal(getattr(ensemble, which),
                                             getattr(e0, which),
                                             err_msg=which)


@pytest.mark.exact
@needs_native
@pytest.mark.parametrize('kernel_set', KERNELS)
@pytest.mark.parametrize('n_units,batchsize,size', [(100, 10, 10),
                                                    (9, 4, 4)])
def test_one_step_equals_the_numpy_port_bit_for_bit(kernel_set, n_units,
                                                    batchsize, size):
    # One epoch of one step from the seeds' weights (and a second step, so
    # that Adam's moments are not zero), replica by replica.
    seeds = [0, 1, 2]
    dataset = mh.make_sin_dataset(size)
    rng = numpy.random.default_rng(4)
    orders = [numpy.stack([rng.permutation(size) for _ in seeds])
              for _ in range(2)]
    ensemble = NativeEnsemble.from_seeds(seeds, n_units)
    with kernels.using_kernels(kernel_set):
        sums = [ensemble.train_epoch(dataset.x, dataset.y, o, batchsize)
                for o in orders]
        got_mse = ensemble.evaluate(dataset.x, dataset.y)
    hp = chainer.optimizers.Adam().hyperparam
    x, y = dataset.x[:, 0], dataset.y[:, 0]
    for k, seed in enumerate(seeds):
        model = mh.make_model(n_units, seed)
        params = {name.lstrip('/'): p.array.copy()
                  for name, p in model.namedparams()}
        m = {name: numpy.zeros_like(a) for name, a in params.items()}
        v = {name: numpy.zeros_like(a) for name, a in params.items()}
        for t, order in enumerate(orders, start=1):
            index = order[k][:batchsize]
            alpha_t = chainer.optimizers.adam._learning_rate(hp, t)
            loss, params, m, v = ref.step(params, m, v, x[index], y[index],
                                          alpha_t)
            assert sums[t - 1][k] == float(loss) * batchsize
        for which, expected in (('params', params), ('m', m), ('v', v)):
            arrays = ensemble.arrays(which)
            for name, a in expected.items():
                numpy.testing.assert_array_equal(
                    arrays[name][k], a, err_msg='{} {}'.format(which, name))
        assert got_mse[k] == ref.mse(params, x, y)


@pytest.mark.exact
def test_the_reference_fma_rounds_once():
    # (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 is a float32 tie; + 2^-80 puts the
    # exact sum just above it, but float64 rounds it back onto the tie,
    # which float32 would then round down to even.  Once: up.
    a = numpy.float32(1 + 2 ** -12)
    got = ref.fma32(a, a, numpy.float32(2 ** -80))
    assert got == numpy.float32(1 + 2 ** -11 + 2 ** -23)
    naive = numpy.float32(numpy.float64(a) * numpy.float64(a) + 2 ** -80)
    assert naive == numpy.float32(1 + 2 ** -11)
    assert ref.fma32(a, a, numpy.float32(-2 ** -80)) == naive


@pytest.mark.exact
@needs_native
def test_a_replica_does_not_depend_on_its_neighbours_or_the_threads(
        monkeypatch):
    losses, ensemble, mse = trained(KERNELS[-1], range(9), 20, 2, 10)
    alone_losses, alone, alone_mse = trained(KERNELS[-1], [4], 20, 2, 10)
    # Replica 4 (random, seed 4) and 13 (fixed, seed 4) of the 18.
    numpy.testing.assert_array_equal(losses[:, [4, 13]], alone_losses)
    numpy.testing.assert_array_equal(mse[[4, 13]], alone_mse)
    monkeypatch.setattr(threads, 'workers', lambda: 1)
    one_thread, _, _ = trained(KERNELS[-1], range(9), 20, 2, 10)
    numpy.testing.assert_array_equal(one_thread, losses)


@pytest.mark.exact
@needs_native
@pytest.mark.parametrize('kernel_set', KERNELS)
def test_flushing_subnormals_changes_no_result(kernel_set):
    # 12 epochs of 100 steps: Adam's first moment of weights with zero
    # gradients (dead units) decays by 0.9 a step into the subnormals.
    runs = {}
    for mode in ('flush', 'ieee'):
        dataset = mh.make_sin_dataset(1000)
        schedules = [mh.parse_schedule('random', s) for s in range(16)]
        ensemble = NativeEnsemble.from_seeds(range(16), 100)
        losses = []
        with kernels.using_kernels(kernel_set), \
                (kernels.ieee_subnormals() if mode == 'ieee'
                 else contextlib.nullcontext()):
            for epoch in range(12):
                losses.append(ensemble.train_epoch(
                    dataset.x, dataset.y, orders_for(schedules, epoch, 1000),
                    10))
            mse = ensemble.evaluate(dataset.x, dataset.y)
        runs[mode] = numpy.array(losses), ensemble, mse
    (l_f, e_f, mse_f), (l_i, e_i, mse_i) = runs['flush'], runs['ieee']
    subnormal = (e_i.m != 0) & (numpy.abs(e_i.m) < TINY)
    assert subnormal.sum() > 1000  # the IEEE run did meet subnormals
    assert not ((e_f.m != 0) & (numpy.abs(e_f.m) < TINY)).any()
    numpy.testing.assert_array_equal(l_f, l_i)
    numpy.testing.assert_array_equal(mse_f, mse_i)
    numpy.testing.assert_array_equal(e_f.params, e_i.params)
    # Only moments below ten times the smallest normal number differ: there
    # a decrement (a tenth of the moment) is subnormal, so flushed, and the
    # moment stops decaying, or is flushed to zero.  Either moves a weight
    # by less than alpha / eps * 1.2e-37 = 1.2e-32.
    differ = e_f.m != e_i.m
    assert differ.any()
    assert (numpy.abs(e_f.m[differ]) < 10 * TINY).all()
    assert (numpy.abs(e_i.m[differ]) < 10 * TINY).all()
    numpy.testing.assert_array_equal(e_f.v, e_i.v)


class _Recorder(object):
    """Stands in for the extension module: calls ``after(name)`` in the
    thread that ran a kernel, right after it returns."""

    def __init__(self, module, after):
        self._module = module
        self._after = after

    def __getattr__(self, name):
        function = getattr(self._module, name)

        def call(*args, **kwargs):
            result = function(*args, **kwargs)
            self._after(name)
            return result

        return call


@needs_native
def test_kernel_calls_restore_the_callers_floating_point_mode(monkeypatch):
    # A subnormal stays a subnormal in the calling thread and in the
    # threads that ran kernels; flipping the switch while kernels run on
    # other threads must not unbalance a save and its restore.
    tiny = numpy.float32(TINY)
    dataset = mh.make_sin_dataset(100)
    ensemble = NativeEnsemble.from_seeds(range(40), 8)  # 3 groups
    orders = numpy.tile(numpy.arange(100), (40, 1))
    stop = threading.Event()
    real = kernels.module()

    def flip():
        while not stop.is_set():
            previous = real.set_flush_subnormals(False)
            real.set_flush_subnormals(previous)

    # Each thread that ran a kernel checks its own mode right after the
    # kernel returns: which pool threads take the work is up to the
    # scheduler, so checking afterwards, on whichever threads a new task
    # lands, could check others.
    checks = []  # (thread, kernel, subnormal kept); append is thread-safe

    def after(name):
        checks.append((threading.get_ident(), name,
                       bool(tiny / numpy.float32(4) != 0)))

    monkeypatch.setattr(kernels, '_native', _Recorder(real, after))
    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for _ in range(30):
            ensemble.train_epoch(dataset.x, dataset.y, orders, 10)
    finally:
        stop.set()
        flipper.join()
    real.set_flush_subnormals(True)
    assert tiny / numpy.float32(4) != 0  # here: IEEE, as before
    ran = [c for c in checks if c[1] == 'train_epoch']
    parts = len(threads.slices(ensemble.groups, threads.workers()))
    assert len(ran) == 30 * parts  # every kernel call was checked
    assert all(kept for _, _, kept in ran), ran
    # With more than one part the pool's threads ran kernels too (the
    # calling thread takes the first part of each call).
    ran_on = {thread for thread, _, _ in ran}
    assert threading.get_ident() in ran_on
    assert len(ran_on) > 1 or parts == 1


@needs_native
def test_evaluate_takes_shared_or_per_replica_data_only():
    ensemble = NativeEnsemble.from_seeds(range(3), 8)
    data = mh.make_sin_dataset(10)
    assert ensemble.evaluate(data.x, data.y).shape == (3,)
    stacked = numpy.stack([data.x] * 3)
    numpy.testing.assert_array_equal(ensemble.evaluate(stacked, stacked),
                                     ensemble.evaluate(data.x, data.x))
    for bad in (data.x[:3, 0], numpy.stack([data.x] * 2),
                numpy.zeros((0, 1), numpy.float32)):
        with pytest.raises(ValueError, match='evaluate takes x and y of '
                           'shape \\(N, 1\\)'):
            ensemble.evaluate(bad, bad)


@needs_native
def test_native_ensemble_round_trips_and_checks_its_input():
    models = [mh.make_model(5, s) for s in (3, 4)]
    ensemble = NativeEnsemble(models)
    assert len(ensemble) == 2 and ensemble.groups == 1
    for k, model in enumerate(models):
        copy = ensemble.replica(k)
        for (_, a), (_, b) in zip(sorted(model.namedparams()),
                                  sorted(copy.namedparams())):
            numpy.testing.assert_array_equal(a.array, b.array)
    dataset = mh.make_sin_dataset(20)
    with pytest.raises(ValueError, match=r'orders must have shape \(2, 20\)'):
        ensemble.train_epoch(dataset.x, dataset.y, numpy.zeros((3, 20)), 5)
    with pytest.raises(ValueError, match='batch size must be an integer from '
                       '1 to the data set size 20, got 21'):
        ensemble.train_epoch(dataset.x, dataset.y, numpy.zeros((2, 20)), 21)
    with pytest.raises(ValueError, match='order holds index 20, out of range'):
        ensemble.train_epoch(dataset.x, dataset.y,
                             numpy.full((2, 20), 20), 5)
    with pytest.raises(ValueError, match='an ensemble needs at least one'):
        NativeEnsemble([])
    with pytest.raises(ValueError, match='the same n_units'):
        NativeEnsemble([mh.make_model(5, 0), mh.make_model(6, 0)])
    with pytest.raises(ValueError, match='optimizer=None'):
        mh.train(ensemble, mh.make_optimizer(models[0]), dataset,
                 [mh.Random(0)] * 2, 1)


@needs_native
def test_kernel_arguments_are_checked():
    # Each kernel takes keyword arguments only, and refuses each wrong one,
    # before it runs, with an error that names the argument and says what
    # was expected (the cases: _REFUSED_KERNEL_CALLS, at the end).
    native = kernels.module()
    for name, arguments in _kernel_arguments().items():
        getattr(native, name)(**arguments)  # well formed
    for name, changes, error, message in _REFUSED_KERNEL_CALLS:
        arguments = _kernel_arguments()[name]
        arguments.update(changes)
        arguments = {k: a for k, a in arguments.items() if a is not _LEFT_OUT}
        with pytest.raises(error, match=message):
            getattr(native, name)(**arguments)
    with pytest.raises(ValueError, match="unknown kernel set 'sse': choose "
                       "'avx512', 'avx2' or 'c'"):
        native.set_kernels('sse')


@needs_native
@pytest.mark.parametrize('value,expected', [('c', 'c'), ('sse', None)])
def test_the_environment_forces_a_kernel_set(value, expected):
    code = ('from minibatch_hybrid import kernels\n'
            'try:\n    print(kernels.current())\n'
            'except kernels.NativeUnavailable as e:\n    print("error:", e)\n')
    env = dict(os.environ, MINIBATCH_HYBRID_KERNELS=value)
    out = subprocess.run([sys.executable, '-c', code], env=env,
                         capture_output=True, text=True, check=True).stdout
    if expected:
        assert out.strip() == expected
    else:
        assert out.startswith("error: MINIBATCH_HYBRID_KERNELS=sse: unknown "
                              "kernel set 'sse'")


def test_engines_resolve_and_explain(monkeypatch):
    cpu = chainer.get_device('@numpy')
    assert engines.resolve_engine('numpy', cpu) == 'numpy'
    with pytest.raises(ValueError, match="unknown engine 'gpu'"):
        engines.resolve_engine('gpu', cpu)
    if kernels.available():
        assert engines.resolve_engine('auto', cpu) == 'native'
    # As on a machine without a C compiler:
    monkeypatch.setattr(kernels, '_native', None)
    monkeypatch.setattr(kernels, '_IMPORT_ERROR', ImportError('not built'))
    assert engines.resolve_engine('auto', cpu) == 'numpy'
    assert kernels.supported_kernels() == []
    with pytest.raises(kernels.NativeUnavailable,
                       match='not built: not built. Install a C compiler'):
        engines.resolve_engine('native', cpu)
    with pytest.raises(kernels.NativeUnavailable):
        NativeEnsemble.from_seeds([0], 4)
    # FusedAdam falls back to NumPy's operations (the same bits).
    assert not FusedAdam().setup(mh.make_model(4, 0)) \
        .create_update_rule().native


def test_the_command_says_how_to_build_the_kernels(monkeypatch, tmp_path,
                                                   capsys):
    from minibatch_hybrid import cli
    monkeypatch.setattr(kernels, '_native', None)
    monkeypatch.setattr(kernels, '_IMPORT_ERROR', ImportError('not built'))
    with pytest.raises(SystemExit) as exit_:
        cli.main(['study', '--quick', '--engine', 'native', '--out',
                  str(tmp_path / 'study')])
    assert exit_.value.code == 2
    assert 'Install a C compiler' in capsys.readouterr().err


# The compiled kernels' arguments: test_kernel_arguments_are_checked and
# the tests below.

_LEFT_OUT = object()  # in a case's changes: the argument is left out


def _kernel_arguments():
    """Returns well-formed keyword arguments of each kernel, in the order of
    its signature: one group of replicas with n_units=5, 20 points in
    mini-batches of 5 (4 steps), 10 points per replica to evaluate on."""
    params = numpy.zeros((1, 5 * 5 + 4 * 5 + 1, 16), numpy.float32)
    x = numpy.linspace(0, 1, 20, dtype=numpy.float32)
    data = numpy.tile(x[:10], (16, 1))
    p = numpy.ones(10, numpy.float32)
    return {
        'train_epoch': dict(
            params=params, m=params.copy(), v=params.copy(), x=x,
            y=x + 1, order=numpy.tile(numpy.arange(20, dtype=numpy.int32),
                                      (16, 1)),
            alpha_t=numpy.full(4, 1e-3, numpy.float32),
            sums=numpy.zeros(16), n_units=5, batchsize=5, beta1=0.9,
            beta2=0.999, eps=1e-8, eta=1.0, start=0, stop=1),
        'evaluate': dict(
            params=params.copy(), x=data, y=numpy.ones_like(data),
            out=numpy.zeros(16, numpy.float32), n_units=5, start=0,
            stop=1),
        'adam': dict(
            param=p, grad=p + 1, m=p.copy(), v=p.copy(), alpha_t=1e-3,
            beta1=0.9, beta2=0.999, eps=1e-8, eta=1.0, start=0, stop=10),
    }


def _read_only(array):
    array = numpy.array(array)
    array.flags.writeable = False
    return array


def _f32(*shape):
    return numpy.zeros(shape, numpy.float32)


#: (kernel, changed arguments, error, message): calls the kernels refuse.
_REFUSED_KERNEL_CALLS = [
    # Keywords.
    ('train_epoch', dict(eta=_LEFT_OUT), TypeError,
     r"^train_epoch\(\) missing keyword argument 'eta'$"),
    ('evaluate', dict(sums=numpy.zeros(16)), TypeError,
     r"^evaluate\(\) got an unexpected keyword argument 'sums'$"),
    ('adam', dict(alpha_t=_LEFT_OUT, alpha=1e-3), TypeError,
     r"^adam\(\) missing keyword argument 'alpha_t'$"),
    # Element types, order in memory, writability.
    ('train_epoch', dict(order=numpy.zeros((16, 20), numpy.int64)),
     TypeError, r'^train_epoch: order must be int32, not int64$'),
    ('train_epoch', dict(sums=_f32(16)), TypeError,
     r'^train_epoch: sums must be float64, not float32$'),
    ('train_epoch', dict(x=[0.0] * 20), TypeError,
     r'^train_epoch: x must be a float32 array, not list$'),
    ('train_epoch', dict(params=_f32(1, 46, 32)[:, :, ::2]), TypeError,
     r'^train_epoch: params must be a C-contiguous array$'),
    ('train_epoch', dict(m=_read_only(_f32(1, 46, 16))), TypeError,
     r'^train_epoch: m must be writable \(the kernel writes it\), not '
     r'read-only$'),
    ('evaluate', dict(out=numpy.zeros(16)), TypeError,
     r'^evaluate: out must be float32, not float64$'),
    ('evaluate', dict(out=_read_only(_f32(16))), TypeError,
     r'^evaluate: out must be writable'),
    ('adam', dict(grad=numpy.ones(10)), TypeError,
     r'^adam: grad must be float32, not float64$'),
    ('adam', dict(param=_read_only(_f32(10))), TypeError,
     r'^adam: param must be writable'),
    # Integers and reals.
    ('train_epoch', dict(n_units=5.0), TypeError,
     r'^train_epoch: n_units must be an integer, not float$'),
    ('train_epoch', dict(beta1='0.9'), TypeError,
     r'^train_epoch: beta1 must be a real number, not str$'),
    ('evaluate', dict(start=2 ** 70), OverflowError,
     r"^evaluate: start is out of a Py_ssize_t's range$"),
    ('adam', dict(eps=None), TypeError,
     r'^adam: eps must be a real number, not NoneType$'),
    ('adam', dict(eta=10 ** 400), OverflowError,
     r"^adam: eta is out of a double's range$"),
    # n_units and the parameters' shapes.
    ('train_epoch', dict(n_units=0), ValueError,
     r'^train_epoch: need 1 <= n_units <= 8192; got n_units=0$'),
    ('evaluate', dict(n_units=8193), ValueError,
     r'^evaluate: need 1 <= n_units <= 8192; got n_units=8193$'),
    ('train_epoch', dict(n_units=6), ValueError,
     r'^train_epoch: params has shape \(1, 46, 16\); expected \(groups, 61, '
     r'16\) \(for n_units=6: n_units \* \(n_units \+ 4\) \+ 1 parameters, '
     r'16 replicas a group\)$'),
    ('evaluate', dict(params=_f32(46, 16)), ValueError,
     r'^evaluate: params has shape \(46, 16\); expected \(groups, 46, 16\)'),
    ('train_epoch', dict(m=_f32(2, 46, 16)), ValueError,
     r"^train_epoch: m has shape \(2, 46, 16\); expected \(1, 46, 16\) "
     r"\(params' shape\)$"),
    ('train_epoch', dict(v=_f32(1, 46, 16, 1)), ValueError,
     r'^train_epoch: v has shape \(1, 46, 16, 1\); expected \(1, 46, 16\)'),
    ('adam', dict(v=_f32(9)), ValueError,
     r"^adam: v has shape \(9,\); expected \(10,\) \(param's shape\)$"),
    ('adam', dict(grad=_f32(2, 5)), ValueError,
     r'^adam: grad has shape \(2, 5\); expected \(10,\)'),
    # The data, the steps, the replicas.
    ('train_epoch', dict(x=_f32(20, 1)), ValueError,
     r"^train_epoch: x has shape \(20, 1\); expected \(N,\) \(the data's "
     r"inputs\)$"),
    ('train_epoch', dict(x=_f32(0)), ValueError,
     r'^train_epoch: need 1 <= N <= 2147483647 \(the points of x\); got '
     r'N=0$'),
    ('train_epoch', dict(y=_f32(19)), ValueError,
     r"^train_epoch: y has shape \(19,\); expected \(20,\) \(x's shape\)$"),
    ('train_epoch', dict(batchsize=21), ValueError,
     r'^train_epoch: need 1 <= batchsize <= 20 \(N, the points of x\); got '
     r'batchsize=21$'),
    ('train_epoch', dict(batchsize=0), ValueError,
     r'^train_epoch: need 1 <= batchsize <= 20'),
    ('train_epoch', dict(order=numpy.zeros((16, 19), numpy.int32)),
     ValueError,
     r"^train_epoch: order has shape \(16, 19\); expected \(16, 20\) \(16 \* "
     r"groups replicas, N: each replica's order of x\)$"),
    ('train_epoch', dict(order=numpy.full((16, 20), 20, numpy.int32)),
     ValueError,
     r'^train_epoch: order holds index 20, out of range for N=20 points '
     r'\(need 0 <= index < N\)$'),
    ('train_epoch', dict(order=numpy.full((16, 20), -1, numpy.int32)),
     ValueError, r'^train_epoch: order holds index -1, out of range'),
    ('train_epoch', dict(batchsize=3), ValueError,
     r'^train_epoch: alpha_t has shape \(4,\); expected \(7,\) \(a step size '
     r'per mini-batch: ceil\(N / batchsize\)\)$'),
    ('train_epoch', dict(sums=numpy.zeros(15)), ValueError,
     r'^train_epoch: sums has shape \(15,\); expected \(16,\) \(one per '
     r'replica: 16 \* groups\)$'),
    ('evaluate', dict(x=_f32(15, 10)), ValueError,
     r"^evaluate: x has shape \(15, 10\); expected \(16, N\) \(16 \* groups "
     r"replicas, N: each replica's inputs\)$"),
    ('evaluate', dict(x=_f32(16, 0), y=_f32(16, 0)), ValueError,
     r'^evaluate: need 1 <= N <= 2147483647 \(the points of x\); got N=0$'),
    ('evaluate', dict(y=_f32(16, 9)), ValueError,
     r"^evaluate: y has shape \(16, 9\); expected \(16, 10\) \(x's shape\)$"),
    ('evaluate', dict(out=_f32(16, 1)), ValueError,
     r'^evaluate: out has shape \(16, 1\); expected \(16,\)'),
    # Ranges.
    ('train_epoch', dict(stop=2), ValueError,
     r'^train_epoch: need 0 <= start <= stop <= 1 \(the groups in params\); '
     r'got start=0, stop=2$'),
    ('train_epoch', dict(start=-1), ValueError,
     r'^train_epoch: need 0 <= start <= stop <= 1 \(the groups in params\); '
     r'got start=-1, stop=1$'),
    ('evaluate', dict(start=1, stop=0), ValueError,
     r'^evaluate: need 0 <= start <= stop <= 1 \(the groups in params\); '
     r'got start=1, stop=0$'),
    ('adam', dict(stop=11), ValueError,
     r'^adam: need 0 <= start <= stop <= 10 \(the elements of param\); got '
     r'start=0, stop=11$'),
]


@needs_native
def test_kernels_take_the_keywords_their_signatures_name():
    native = kernels.module()
    for name, arguments in _kernel_arguments().items():
        function = getattr(native, name)
        parameters = inspect.signature(function).parameters
        assert list(parameters) == list(arguments)
        assert all(p.kind == p.KEYWORD_ONLY for p in parameters.values())
        assert 'Every argument is passed by keyword' in function.__doc__
        with pytest.raises(TypeError, match=r'^{}\(\) takes keyword '
                           r'arguments only, got {} positional$'.format(
                               name, len(arguments))):
            function(*arguments.values())


@needs_native
def test_a_refused_kernel_call_changes_nothing():
    # The arguments are checked before any work: a bad index in the last
    # replica's order, or a range past the end, leaves every array as it
    # was; the same calls, well formed, write them.
    native = kernels.module()
    bad_order = numpy.tile(numpy.arange(20, dtype=numpy.int32), (16, 1))
    bad_order[-1, -1] = 20
    for name, changes, changed in [
            ('train_epoch', dict(order=bad_order), ('params', 'sums')),
            ('evaluate', dict(stop=2), ('out',)),
            ('adam', dict(stop=11), ('param', 'm', 'v'))]:
        arguments = _kernel_arguments()[name]
        good = dict(arguments)
        arguments.update(changes)
        before = {k: a.copy() for k, a in arguments.items()
                  if isinstance(a, numpy.ndarray)}
        with pytest.raises(ValueError):
            getattr(native, name)(**arguments)
        for k, a in before.items():
            numpy.testing.assert_array_equal(arguments[k], a, err_msg=k)
        getattr(native, name)(**good)
        for k in changed:
            assert (good[k] != before[k]).any(), (name, k)


@needs_native
def test_evaluate_reads_read_only_arrays():
    # Only out is written: weights and data may be read-only.  Zero weights
    # predict 0 for targets of 1: a mean squared error of exactly 1.
    native = kernels.module()
    arguments = _kernel_arguments()['evaluate']
    for name in ('params', 'x', 'y'):
        arguments[name] = _read_only(arguments[name])
    native.evaluate(**arguments)
    numpy.testing.assert_array_equal(arguments['out'], numpy.ones(16))


@needs_native
def test_the_kernels_limit_on_units_is_exported():
    # kernels.MAX_UNITS is the C check's own limit: one unit more is
    # refused there.
    arguments = _kernel_arguments()['evaluate']
    arguments['n_units'] = kernels.MAX_UNITS + 1
    with pytest.raises(ValueError, match=r'need 1 <= n_units <= {}; '.format(
            kernels.MAX_UNITS)):
        kernels.module().evaluate(**arguments)


@needs_native
def test_native_ensemble_refuses_more_units_than_the_kernels_train(
        monkeypatch):
    # Refused before the models are stacked (a copy of 268 MB a replica
    # just above the real limit); the limit lowered, the models are small.
    from minibatch_hybrid.engines import native

    def stack_models(models):
        raise AssertionError('stacked before the check')

    with monkeypatch.context() as patch:
        patch.setattr(kernels, 'MAX_UNITS', 4)
        patch.setattr(native, 'stack_models', stack_models)
        with pytest.raises(mh.SettingsError, match=(
                r'^the native engine trains at most 4 units a layer, not '
                r'5: --units must be at most 4 \(or use --engine numpy\)$')):
            NativeEnsemble.from_seeds([0, 1], n_units=5)
    monkeypatch.setattr(kernels, 'MAX_UNITS', 4)
    assert NativeEnsemble.from_seeds([0, 1], n_units=4).n_units == 4


@needs_native
def test_the_command_refuses_more_units_than_the_native_engine_trains(
        tmp_path):
    # One line, not the C check's traceback (the model of 8193 units is
    # drawn first: 268 MB).
    proc = subprocess.run(
        [sys.executable, '-m', 'minibatch_hybrid.cli', 'reproduce',
         '--engine', 'native', '-u', str(kernels.MAX_UNITS + 1), '-e', '2',
         '-o', str(tmp_path / 'out')],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        'minibatch-hybrid: error: the native engine trains at most {0} '
        'units a layer, not {1}: --units must be at most {0} (or use '
        '--engine numpy)'.format(kernels.MAX_UNITS, kernels.MAX_UNITS + 1)]


@needs_native
def test_native_ensemble_is_an_engine_of_params_m_and_v():
    from minibatch_hybrid.core.engine import Engine
    assert issubclass(NativeEnsemble, Engine)
    ensemble = NativeEnsemble.from_seeds([0], n_units=3)
    before = {k: ensemble.arrays(k) for k in ('params', 'm', 'v')}
    for call in (lambda: ensemble.load('t', before['params']),
                 lambda: ensemble.load('hyperparams', before['params']),
                 lambda: ensemble.arrays('groups')):
        with pytest.raises(mh.SettingsError, match=(
                r"^which must be 'params', 'm' or 'v' \(the weights or "
                r"Adam's moments\), not '(t|hyperparams|groups)'$")):
            call()
    for k, arrays in before.items():
        after = ensemble.arrays(k)
        for name, a in arrays.items():
            numpy.testing.assert_array_equal(after[name], a)
    assert isinstance(ensemble.hyperparams, dict) and ensemble.t == 0


@needs_native
def test_a_bad_kernel_set_is_refused_before_any_work(tmp_path):
    # MINIBATCH_HYBRID_KERNELS is checked at the command's start, with any
    # engine: refused in one line before any training or output folder.
    env = dict(os.environ, MINIBATCH_HYBRID_KERNELS='sse')
    proc = subprocess.run(
        [sys.executable, '-m', 'minibatch_hybrid.cli', 'reproduce',
         '--engine', 'numpy', '-e', '2', '-u', '4', '-o',
         str(tmp_path / 'out')],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        "minibatch-hybrid: error: MINIBATCH_HYBRID_KERNELS=sse: unknown "
        "kernel set 'sse'"), lines
    assert 'epoch' not in proc.stdout, proc.stdout
    assert not (tmp_path / 'out').exists()


@needs_native
def test_the_compiled_module_has_the_layouts_constants():
    # GROUP and EVAL_BATCH are written once, in _native_layout.h: Python
    # reads them there, the compiled module was built from it.
    from minibatch_hybrid.kernels import _native
    assert (_native.GROUP, _native.EVAL_BATCH) == (kernels.GROUP,
                                                  kernels.EVAL_BATCH)
    assert (kernels.GROUP, kernels.EVAL_BATCH) == (16, 10)
