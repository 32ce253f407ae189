"""Device selection with Chainer's specifiers, failing loudly."""
import chainer
import chainerx

from minibatch_hybrid.errors import SettingsError

#: What :func:`chainer.get_device` raises for a specifier it cannot turn
#: into a device: a malformed one (ValueError, TypeError: ``'@numpy:1'``,
#: ``'@cupy:x'``, ``1.5``) or one whose backend cannot be used here
#: (RuntimeError: a GPU without CuPy, ``'@intel64'`` without iDeep, a name
#: without ``@`` without ChainerX), and, where ChainerX is built, its
#: errors for a backend or device it does not have (each derives from
#: Exception alone).
_DEVICE_ERRORS = (ValueError, TypeError, RuntimeError) + tuple(
    getattr(chainerx, name) for name in (
        'ChainerxError', 'ContextError', 'BackendError', 'DeviceError')
    if chainerx.is_available())


def get_device(spec='@numpy'):
    """Returns the Chainer device for ``spec`` and makes it current.

    Args:
        spec: A Chainer device specifier: ``'@numpy'`` or ``-1`` for the
            CPU, ``'@cupy:0'`` or ``0`` for the first GPU.  Strings of
            integers (``'-1'``, ``'0'``) are accepted, as from a command line.

    Returns:
        chainer.backend.Device

    Raises:
        SettingsError: If the specifier is malformed or its device cannot be
            used.  A GPU that is asked for but not usable is an error with
            the real reason in one line: why CuPy could not be imported
            (never a missing cuDNN, which Chainer does without), or CuPy's
            error when the device is made current (no driver, no such
            GPU); there is no silent fall-back to the CPU.

    """
    if isinstance(spec, str):
        try:
            spec = int(spec)
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


def _asks_for_cupy(spec):
    return isinstance(spec, int) and not isinstance(spec, bool) and \
        spec >= 0 or isinstance(spec, str) and 'cupy' in spec


def _detail(spec, error):
    # Chainer's message for a CuPy that did not import ends with CuPy's
    # error, glued on: then the cause alone is said.
    unusable = _cupy_unusable(spec)
    reason = getattr(chainer.backends.cuda, '_resolution_error', None)
    if unusable is None:
        return _one_line(error).rstrip('.')
    if reason is not None and str(reason) in str(error):
        return unusable
    return '{}; {}'.format(_one_line(error).rstrip('.'), unusable)


def _cupy_unusable(spec):
    """Why CuPy cannot be used, for a specifier that asks for it, or None.

    Chainer keeps in ``_resolution_error`` the last error of its CuPy
    imports: CuPy's own where ``available`` is False, but cuDNN's where CuPy
    works and only cuDNN is missing (CuPy 14 has none).  Only the former
    says why a GPU cannot be used; where CuPy works, Chainer's own message
    says what is wrong with the specifier.

    """
    cuda = chainer.backends.cuda
    if cuda.available or not _asks_for_cupy(spec):
        return None
    reason = getattr(cuda, '_resolution_error', None)
    if reason is None:
        return 'CuPy could not be used'
    return 'CuPy could not be used: {}: {}'.format(
        type(reason).__name__, _one_line(reason))
