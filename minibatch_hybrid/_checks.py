"""Argument checks shared by the package, with messages that say the fix."""


def check_positive_int(value, what):
    """Raises ValueError unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError('{} must be a positive integer, got {!r}'.format(
            what, value))


def check_batchsize(batchsize, size):
    """Raises ValueError unless ``1 <= batchsize <= size``."""
    if isinstance(batchsize, bool) or not isinstance(batchsize, int) \
            or not 1 <= batchsize <= size:
        raise ValueError(
            'batch size must be an integer from 1 to the data set size {}, '
            'got {!r}'.format(size, batchsize))


def check_run(epochs, batchsize, n_units, n_data, n_heldout):
    """Checks the settings every experiment shares (reproduce, study)."""
    for value, what in ((epochs, 'epochs'), (n_units, 'n_units'),
                        (n_data, 'n_data'), (n_heldout, 'n_heldout')):
        check_positive_int(value, what)
    check_batchsize(batchsize, n_data)


def check_seed(value, what='seed'):
    """Raises ValueError unless ``value`` is an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError('{} must be a non-negative integer, got {!r}'.format(
            what, value))
