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
            Chainer's own reason (a missing or broken CuPy, say); there is
            no silent fall-back to the CPU.

    """
    if isinstance(spec, str):
        try:
            spec = int(spec)
        except ValueError:
            pass
    try:
        device = chainer.get_device(spec)
    except _DEVICE_ERRORS as e:
        reason = getattr(chainer.backends.cuda, '_resolution_error', None)
        hint = ''
        if reason is not None and (spec == 0 or isinstance(spec, int) and
                                   spec >= 0 or 'cupy' in str(spec)):
            hint = ' CuPy could not be used: {!r}.'.format(reason)
        raise SettingsError(
            'cannot use device {!r}: {}.{} Use "@numpy" (or -1) for the CPU, '
            '"@cupy:N" (or N) for GPU N with CuPy installed.'.format(
                spec, str(e).replace('\n', ' '), hint)) from e
    device.use()
    return device
