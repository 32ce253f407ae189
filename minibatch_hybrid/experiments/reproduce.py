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
from minibatch_hybrid.settings import engine_setting
from minibatch_hybrid.settings import seed_setting

#: Files written by :func:`write_outputs`, in the output folder.
OUTPUT_FILES = ('loss.png', 'losses.csv', 'losses.json', 'config.json')


@dataclasses.dataclass
class _Seed:
    seed: int = seed_setting()


# Dataclasses take the fields of the last base first: the seed stays the
# first argument.
@dataclasses.dataclass
class ReproductionConfig(Settings, _Seed):
    """The settings of a reproduction; the shared ones are
    :class:`Settings`'.

    Args:
        seed (int): Seed of the initial weights, the orders and the
            held-out points.
        literal (bool): Run the hybrid as the post's code did (249 + 249
            epochs of 500), not as its text says (250 + 250).

    """

    engine: str = engine_setting('numpy', ('numpy', 'native'))
    literal: bool = False

    def check(self):
        """Raises SettingsError unless every setting is in its range, and
        the hybrid has an epoch in each phase."""
        super().check()
        check_seed(self.seed)
        if self.hybrid_phases()[0] < 1:
            least = next(e for e in range(1, 10)
                         if hybrid_phases(e, self.literal)[0] >= 1)
            raise SettingsError(
                'the hybrid needs at least one epoch in each phase; run at '
                'least {} epochs{}'.format(
                    least, ' with --literal' if self.literal else ''))

    def memory_needed(self):
        """Bytes the run needs, roughly: one model, two runs' records."""
        return self.memory(replicas=1, records=2 * self.epochs)

    def check_memory(self, available=None):
        """Raises SettingsError if the run cannot fit in memory here."""
        self.check_run_memory(self.memory_needed(), available)

    def hybrid_phases(self):
        """Returns the epochs of the hybrid's fixed and random phases."""
        return hybrid_phases(self.epochs, self.literal)

    def schedules(self):
        """Returns ``{'normal': ..., 'hybrid': ...}`` schedules of the runs."""
        fixed, random = self.hybrid_phases()
        return {'normal': Random(self.seed),
                'hybrid': hybrid(fixed, random, self.seed)}


def _reporter(run, schedule, log, progress, done_before, observe):
    """The callback of one run: the post's lines and each phase's time."""
    phase_start = 0.0

    def phase(epoch):
        if isinstance(schedule, Phased):
            return schedule.phases[schedule.phase_of(epoch)][0].name
        return run

    def report(entry):
        nonlocal phase_start
        name = phase(entry.epoch - 1)
        if entry.epoch % 10 == 0:
            progress.clear()
            log('({}) epoch: {}/{} {} loss: {}'.format(
                run, entry.epoch, entry.epochs, name, entry.loss))
        if entry.epoch == entry.epochs or phase(entry.epoch) != name:
            progress.clear()
            label = run if name == run else run + ' ' + name
            log('execution time ({}): {}sec'.format(
                label, int(entry.seconds - phase_start)))
            phase_start = entry.seconds
        progress.update(done_before + entry.epoch,
                        '{} loss {:.3e}'.format(run, entry.loss))
        if observe is not None:
            observe(entry)
    return report


def run_reproduction(config, log=print, progress_stream=None, observer=None):
    """Runs the post's two runs from the same initial weights.

    Progress lines go to ``log``, the progress bar to ``progress_stream``;
    ``observer(run, entry, model)``, if given, is called after every epoch
    with ``'normal'`` or ``'hybrid'``, the
    :data:`~minibatch_hybrid.core.loop.EpochLog` and a copy of the model.

    Returns:
        dict: ``'normal'`` and ``'hybrid'`` to their
        :class:`~minibatch_hybrid.core.loop.TrainResult`; ``'device'``.

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
    epochs = {'normal': config.epochs, 'hybrid': sum(config.hybrid_phases())}
    progress = Progress(sum(epochs.values()), progress_stream)
    outcome = {'device': device}
    done_before = 0
    try:
        for run, schedule in config.schedules().items():
            initial.restore(model, optimizer)  # the post's reset
            trained = engines.make_single(engine, model, optimizer)
            observe = None if observer is None else (
                lambda entry, run=run, trained=trained:
                observer(run, entry, model=trained.replica(0)))
            outcome[run] = train(
                trained, None, dataset, schedule, epochs[run],
                config.batchsize, heldout=heldout, callback=_reporter(
                    run, schedule, log, progress, done_before, observe))
            done_before += epochs[run]
    finally:
        progress.close()
    return outcome


def write_outputs(outcome, config, out):
    """Writes :data:`OUTPUT_FILES` into ``out``, all together
    (:func:`~minibatch_hybrid.io.results.save_results`); returns their
    paths."""
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
