"""The data set of the post: y = sin(x) on [0, 2*pi]."""
import chainer
import numpy

from minibatch_hybrid.checks import check_positive_int


class SinDataset(chainer.datasets.TupleDataset):
    """Pairs ``(x, sin(x))`` as float32 column arrays, built once.

    It is a :class:`chainer.datasets.TupleDataset`, so Chainer's iterators
    and ``concat_examples`` accept it; :attr:`x` and :attr:`y` give the
    whole ``(N, 1)`` arrays, which the training loop indexes directly.

    Args:
        x (array): ``(N, 1)`` float32 inputs (NumPy or CuPy).
        y (array): ``(N, 1)`` float32 targets on the same device.

    """

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


def _from_float64(x):
    # The post keeps x and sin(x) in float64 and casts each batch to float32;
    # casting once gives the same float32 values.
    return SinDataset(x.astype(numpy.float32).reshape(-1, 1),
                      numpy.sin(x).astype(numpy.float32).reshape(-1, 1))


def make_sin_dataset(n=1000):
    """Returns the post's training set: ``n`` evenly spaced x in [0, 2*pi].

    Args:
        n (int): Number of points (the post: 1000).

    Returns:
        SinDataset: On the CPU, in ascending x (the post's fixed order).

    """
    check_positive_int(n, 'n')
    return _from_float64(numpy.linspace(0, 2 * numpy.pi, n))


def make_heldout_dataset(n, seed):
    """Returns ``n`` held-out points with x drawn uniformly from [0, 2*pi).

    Args:
        n (int): Number of points.
        seed (int): Seed of the draw; the generator is used for nothing else.

    Returns:
        SinDataset: On the CPU, x sorted ascending.

    """
    check_positive_int(n, 'n')
    rng = numpy.random.default_rng([seed, 0x5EED])
    return _from_float64(numpy.sort(rng.uniform(0, 2 * numpy.pi, n)))
