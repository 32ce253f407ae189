"""Argument checks shared by the package, with messages that say the fix."""


def check_positive_int(value, what):
    """Raises ValueError unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError('{} must be a positive integer, got {!r}'.format(
            what, value))


def check_seed(value, what='seed'):
    """Raises ValueError unless ``value`` is an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError('{} must be a non-negative integer, got {!r}'.format(
            what, value))
