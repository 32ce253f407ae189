"""The settings every experiment shares, written once.

:class:`Settings` holds them: their defaults (the post's), their checks,
the command-line option that gives each, and the memory estimate.  The
reproduction's and the study's settings
(:class:`~minibatch_hybrid.experiments.reproduce.ReproductionConfig`,
:class:`~minibatch_hybrid.experiments.study.StudyConfig`) build on it, the
Trainer example and the benchmark use it, and both command lines (the
``minibatch-hybrid`` command and ``scripts/train_chainer.py``) add their
shared options with :func:`add_options`, so that none of them can drift.

.. doctest::

    >>> Settings()
    Settings(epochs=500, batchsize=10, n_units=100, n_data=1000, \
n_heldout=1000, device='@numpy', engine='numpy')
    >>> default_schedules(500)
    ['random', 'fixed:250+random:250']

"""
import dataclasses

from minibatch_hybrid import checks
from minibatch_hybrid.core.model import n_params
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.schedules.text import HYBRID_HALVES
from minibatch_hybrid.schedules.text import hybrid_halves

#: The schedules compared by default, as text: the post's pair, random
#: order against the hybrid over E epochs, fixed order for the first half
#: and random for the rest (:func:`default_schedules` writes them out).
DEFAULT_SCHEDULES = ('random', HYBRID_HALVES)

#: Float32 copies of its parameters that a model in training holds: the
#: weights, their gradients, Adam's two moments and a step's temporaries.
STATE_COPIES = 10

#: Bytes of one run's record of one epoch kept as Python objects: a log
#: entry, or rows of the CSV and JSON files.
ROW_BYTES = 200

#: Bytes of one run's record of one epoch kept as a float64 value, twice
#: (while a study's results are put together).
ARRAY_BYTES = 16

#: The default seed.
SEED = 0


#: The engines one can ask for (:mod:`~minibatch_hybrid.engines` runs them).
ENGINES = ('auto', 'native', 'numpy')


def check_engine(engine, choices=ENGINES):
    """Raises :class:`SettingsError` unless ``engine`` is one of
    ``choices`` (by default :data:`ENGINES`; an experiment may allow
    fewer)."""
    if engine not in choices:
        raise SettingsError('unknown engine {!r}: choose one of {}'.format(
            engine, ', '.join(choices)))


def setting(default, help, flags=(), type=None, choices=None):
    """Returns the dataclass field of a setting.

    Args:
        default: Its default value.
        help (str): What it is, for ``--help``; ``(default: ...)`` is
            added unless the text says where the default goes, as
            ``{default}``.
        flags (tuple of str): Its command-line option, the long name
            first (whose name, less the dashes, is the option's
            destination), if it has one.
        type (callable): Converts the option's text.
        choices (tuple): The values it may take, if only a few.

    Returns:
        dataclasses.Field

    """
    return dataclasses.field(default=default, metadata={
        'help': help, 'flags': tuple(flags), 'type': type,
        'choices': choices})


def seed_setting():
    """Returns the field of a run's seed (a setting of the reproduction and
    of the Trainer example; a study has seeds of its own)."""
    return setting(SEED, 'seed of the initial weights, the random orders '
                   'and the held-out points', ('--seed',), int)


@dataclasses.dataclass
class Settings:
    """The settings every experiment shares; the defaults are the post's.

    The fields are checked when the settings are made: a value out of its
    range raises :class:`~minibatch_hybrid.errors.SettingsError`, whose
    message says what to give instead.

    Args:
        epochs (int): Epochs of every run (the post: 500).
        batchsize (int): Mini-batch size (the post: 10).
        n_units (int): Hidden width (the post: 100).
        n_data (int): Training points (the post: 1000).
        n_heldout (int): Held-out points, x uniform in [0, 2*pi).
        device: Chainer device specifier (``'@numpy'``, ``'@cupy:0'``,
            ...).
        engine (str): The arithmetic of the training: ``'numpy'``
            (Chainer's operations), ``'native'`` (the compiled kernels')
            or ``'auto'`` (native where it runs); a subclass may allow
            fewer, or default to another.

    """

    epochs: int = setting(500, 'epochs of every run', ('--epoch', '-e'),
                          int)
    batchsize: int = setting(10, 'mini-batch size (default: {default}, as '
                             'the post)', ('--batchsize', '-b'), int)
    n_units: int = setting(100, 'hidden units per layer', ('--units', '-u'),
                           int)
    n_data: int = setting(1000, 'training points')
    n_heldout: int = setting(1000, 'held-out points')
    device: object = setting(
        '@numpy', 'Chainer device specifier: @numpy or -1 for the CPU, '
        '@cupy:0 or 0 for the first GPU', ('--device', '-d'))
    engine: str = setting(
        'numpy', "the arithmetic: numpy (Chainer's operations), native (the "
        "compiled kernels', the same numbers on every CPU) or auto (native "
        'where it runs)', ('--engine',), choices=ENGINES)

    def __post_init__(self):
        self.check()

    def check(self):
        """Raises SettingsError unless every setting is in its range."""
        self.check_engine()
        self.check_sizes()

    def check_engine(self):
        """Raises SettingsError unless the engine is one of the choices."""
        check_engine(
            self.engine, _fields(type(self))['engine'].metadata['choices'])

    def check_sizes(self):
        """Raises SettingsError unless the epochs, the sizes of the model
        and the data, and the batch size are in their ranges."""
        fields = _fields(type(self))
        for name in ('epochs', 'n_units', 'n_data', 'n_heldout',
                     'batchsize'):
            try:
                if name == 'batchsize':
                    checks.check_batchsize(self.batchsize, self.n_data)
                    continue
                checks.check_positive_int(getattr(self, name), name)
            except SettingsError as e:
                values = 'from 1 to {}'.format(self.n_data) \
                    if name == 'batchsize' else '1 or more'
                raise SettingsError(str(e) + _give(fields[name], values)) \
                    from None

    def memory(self, replicas=1, records=0, record_bytes=ROW_BYTES):
        """Returns the bytes that work with these settings holds at once,
        roughly: one formula for every experiment.

        Each model in training holds :data:`STATE_COPIES` float32 copies
        of its parameters and the float32 activations of its three layers
        on a mini-batch and on a whole data set (an evaluation); each
        per-epoch record takes ``record_bytes``.

        Args:
            replicas (int): Models in training at once.
            records (int): Per-epoch records held at once: epochs times
                runs.
            record_bytes (int): Bytes of one record: :data:`ROW_BYTES`
                (Python objects) or :data:`ARRAY_BYTES` (float64 arrays).

        Returns:
            int: Bytes.

        """
        n = self.n_units
        points = self.batchsize + max(self.n_data, self.n_heldout)
        replica = 4 * (STATE_COPIES * n_params(n) + 3 * n * points)
        return replicas * replica + records * record_bytes

    def check_run_memory(self, needed, available=None):
        """Raises SettingsError unless a run of one model with these
        settings fits in memory here.

        Args:
            needed (int): The bytes it needs (see :meth:`memory`).
            available (int): The bytes free; by default those of this
                machine (:func:`~minibatch_hybrid.checks.check_memory`).

        """
        checks.check_memory(needed, 'this run ({} epochs, {} hidden '
                            'units)'.format(self.epochs, self.n_units),
                            'use fewer --epoch or --units', available)

    def to_dict(self):
        """Returns the settings as a dict, in the order that the files
        have always had: the experiment's own settings, then the device
        and the engine."""
        settings = dataclasses.asdict(self)
        for name in ('device', 'engine'):
            settings[name] = settings.pop(name)
        return settings


def _fields(settings):
    """``{name: field}`` of a Settings class."""
    return {field.name: field for field in dataclasses.fields(settings)}


def default(name, settings=Settings):
    """Returns the default of setting ``name`` (the post's, for the shared
    settings) in ``settings`` (a :class:`Settings` class).

    .. doctest::

        >>> default('epochs'), default('seed')
        (500, 0)

    """
    if name == 'seed' and name not in _fields(settings):
        return SEED
    return _fields(settings)[name].default


def _give(field, values):
    """The end of a message that names the option giving ``field``."""
    flags = field.metadata.get('flags')
    return '; give {} {}'.format(flags[0], values) if flags else ''


def default_schedules(epochs, epoch_option='--epoch',
                      schedule_option='--schedules'):
    """Returns the schedules compared by default over ``epochs`` epochs, as
    text: :data:`DEFAULT_SCHEDULES` written out (see
    :func:`~minibatch_hybrid.schedules.text.hybrid_halves`, which raises
    SettingsError, naming the two options, if ``epochs`` is too short)."""
    return ['random', hybrid_halves(epochs, epoch_option, schedule_option)]


def option_fields(settings=Settings):
    """Returns ``{name: field}`` of the settings that have an option.

    Args:
        settings (type): :class:`Settings` or a subclass.  A class without
            a seed of its own also has the seed's option
            (:func:`seed_setting`).

    """
    fields = {'seed': seed_setting()}
    fields.update(_fields(settings))
    return {name: field for name, field in fields.items()
            if field.metadata.get('flags')}


def option_dest(field):
    """The name under which argparse stores a setting's option."""
    return field.metadata['flags'][0].lstrip('-').replace('-', '_')


def add_options(parser, names, settings=Settings, quick=None,
                defaults=None, helps=None, aliases=None):
    """Adds the options of shared settings to a command-line parser.

    Every option's flags, type, choices, default and help come from the
    field of ``settings`` (see :func:`setting`), so that every command
    that gives a setting gives it the same way.

    Args:
        parser (argparse.ArgumentParser): Takes the options.
        names (sequence of str): The settings, by field name, in the order
            of their options: ``'epochs'`` (``--epoch/-e``),
            ``'batchsize'`` (``--batchsize/-b``), ``'n_units'``
            (``--units/-u``), ``'device'`` (``--device/-d``), ``'seed'``
            (``--seed``), ``'engine'`` (``--engine``), and those of a
            subclass (a study's ``'seeds'``, ``'first_seed'``,
            ``'chunk'``).
        settings (type): :class:`Settings` or a subclass: the defaults,
            choices and help texts.
        quick (dict): The values that the command's ``--quick`` gives, by
            name: the default of each of those options is None (the
            command picks the value) and its help says both defaults.
        defaults (dict): Defaults of this command that replace those of
            the settings, by name.
        helps (dict): Help texts of this command that replace those of the
            settings, by name (``{default}`` is the default).
        aliases (dict): More flags of an option, by name, such as
            ``{'n_units': ('--unit',)}``.

    """
    fields = option_fields(settings)
    quick = quick or {}
    defaults = defaults or {}
    helps = helps or {}
    aliases = aliases or {}
    for name in names:
        field = fields[name]
        meta = field.metadata
        value = shown = defaults.get(name, field.default)
        if name in quick:
            value = None
            shown = '{}; {} with --quick'.format(shown, quick[name])
        text = helps.get(name, meta['help'])
        if '{default}' not in text:
            text += ' (default: {default})'
        flags = meta['flags']
        kwargs = {}
        if meta['type'] is not None:
            kwargs['type'] = meta['type']
        if meta['choices'] is not None:
            kwargs['choices'] = meta['choices']
        parser.add_argument(
            *(flags[:1] + tuple(aliases.get(name, ())) + flags[1:]),
            dest=option_dest(field), default=value,
            help=text.format(default=shown), **kwargs)


def from_args(args, settings=Settings):
    """Returns the settings that parsed options give, as keyword arguments
    of ``settings`` (a :class:`Settings` class): every field of it whose
    option the parser had (see :func:`add_options`)."""
    names = {field.name for field in dataclasses.fields(settings)}
    return {name: getattr(args, option_dest(field))
            for name, field in option_fields(settings).items()
            if name in names and hasattr(args, option_dest(field))}
