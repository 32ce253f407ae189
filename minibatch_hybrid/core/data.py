"""The post's data set: y = sin(x) on [0, 2*pi]."""
import chainer
import numpy

from minibatch_hybrid.checks import check_positive_int


class SinDataset(chainer.datasets.TupleDataset):
    """Pairs ``(x, y)`` of ``(N, 1)`` float32 arrays, also whole as
    :attr:`x` and :attr:`y` (NumPy or CuPy)."""

    def __init__(self, x, y):
        super().__init__(x, y)

    @property
    def x(self):
        return self._datasets[0]

    @property
    def y(self):
        return self._datasets[1]

    def to_device(self, device):
        """Returns the data set with both arrays sent to ``device``."""
        device = chainer.get_device(device)
        return SinDataset(device.send(self.x), device.send(self.y))


def _sin(x):
    # The post casts each batch of float64 x and sin(x) to float32: the same
    # values as casting once.
    return SinDataset(x.astype(numpy.float32).reshape(-1, 1),
                      numpy.sin(x).astype(numpy.float32).reshape(-1, 1))


def make_sin_dataset(n=1000):
    """Returns the post's training set: ``n`` evenly spaced x, ascending."""
    check_positive_int(n, 'n')
    return _sin(numpy.linspace(0, 2 * numpy.pi, n))


def make_heldout_dataset(n, seed):
    """Returns ``n`` held-out points, x uniform in [0, 2*pi) from ``seed``
    alone, sorted."""
    check_positive_int(n, 'n')
    rng = numpy.random.default_rng([seed, 0x5EED])
    return _sin(numpy.sort(rng.uniform(0, 2 * numpy.pi, n)))
