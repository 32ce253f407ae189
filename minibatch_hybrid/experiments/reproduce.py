"""The post's experiment: random order against fixed-then-random order."""
import dataclasses

from minibatch_hybrid.checks import check_seed
from minibatch_hybrid import engines
from minibatch_hybrid.io import results
from minibatch_hybrid.core.data import make_heldout_dataset
from minibatch_hybrid.core.data import make_sin_dataset
from minibatch_hybrid.core.device import get_device
from minibatch_hybrid.core.model import InitialState
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.core.model import make_optimizer
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.io.plots import loss_figure
from minibatch_hybrid.io.progress import Progress
from minibatch_hybrid.schedules import Phased
from minibatch_hybrid.schedules import Random
from minibatch_hybrid.schedules import hybrid
from minibatch_hybrid.core.loop import train
from minibatch_hybrid.schedules.text import hybrid_phases
from minibatch_hybrid.settings import Settings
from minibatch_hybrid.settings import seed_setting
from minibatch_hybrid.settings import setting

#: Files written by :func:`write_outputs`, in the output folder.
OUTPUT_FILES = ('loss.png', 'losses.csv', 'losses.json', 'config.json')


@dataclasses.dataclass
class _Seed:
    """The first setting of a reproduction (see
    :class:`ReproductionConfig`)."""

    seed: int = seed_setting()


# Settings first among the bases, and _Seed's field first among the fields
# (dataclasses take the fields of the last base first): the seed stays the
# first argument.
@dataclasses.dataclass
class ReproductionConfig(Settings, _Seed):
    """The settings of a reproduction; the defaults are the post's.

    The shared settings and their checks are :class:`Settings`'.

    Args:
        seed (int): Seed of the initial weights (shared by both runs), of
            the random orders and of the held-out points.
        epochs (int): Epochs of each run (the post: 500).
        batchsize (int): Mini-batch size (the post: 10).
        n_units (int): Hidden width (the post: 100).
        n_data (int): Training points (the post: 1000).
        n_heldout (int): Held-out points, x uniform in [0, 2*pi).
        device: Chainer device specifier (``'@numpy'``, ``'@cupy:0'``, ...).
        engine (str): ``'numpy'``: Chainer's operations, the post's loop
            bit for bit (whose bits follow the BLAS library's kernels, so
            they differ between CPUs); ``'native'``: the native engine's
            one arithmetic, the same bits on every CPU that runs it (see
            :mod:`~minibatch_hybrid.kernels`; CPU only).
        literal (bool): Run the hybrid as the post's code did rather than as
            its text says: its Python 2 ``range(1, (n_epoch + 1) / 2)``
            gives each phase 249 epochs of 500 (498 in all).  The default
            gives each phase half of ``epochs`` (250 + 250).

    """

    engine: str = setting(
        'numpy', "numpy: Chainer's operations, bit for bit the post's loop "
        "(whose bits follow the CPU's BLAS kernels); native: the compiled "
        "kernels' one arithmetic, the same numbers on every CPU (default: "
        '{default})', ('--engine',), choices=('numpy', 'native'))
    literal: bool = False

    def check(self):
        """Raises SettingsError unless every setting is in its range, and
        the hybrid has an epoch in each phase."""
        super().check()
        check_seed(self.seed)
        fixed, _ = self.hybrid_phases()
        if fixed < 1:
            least = next(e for e in range(1, 10)
                         if hybrid_phases(e, self.literal)[0] >= 1)
            raise SettingsError(
                'the hybrid needs at least one epoch in each phase; run at '
                'least {} epochs{}'.format(
                    least, ' with --literal' if self.literal else ''))

    def memory_needed(self):
        """Bytes the run needs, roughly (:meth:`Settings.memory`): one
        model in training, and per epoch the two runs' records (arrays,
        then the rows of the CSV and JSON files)."""
        return self.memory(replicas=1, records=2 * self.epochs)

    def check_memory(self, available=None):
        """Raises SettingsError if the run cannot fit in memory here."""
        self.check_run_memory(self.memory_needed(), available)

    def hybrid_phases(self):
        """Returns the epochs of the hybrid's fixed and random phases
        (:func:`~minibatch_hybrid.schedules.text.hybrid_phases`)."""
        return hybrid_phases(self.epochs, self.literal)

    def schedules(self):
        """Returns ``{'normal': ..., 'hybrid': ...}`` schedules of the runs."""
        fixed, random = self.hybrid_phases()
        return {'normal': Random(self.seed),
                'hybrid': hybrid(fixed, random, self.seed)}


class _RunReporter(object):
    """Prints the post's progress lines and phase times for one run."""

    def __init__(self, run, schedule, log, progress, done_before):
        self.run = run
        self.schedule = schedule
        self.log = log
        self.progress = progress
        self.done_before = done_before
        self.phase_start = 0.0
        self.observe = None

    def phase(self, epoch):
        """Returns the post's name of the phase of zero-based ``epoch``."""
        if isinstance(self.schedule, Phased):
            return self.schedule.phases[self.schedule.phase_of(epoch)][0].name
        return self.run

    def __call__(self, entry):
        phase = self.phase(entry.epoch - 1)
        if entry.epoch % 10 == 0:
            self.progress.clear()
            self.log('({}) epoch: {}/{} {} loss: {}'.format(
                self.run, entry.epoch, entry.epochs, phase,
                entry.loss))
        if entry.epoch == entry.epochs or self.phase(entry.epoch) != phase:
            self.progress.clear()
            label = self.run if phase == self.run else self.run + ' ' + phase
            self.log('execution time ({}): {}sec'.format(
                label, int(entry.seconds - self.phase_start)))
            self.phase_start = entry.seconds
        self.progress.update(self.done_before + entry.epoch,
                             '{} loss {:.3e}'.format(self.run, entry.loss))
        if self.observe is not None:
            self.observe(entry)


def run_reproduction(config, log=print, progress_stream=None, observer=None):
    """Runs the post's two runs from the same initial weights.

    Both runs start from the weights :func:`make_model` draws from
    ``config.seed``; the model and Adam are reset between them with
    :class:`InitialState`.  Progress lines in the post's format go to
    ``log`` every 10 epochs, with each phase's wall time at its end.

    Args:
        config (ReproductionConfig): The settings.
        log (callable): Takes one line of text.
        progress_stream: Where the progress bar (with time left) goes;
            standard error by default.
        observer (callable): If given, called after every epoch as
            ``observer(run, entry, model)`` with the run's name
            (``'normal'`` or ``'hybrid'``), the
            :data:`~minibatch_hybrid.core.loop.EpochLog` and a copy of the
            model on the CPU, to look at it during training (its
            predictions, say).

    Returns:
        dict: ``'normal'`` and ``'hybrid'`` to their
        :class:`~minibatch_hybrid.core.loop.TrainResult`, and ``'device'``
        to the device used.

    """
    device = get_device(config.device)
    engine = engines.resolve_engine(config.engine, device)
    dataset = make_sin_dataset(config.n_data).to_device(device)
    heldout = make_heldout_dataset(config.n_heldout,
                                   config.seed).to_device(device)
    model = make_model(config.n_units, config.seed)
    model.to_device(device)
    optimizer = make_optimizer(model)
    initial = InitialState(model)
    schedules = config.schedules()
    epochs = {'normal': config.epochs, 'hybrid': sum(config.hybrid_phases())}
    progress = Progress(sum(epochs.values()), progress_stream)
    outcome = {'device': device}
    done_before = 0
    try:
        for run, schedule in schedules.items():
            initial.restore(model, optimizer)  # the post's reset
            trained = engines.make_single(engine, model, optimizer)
            reporter = _RunReporter(run, schedule, log, progress, done_before)
            if observer is not None:
                reporter.observe = (
                    lambda entry, run=run, trained=trained:
                    observer(run, entry, model=trained.replica(0)))
            outcome[run] = train(trained, None, dataset, schedule,
                                 epochs[run], config.batchsize,
                                 heldout=heldout, callback=reporter)
            done_before += epochs[run]
    finally:
        progress.close()
    return outcome


def write_outputs(outcome, config, out):
    """Writes the figure, the losses and the configuration into ``out``.

    The four files appear together or not at all, replacing those of an
    earlier run (:func:`~minibatch_hybrid.io.results.save_results`); if ``out``
    cannot take them, they are written elsewhere and
    :class:`~minibatch_hybrid.io.results.OutputError` says where.

    Returns:
        list of str: Paths of the files written, :data:`OUTPUT_FILES`.

    """
    normal, hybrid_run = outcome['normal'], outcome['hybrid']
    switch = config.hybrid_phases()[0]
    figure = loss_figure({'normal_loss': normal.loss,
                          'hybrid_loss': hybrid_run.loss},
                         switch_epoch=switch)
    rows = []
    for i in range(max(len(normal.loss), len(hybrid_run.loss))):
        row = [i + 1]
        for result in (normal, hybrid_run):
            if i < len(result.loss):
                row += [float(result.loss[i]), float(result.train_loss[i])]
            else:
                row += ['', '']
        rows.append(row)
    losses = {
        run: {'schedule': result.schedule,
              'loss': results.float_list(result.loss),
              'train_loss': results.float_list(result.train_loss),
              'heldout_mse': result.heldout_mse,
              'seconds': result.seconds}
        for run, result in (('normal', normal), ('hybrid', hybrid_run))}
    settings = config.to_dict()
    settings['schedules'] = {run: str(s)
                             for run, s in config.schedules().items()}
    settings['switch_epoch'] = switch
    saved = {'config': settings,
             'environment': results.environment(outcome['device'])}
    header = ['epoch', 'normal_loss', 'normal_train_loss', 'hybrid_loss',
              'hybrid_train_loss']
    return results.save_results(out, dict(zip(OUTPUT_FILES, (
        lambda path: results.save_figure(figure, path),
        lambda path: results.write_csv(path, header, rows),
        lambda path: results.write_json(path, losses),
        lambda path: results.write_json(path, saved)))),
        prefix='minibatch-hybrid-reproduce-')


def summary(outcome):
    """Returns lines comparing the two runs' final losses."""
    normal, hybrid_run = outcome['normal'], outcome['hybrid']
    lines = ['{:<8} {:<24} {:>12} {:>12} {:>14}'.format(
        'run', 'schedule', 'final loss', 'train loss', 'held-out MSE')]
    for run, result in (('normal', normal), ('hybrid', hybrid_run)):
        lines.append('{:<8} {:<24} {:>12.4e} {:>12.4e} {:>14.4e}'.format(
            run, result.schedule, result.loss[-1], result.train_loss[-1],
            result.heldout_mse))
    lines.append('normal / hybrid final loss: {:.3g}x'.format(
        normal.loss[-1] / hybrid_run.loss[-1]))
    return lines
