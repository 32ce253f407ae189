"""Random reshuffling: a fresh permutation every epoch."""
from minibatch_hybrid.schedules.base import SeededSchedule
from minibatch_hybrid.schedules.base import epoch_generator


class Random(SeededSchedule):
    """Visits the examples in a fresh random permutation every epoch.

    The post's "normal" order, Chainer's ``shuffle=True``, except that the
    permutation of epoch ``e`` depends only on ``(seed, e)``.

    Args:
        seed (int): Non-negative seed of the permutations.

    """

    name = 'random'

    def order(self, epoch, size):
        return epoch_generator(self.seed, epoch).permutation(size)
