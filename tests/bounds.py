"""Error bounds of one float32 training step, derived from the arithmetic.

The engines of this package (Chainer's path on a BLAS, the numpy engine's
batched products, the native engine's FMA chains, CuPy on cuBLAS) compute
the same step in different orders, so their float32 results differ.  What
they share is a guarantee of floating-point arithmetic: every operation is
rounded to nearest, so a dot product of ``k`` terms, summed in *any* order,
with or without fused multiply-adds, is within ``gamma(k) * sum |a_i b_i|``
of the exact one, ``gamma(k) = k u / (1 - k u)`` with ``u = 2**-24``
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 3.1).

:func:`step_bounds` carries such bounds through one step of MyChain with
Adam, operation by operation (a *running* error analysis): for every
quantity it returns the exact value, computed in float64 from the same
float32 inputs, and a bound ``e`` such that any float32 engine's result
lies within ``e`` of it.  The bound grows with the data, not with a
tolerance chosen on some machine, so a test that holds an engine to it
holds on every CPU, BLAS and GPU.  It assumes no overflow; subnormals may
be flushed (an absolute ``TINY`` per operation covers it); and constants
(``1 - beta1``, ``1 - beta2``, ``2 / B``, Adam's step size) are computed in
float64 and rounded once to float32, as Chainer (CPU and GPU) and the
native engine do: an engine that computed ``1 - 0.9`` in float32 would be
4 ulps off in that constant and could fall outside.

What each step of the derivation uses:

* products and sums: ``|fl(sum) - sum| <= gamma(k) * sum |terms|``, and an
  input error ``ea`` of a factor adds ``ea |b|`` (plus ``ea eb``);
* ReLU is 1-Lipschitz, so an error passes through it unchanged, and a
  unit whose pre-activation is negative beyond its error is exactly 0;
* ReLU's mask in the backward pass is certain where the exact
  pre-activation is further from zero than its error bound; elsewhere an
  engine may take either branch, and the bound there is the gradient's
  whole size;
* Adam's elementwise operations: a few roundings each, ``gamma(c)`` times
  the sizes of their operands, whatever their order (Chainer's CPU and GPU
  updates order them differently).
"""
import numpy

f64 = numpy.float64

#: float32's unit roundoff, plus float64's: the exact values here are
#: computed in float64, whose own error is added to every bound.
U = 2.0 ** -24 + 2.0 ** -53

#: The smallest normal float32: the most that flushing a subnormal result
#: to zero can change it by.
TINY = float(numpy.finfo(numpy.float32).tiny)

LINKS = ('l1/W', 'l1/b', 'l2/W', 'l2/b', 'l3/W', 'l3/b')


def gamma(k):
    """Relative bound of ``k`` successive roundings."""
    return k * U / (1 - k * U)


def _as64(arrays):
    return {name: numpy.asarray(a, f64) for name, a in arrays.items()}


def _product(a, ea, b, eb, k, bias=None):
    """``a @ b (+ bias)`` and its bound, from inputs within ``ea``, ``eb``.

    ``a`` and ``b`` are exact values; the engine multiplies its own
    inputs, which lie within ``ea`` and ``eb`` of them, over ``k`` terms.
    """
    # An engine that flushes subnormal inputs to zero moves them by less
    # than TINY: part of the inputs' errors.
    ea, eb = ea + TINY, eb + TINY
    exact = a @ b
    size = (numpy.abs(a) + ea) @ (numpy.abs(b) + eb)
    error = ea @ numpy.abs(b) + numpy.abs(a) @ eb + ea @ eb
    terms = k
    if bias is not None:
        exact = exact + bias
        size = size + numpy.abs(bias)
        terms += 1
    # Without FMA, 2 terms - 1 operations, each of which may flush.
    return exact, error + gamma(terms) * size + 2 * terms * TINY


def _relu(z, e_z):
    """ReLU and its bound: an error passes through (ReLU is 1-Lipschitz),
    except where ``z + e_z <= 0``: there every engine's pre-activation is
    negative or zero, so its ReLU is exactly 0, as the exact one."""
    return numpy.maximum(z, 0), numpy.where(z + e_z <= 0, 0, e_z)


def forward(params, x, t):
    """Exact forward values of MyChain's loss and their bounds.

    Args:
        params: Chainer's names (``'l1/W'``, ...) to float32 arrays.
        x, t: ``(B, 1)`` inputs and targets.

    Returns:
        dict: ``name -> (exact, bound)`` for ``z1, h1, z2, h2, d, loss``.

    """
    p = _as64(params)
    x, t = numpy.asarray(x, f64), numpy.asarray(t, f64)
    zero_x = numpy.zeros_like(x)
    z1, e_z1 = _product(x, zero_x, p['l1/W'].T, 0 * p['l1/W'].T, 1,
                        p['l1/b'])
    h1, e_h1 = _relu(z1, e_z1)
    z2, e_z2 = _product(h1, e_h1, p['l2/W'].T, 0 * p['l2/W'].T,
                        p['l2/W'].shape[1], p['l2/b'])
    h2, e_h2 = _relu(z2, e_z2)
    y, e_y = _product(h2, e_h2, p['l3/W'].T, 0 * p['l3/W'].T,
                      p['l3/W'].shape[1], p['l3/b'])
    d = y - t
    e_d = e_y + gamma(1) * (numpy.abs(d) + e_y) + TINY
    batch = len(x)
    exact_sum = float((d * d).sum())
    size = numpy.abs(d) + e_d
    e_sum = float(((2 * numpy.abs(d) + e_d) * e_d).sum() +
                  gamma(batch) * (size * size).sum() + batch * TINY)
    # The division: one rounding, or two where NumPy 1.x divides a float32
    # scalar by an int in float64 and casts back.
    e_loss = e_sum / batch + gamma(2) * (exact_sum + e_sum) / batch + TINY
    return dict(z1=(z1, e_z1), h1=(h1, e_h1), z2=(z2, e_z2), h2=(h2, e_h2),
                d=(d, e_d), loss=(exact_sum / batch, e_loss))


def _masked(g, e_g, z, e_z):
    """ReLU's backward: ``g * (z > 0)`` where the mask is certain; where
    ``|z| <= e_z`` an engine may take either branch."""
    exact = numpy.where(z > 0, g, 0)
    uncertain = numpy.abs(z) <= e_z + TINY
    bound = numpy.where(uncertain, numpy.abs(g) + e_g,
                        numpy.where(z > 0, e_g, 0))
    return exact, bound


def _column_sum(g, e_g):
    """``g.sum(axis=0)`` over the batch and its bound."""
    batch = len(g)
    return (g.sum(axis=0), e_g.sum(axis=0) +
            gamma(batch) * (numpy.abs(g) + e_g).sum(axis=0) + batch * TINY)


def gradients(params, x, t):
    """Exact gradients of MyChain's loss (mean over the batch) and bounds.

    Returns:
        dict: Chainer's names to ``(exact, bound)``, plus ``'loss'``.

    """
    p = _as64(params)
    x = numpy.asarray(x, f64)
    fw = forward(params, x, t)
    (z1, e_z1), (h1, e_h1) = fw['z1'], fw['h1']
    (z2, e_z2), (h2, e_h2) = fw['z2'], fw['h2']
    d, e_d = fw['d']
    batch = len(x)
    c = 2.0 / batch
    gy = c * d
    # The factor 2 / B is itself rounded to float32, then multiplied.
    e_gy = c * e_d + gamma(2) * c * (numpy.abs(d) + e_d) + TINY
    zero = numpy.zeros_like
    out = {'loss': fw['loss']}
    out['l3/W'] = _product(gy.T, e_gy.T, h2, e_h2, batch)
    out['l3/b'] = _column_sum(gy, e_gy)
    W3 = p['l3/W']
    g_h2 = _product(gy, e_gy, W3, zero(W3), 1)
    g_z2 = _masked(*g_h2, z2, e_z2)
    out['l2/W'] = _product(g_z2[0].T, g_z2[1].T, h1, e_h1, batch)
    out['l2/b'] = _column_sum(*g_z2)
    W2 = p['l2/W']
    g_h1 = _product(g_z2[0], g_z2[1], W2, zero(W2), W2.shape[0])
    g_z1 = _masked(*g_h1, z1, e_z1)
    out['l1/W'] = _product(g_z1[0].T, g_z1[1].T, x, zero(x), batch)
    out['l1/b'] = _column_sum(*g_z1)
    return out


def adam(p, m, v, g, e_g, alpha_t, beta1=0.9, beta2=0.999, eps=1e-8):
    """Exact Adam update (Chainer's formulas) and bounds of its results.

    ``g`` is the exact gradient and ``e_g`` its bound; ``p``, ``m``,
    ``v`` are the shared float32 state, ``alpha_t`` Chainer's step size.

    Returns:
        dict: ``'p'``, ``'m'``, ``'v'`` to ``(exact, bound)``.

    """
    p, m, v = (numpy.asarray(a, f64) for a in (p, m, v))
    c1, c2 = 1 - beta1, 1 - beta2
    size_g = numpy.abs(g) + e_g
    # m += (1 - beta1) * (g - m): the constant rounded, then three
    # operations.
    m1 = m + c1 * (g - m)
    e_m = c1 * e_g + gamma(4) * (numpy.abs(m) + c1 * (size_g + numpy.abs(m))
                                 ) + 4 * TINY
    # v += (1 - beta2) * (g * g - v)
    v1 = v + c2 * (g * g - v)
    e_v = (c2 * (2 * numpy.abs(g) + e_g) * e_g +
           gamma(5) * (numpy.abs(v) + c2 * (size_g ** 2 + numpy.abs(v))) +
           5 * TINY)
    # p -= alpha_t * m / (sqrt(v) + eps), in either of Chainer's orders.
    s = numpy.sqrt(v1)
    # |sqrt(a) - sqrt(b)| <= min(sqrt|a - b|, |a - b| / sqrt(b)).
    with numpy.errstate(divide='ignore', invalid='ignore'):
        e_s = numpy.minimum(numpy.sqrt(e_v),
                            numpy.where(v1 > 0, e_v / s, numpy.inf))
    denominator = s + eps
    low = numpy.maximum(s - e_s, 0) + eps
    ratio = m1 / denominator
    e_ratio = (e_m * denominator + numpy.abs(m1) * e_s) / (denominator * low)
    p1 = p - alpha_t * ratio
    # sqrt, + eps, the step size rounded to float32, /, *, *, +: seven
    # roundings of the update, one of the sum.
    size_update = alpha_t * (numpy.abs(ratio) + e_ratio)
    e_p = (alpha_t * e_ratio + gamma(7) * size_update +
           gamma(1) * (numpy.abs(p) + (1 + gamma(7)) * size_update) +
           16 * TINY)
    return {'p': (p1, e_p), 'm': (m1, e_m), 'v': (v1, e_v)}


def step(params, m, v, x, t, alpha_t):
    """One step of MyChain with Adam from a shared state: exact values of
    the loss and of every parameter and moment after it, with bounds.

    Args:
        params, m, v: Chainer's names to float32 arrays (one replica).
        x, t: The mini-batch, ``(B, 1)``.
        alpha_t (float): Chainer's step size for this step.

    Returns:
        dict: ``'loss'`` to ``(exact, bound)``; ``'params'``, ``'m'``,
        ``'v'`` to dicts of Chainer's names to ``(exact, bound)``.

    """
    grads = gradients(params, x, t)
    out = {'loss': grads['loss'], 'params': {}, 'm': {}, 'v': {}}
    for name in LINKS:
        g, e_g = grads[name]
        new = adam(params[name], m[name], v[name], g.reshape(
            numpy.shape(params[name])), e_g.reshape(numpy.shape(
                params[name])), alpha_t)
        out['params'][name], out['m'][name], out['v'][name] = \
            new['p'], new['m'], new['v']
    return out


def excess(got, exact, bound):
    """How far ``got`` lies outside ``exact +- bound``, at most (<= 0 when
    every element is within its bound)."""
    got = numpy.asarray(got, f64)
    return float(numpy.max(numpy.abs(got - exact) - bound))


def check(got, expected, what=''):
    """Asserts that ``got`` lies within an ``(exact, bound)`` pair."""
    exact, bound = expected
    over = excess(got, exact, bound)
    assert over <= 0, '{} lies {:.3g} outside its bound'.format(what, over)
