"""Device selection with Chainer's specifiers, failing loudly."""
import chainer
import chainerx

from minibatch_hybrid.errors import SettingsError

#: What :func:`chainer.get_device` raises for a specifier it cannot use
#: (ChainerX's errors, where it is built, derive from Exception alone).
_DEVICE_ERRORS = (ValueError, TypeError, RuntimeError) + tuple(
    getattr(chainerx, name) for name in (
        'ChainerxError', 'ContextError', 'BackendError', 'DeviceError')
    if chainerx.is_available())


def get_device(spec='@numpy'):
    """Returns the device of Chainer's ``spec`` (``'@numpy'``, ``'@cupy:0'``,
    -1, 0, ``'0'``, ...) made current, or a one-line SettingsError."""
    try:
        spec = int(spec) if isinstance(spec, str) else spec
    except ValueError:
        pass
    try:
        device = chainer.get_device(spec)
    except _DEVICE_ERRORS as e:
        raise SettingsError(
            'cannot use device {!r}: {}. Use "@numpy" (or -1) for the CPU, '
            '"@cupy:N" (or N) for GPU N with CuPy installed.'.format(
                spec, _detail(spec, e))) from e
    try:
        device.use()
    except RuntimeError as e:  # CuPy's CUDA errors: no driver, no device N
        named = '' if str(device) == str(spec) else ' ({})'.format(device)
        raise SettingsError(
            'cannot use device {!r}{}: CuPy says {}: {}.'.format(
                spec, named, type(e).__name__, _one_line(e).rstrip('.'))) \
            from e
    return device


def _one_line(error):
    return ' '.join(str(error).split())


def _detail(spec, error):
    # Why CuPy did not import, where a GPU is asked for (where CuPy works,
    # _resolution_error may be cuDNN's: not the cause), said once.
    said = _one_line(error).rstrip('.')
    cuda = chainer.backends.cuda
    if cuda.available or not (
            isinstance(spec, int) and not isinstance(spec, bool) and
            spec >= 0 or isinstance(spec, str) and 'cupy' in spec):
        return said
    reason = getattr(cuda, '_resolution_error', None)
    if reason is None:
        return said + '; CuPy could not be used'
    unusable = 'CuPy could not be used: {}: {}'.format(
        type(reason).__name__, _one_line(reason))
    return unusable if str(reason) in str(error) else said + '; ' + unusable
