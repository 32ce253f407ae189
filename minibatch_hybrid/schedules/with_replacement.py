"""Sampling with replacement: i.i.d. uniform indices."""
from minibatch_hybrid.schedules.base import SeededSchedule
from minibatch_hybrid.schedules.base import epoch_generator


class WithReplacement(SeededSchedule):
    """Draws each epoch's ``size`` indices independently and uniformly, as
    in the textbook analysis of SGD.

    Args:
        seed (int): Non-negative seed of the draws.

    """

    name = 'with_replacement'

    def order(self, epoch, size):
        return epoch_generator(self.seed, epoch).integers(0, size, size)
