"""The native engine's arithmetic, written again in NumPy: the test oracle.

One mini-batch step of one replica, in the operations and orders that
``minibatch_hybrid/kernels/_native_body.h`` documents: each output of a
product is one chain of fused multiply-adds over its reduction index, in
increasing order, from zero; elementwise work in float32; Adam in Chainer's
operations.  NumPy has no fused multiply-add, so :func:`fma32` computes it
exactly: the product of two float32 in float64 is exact, the sum is rounded
to odd (TwoSum gives its error) and then to float32, which is the correctly
rounded result because float64 has more than 2 + 24 bits.
"""
import numpy

f32 = numpy.float32
f64 = numpy.float64


def fma32(a, b, c):
    """``a * b + c`` rounded once to float32 (arrays broadcast)."""
    p = numpy.asarray(a, f32).astype(f64) * numpy.asarray(b, f32).astype(f64)
    c = numpy.asarray(c, f32).astype(f64)
    s = p + c
    # TwoSum: e = (p + c) - s exactly.
    bb = s - p
    e = (p - (s - bb)) + (c - bb)
    # Round to odd: if inexact and s's last bit is even, step towards e.
    even = (numpy.asarray(s).view(numpy.uint64) & numpy.uint64(1)) == 0
    step = (e != 0) & even
    s = numpy.where(step, numpy.nextafter(s, numpy.where(e > 0, numpy.inf,
                                                         -numpy.inf)), s)
    return s.astype(f32)


def relu(z):
    return numpy.where(z > 0, z, f32(0)).astype(f32)


def adam(p, m, v, g, alpha_t, beta1=0.9, beta2=0.999, eps=1e-8, eta=1.0):
    """Chainer's float32 Adam update; returns new (p, m, v)."""
    m = m + f32(1.0 - beta1) * (g - m)
    v = v + f32(1.0 - beta2) * (g * g - v)
    a = f32(alpha_t) / (numpy.sqrt(v) + f32(eps))
    p = p + f32(-eta) * (a * m)
    return p, m, v


def step(params, m, v, x, t, alpha_t):
    """One step; ``params``, ``m``, ``v`` map Chainer's names ('l1/W', ...)
    to one replica's float32 arrays.  Returns (loss, params, m, v)."""
    W1, b1 = params['l1/W'][:, 0], params['l1/b']
    W2, b2 = params['l2/W'], params['l2/b']
    W3, b3 = params['l3/W'][0], params['l3/b']
    B, n = len(x), len(b1)
    x, t = numpy.asarray(x, f32), numpy.asarray(t, f32)
    h1 = relu(x[:, None] * W1[None, :] + b1[None, :])
    z = numpy.zeros((B, n), f32)
    for i in range(n):                       # chain over i
        z = fma32(h1[:, i:i + 1], W2[None, :, i], z)
    h2 = relu(z + b2[None, :])
    y = numpy.zeros(B, f32)
    for o in range(n):
        y = fma32(h2[:, o], W3[o], y)
    d = (y + b3[0]) - t
    total = f32(0)
    for b in range(B):
        total = fma32(d[b], d[b], total)
    loss = total / f32(B)
    gy = d * f32(2.0 / B)
    gb3 = f32(0)
    for b in range(B):
        gb3 = gb3 + gy[b]
    gW3 = numpy.zeros(n, f32)
    for b in range(B):
        gW3 = fma32(gy[b], h2[b], gW3)
    g2 = numpy.where(h2 > 0, gy[:, None] * W3[None, :], f32(0)).astype(f32)
    gb2 = numpy.zeros(n, f32)
    for b in range(B):
        gb2 = gb2 + g2[b]
    g1 = numpy.zeros((B, n), f32)
    for o in range(n):                       # chain over o, old W2
        g1 = fma32(g2[:, o:o + 1], W2[None, o, :], g1)
    gW2 = numpy.zeros((n, n), f32)
    for b in range(B):
        gW2 = fma32(g2[b][:, None], h1[b][None, :], gW2)
    g1 = numpy.where(h1 > 0, g1, f32(0)).astype(f32)
    gW1 = numpy.zeros(n, f32)
    gb1 = numpy.zeros(n, f32)
    for b in range(B):
        gW1 = fma32(g1[b], x[b], gW1)
        gb1 = gb1 + g1[b]
    grads = {'l1/W': gW1[:, None], 'l1/b': gb1, 'l2/W': gW2, 'l2/b': gb2,
             'l3/W': gW3[None, :], 'l3/b': numpy.array([gb3], f32)}
    out = {}, {}, {}
    for name, g in grads.items():
        p, mm, vv = adam(params[name], m[name], v[name], g, alpha_t)
        out[0][name], out[1][name], out[2][name] = p, mm, vv
    return (loss,) + out


def mse(params, x, t, batch=10):
    """The evaluation: one chain of d^2 over all points, / N."""
    W1, b1 = params['l1/W'][:, 0], params['l1/b']
    W2, b2 = params['l2/W'], params['l2/b']
    W3, b3 = params['l3/W'][0], params['l3/b']
    x, t = numpy.asarray(x, f32), numpy.asarray(t, f32)
    h1 = relu(x[:, None] * W1[None, :] + b1[None, :])
    z = numpy.zeros((len(x), len(b1)), f32)
    for i in range(len(b1)):
        z = fma32(h1[:, i:i + 1], W2[None, :, i], z)
    h2 = relu(z + b2[None, :])
    y = numpy.zeros(len(x), f32)
    for o in range(len(b1)):
        y = fma32(h2[:, o], W3[o], y)
    d = (y + b3[0]) - t
    total = f32(0)
    for k in range(len(x)):
        total = fma32(d[k], d[k], total)
    return total / f32(len(x))
