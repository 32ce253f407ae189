"""Orders given in advance, one per epoch."""
import numpy

from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.schedules.base import Schedule


class Replay(Schedule):
    """Visits the examples in orders given in advance (recorded elsewhere).

    Args:
        orders (list of array): The order of epoch ``e`` is ``orders[e]``.

    """

    name = 'replay'

    def __init__(self, orders):
        self.orders = [numpy.asarray(o) for o in orders]
        self.epochs = len(self.orders)

    def order(self, epoch, size):
        order = self.orders[epoch]
        if len(order) != size:
            raise SettingsError(
                'the order of epoch {} has {} indices, but the data set has '
                '{}'.format(epoch, len(order), size))
        return order
