"""One random permutation, reused in every epoch."""
import numpy

from minibatch_hybrid.schedules.base import SeededSchedule


class ShuffleOnce(SeededSchedule):
    """Visits the examples in one random permutation, the same every epoch.

    Args:
        seed (int): Non-negative seed of the permutation.

    """

    name = 'shuffle_once'

    def order(self, epoch, size):
        return numpy.random.default_rng([self.seed]).permutation(size)
