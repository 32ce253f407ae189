"""The settings every experiment shares: defaults, checks, options, memory.

The experiments' settings build on :class:`Settings`, and both command
lines add their shared options with :func:`add_options`.
"""
import dataclasses

from minibatch_hybrid import checks
from minibatch_hybrid.core.model import n_params
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.schedules.text import HYBRID_HALVES
from minibatch_hybrid.schedules.text import hybrid_halves

#: The schedules compared by default: random order against the hybrid.
DEFAULT_SCHEDULES = ('random', HYBRID_HALVES)
#: Float32 copies of its parameters that a model in training holds: the
#: weights, their gradients, Adam's two moments and a step's temporaries.
STATE_COPIES = 10
#: Bytes of one run's per-epoch record kept as Python objects.
ROW_BYTES = 200
#: Bytes of one run's per-epoch record kept as float64, twice.
ARRAY_BYTES = 16
#: The default seed.
SEED = 0
#: The engines one can ask for (:mod:`~minibatch_hybrid.engines` runs them).
ENGINES = ('auto', 'native', 'numpy')
_ENGINE_HELP = {
    'auto': 'auto (native where it runs)',
    'native': "native (the compiled kernels', the same numbers on every "
              'CPU)',
    'numpy': "numpy (Chainer's operations)"}


def check_engine(engine, choices=ENGINES):
    """Raises SettingsError unless ``engine`` is one of ``choices``."""
    if engine not in choices:
        raise SettingsError('unknown engine {!r}: choose one of {}'.format(
            engine, ', '.join(choices)))


def setting(default, help, flags=(), type=None, choices=None):
    """Returns the dataclass field of a setting: its default, and its
    option's ``--help`` text (``{default}`` where the default goes, else
    at the end), flags (the long name first), type and choices."""
    return dataclasses.field(default=default, metadata={
        'help': help, 'flags': tuple(flags), 'type': type,
        'choices': choices})


def engine_setting(default, choices=ENGINES):
    """Returns the field of an experiment's engine."""
    return setting(default, 'the arithmetic: ' + ', '.join(
        _ENGINE_HELP[c] for c in choices), ('--engine',), choices=choices)


def seed_setting():
    """Returns the field of a run's seed."""
    return setting(SEED, 'seed of the initial weights, the random orders '
                   'and the held-out points', ('--seed',), int)


@dataclasses.dataclass
class Settings:
    """The settings every experiment shares, checked when made; the
    defaults are the post's.

    Args:
        epochs (int): Epochs of every run.
        batchsize (int): Mini-batch size.
        n_units (int): Hidden width.
        n_data (int): Training points.
        n_heldout (int): Held-out points, x uniform in [0, 2*pi).
        device: Chainer device specifier (``'@numpy'``, ``'@cupy:0'``).
        engine (str): ``'numpy'``, ``'native'`` or ``'auto'``.

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
    engine: str = engine_setting('numpy')

    def __post_init__(self):
        self.check()

    def check(self):
        """Raises SettingsError unless every setting is in its range."""
        fields = _fields(type(self))
        check_engine(self.engine, fields['engine'].metadata['choices'])
        for name in ('epochs', 'n_units', 'n_data', 'n_heldout',
                     'batchsize'):
            try:
                if name == 'batchsize':
                    checks.check_batchsize(self.batchsize, self.n_data)
                else:
                    checks.check_positive_int(getattr(self, name), name)
            except SettingsError as e:
                flags = fields[name].metadata['flags']
                if not flags:
                    raise
                raise SettingsError('{}; give {} {}'.format(
                    e, flags[0], 'from 1 to {}'.format(self.n_data)
                    if name == 'batchsize' else '1 or more')) from None

    def memory(self, replicas=1, records=0, record_bytes=ROW_BYTES):
        """Returns the bytes held at once, roughly, by ``replicas`` models
        in training and ``records`` per-epoch records (epochs times runs)
        of ``record_bytes`` each: the one formula of every experiment."""
        n = self.n_units
        points = self.batchsize + max(self.n_data, self.n_heldout)
        replica = 4 * (STATE_COPIES * n_params(n) + 3 * n * points)
        return replicas * replica + records * record_bytes

    def check_run_memory(self, needed, available=None):
        """Raises SettingsError unless a run that needs ``needed`` bytes
        fits in memory (``available`` bytes, by default those free)."""
        checks.check_memory(needed, 'this run ({} epochs, {} hidden '
                            'units)'.format(self.epochs, self.n_units),
                            'use fewer --epoch or --units', available)

    def to_dict(self):
        """Returns the settings as a dict in the files' order: the
        experiment's own settings, then the device and the engine."""
        settings = dataclasses.asdict(self)
        for name in ('device', 'engine'):
            settings[name] = settings.pop(name)
        return settings


def _fields(settings):
    return {field.name: field for field in dataclasses.fields(settings)}


def default(name, settings=Settings):
    """Returns the default of setting ``name`` of a :class:`Settings`
    class (:data:`SEED` for a seed it lacks)."""
    if name == 'seed' and name not in _fields(settings):
        return SEED
    return _fields(settings)[name].default


def default_schedules(epochs, epoch_option='--epoch',
                      schedule_option='--schedules'):
    """Returns :data:`DEFAULT_SCHEDULES` over ``epochs`` epochs, as text
    (:func:`~minibatch_hybrid.schedules.text.hybrid_halves`)."""
    return ['random', hybrid_halves(epochs, epoch_option, schedule_option)]


def option_fields(settings=Settings):
    """Returns ``{name: field}`` of the settings that have an option; a
    class without a seed of its own has the seed's too."""
    fields = {'seed': seed_setting()}
    fields.update(_fields(settings))
    return {name: field for name, field in fields.items()
            if field.metadata.get('flags')}


def option_dest(field):
    """The name under which argparse stores a setting's option."""
    return field.metadata['flags'][0].lstrip('-').replace('-', '_')


def add_options(parser, names, settings=Settings, quick=None,
                defaults=None, helps=None, aliases=None):
    """Adds the options of the settings ``names`` (of ``settings``) to a
    parser, from their fields (:func:`setting`).

    ``quick``, ``defaults``, ``helps`` and ``aliases`` are by name: the
    values that the command's ``--quick`` gives (then the option defaults
    to None), the command's own defaults and help texts, and more flags.
    """
    fields = option_fields(settings)
    quick, defaults = quick or {}, defaults or {}
    helps, aliases = helps or {}, aliases or {}
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
        kwargs = {key: meta[key] for key in ('type', 'choices')
                  if meta[key] is not None}
        flags = meta['flags']
        parser.add_argument(
            *(flags[:1] + tuple(aliases.get(name, ())) + flags[1:]),
            dest=option_dest(field), default=value,
            help=text.format(default=shown), **kwargs)


def from_args(args, settings=Settings):
    """Returns the settings that parsed options give, as keyword arguments
    of ``settings``: each of its fields whose option the parser had."""
    names = _fields(settings)
    return {name: getattr(args, option_dest(field))
            for name, field in option_fields(settings).items()
            if name in names and hasattr(args, option_dest(field))}
