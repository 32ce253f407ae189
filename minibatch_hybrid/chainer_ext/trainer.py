"""The post's experiment the Chainer way: a Trainer with a schedule.

``scripts/train_chainer.py`` is its command line; its ``main/loss`` is the
post's metric, as the package's own loop records it.
"""
import os
import sys

import chainer
from chainer import training
from chainer.training import extensions

from minibatch_hybrid import checks
from minibatch_hybrid.chainer_ext import iterators
from minibatch_hybrid.chainer_ext.extensions import CheckSchedules
from minibatch_hybrid.chainer_ext.extensions import RunSettings
from minibatch_hybrid.chainer_ext.extensions import SettingsMismatch
from minibatch_hybrid.core import data
from minibatch_hybrid.core.device import get_device
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.core.model import make_optimizer
from minibatch_hybrid.errors import FileError
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.io import snapshots
from minibatch_hybrid.schedules import parse_schedule
from minibatch_hybrid.schedules.text import hybrid_halves
from minibatch_hybrid.settings import SEED
from minibatch_hybrid.settings import Settings

#: Iterators by name, each resumable with a schedule.
ITERATORS = {
    'serial': iterators.SerialIterator,
    'multithread': iterators.MultithreadIterator,
    'multiprocess': iterators.MultiprocessIterator,
}


#: The post's settings: the defaults of :func:`build_trainer`.
_POST = Settings()


def build_trainer(schedule=None, epochs=_POST.epochs,
                  batchsize=_POST.batchsize, seed=SEED,
                  n_units=_POST.n_units, n_data=_POST.n_data,
                  device=_POST.device, out='result', snapshot_every=50,
                  iterator='serial', evaluate=True, report=True):
    """Returns a Trainer for the post's experiment with one schedule.

    Its settings are checked as :class:`~minibatch_hybrid.settings.Settings`;
    the defaults are the post's.

    Args:
        schedule (str): Text form of the schedule, covering ``epochs``; by
            default the post's hybrid (fixed for the first half).
        epochs (int): Epochs to train.
        batchsize (int): Mini-batch size.
        seed (int): Seed of the weights, the orders and the held-out points.
        n_units (int): Hidden width.
        n_data (int): Training points (and as many held-out ones).
        device: Chainer device specifier.
        out (str): Output folder of logs, plots and snapshots.
        snapshot_every (int): Epochs between snapshots.
        iterator (str): A name of :data:`ITERATORS`.
        evaluate (bool): Measure the held-out MSE every epoch.
        report (bool): Print a report and a progress bar, plot the losses.

    Returns:
        chainer.training.Trainer

    """
    if iterator not in ITERATORS:
        raise SettingsError('unknown iterator {!r}; choose from {}'.format(
            iterator, ', '.join(ITERATORS)))
    settings = Settings(epochs=epochs, batchsize=batchsize, n_units=n_units,
                        n_data=n_data, n_heldout=n_data, device=device)
    checks.check_seed(seed)
    checks.check_positive_int(snapshot_every, 'snapshot_every')
    settings.check_run_memory(settings.memory(replicas=1, records=epochs))
    if schedule is None:
        schedule = hybrid_halves(epochs, schedule_option='--schedule')
    device = get_device(device)
    dataset = data.make_sin_dataset(n_data)
    order = parse_schedule(schedule, seed, size=len(dataset))
    order.check_epochs(epochs)
    train_iter = ITERATORS[iterator](dataset, batchsize, order_sampler=order)
    model = make_model(n_units, seed)
    model.to_device(device)
    updater = training.StandardUpdater(train_iter, make_optimizer(model),
                                       device=device)
    trainer = training.Trainer(updater, (epochs, 'epoch'), out=out)
    trainer.extend(CheckSchedules())
    # What a snapshot must match to be resumed: all but the device, the
    # output folder and the reports (the iterator keeps state in it).
    trainer.extend(RunSettings(schedule=str(order), epochs=epochs,
                               batchsize=batchsize, seed=seed,
                               n_units=n_units, n_data=n_data,
                               iterator=iterator, evaluate=evaluate))
    if evaluate:
        trainer.extend(extensions.Evaluator(
            chainer.iterators.SerialIterator(
                data.make_heldout_dataset(n_data, seed), 100, repeat=False,
                shuffle=False), model, device=device))
    trainer.extend(extensions.LogReport(trigger=(1, 'epoch')))
    trainer.extend(
        extensions.snapshot(filename='snapshot_epoch_{.updater.epoch}'),
        trigger=(snapshot_every, 'epoch'))
    if report:
        keys = ['main/loss'] + (['validation/main/loss'] if evaluate else [])
        # Standard output as it is now, not as Chainer found it at import
        # (a command's, which a closed pipe cannot stop: io.console).
        trainer.extend(extensions.PrintReport(
            ['epoch'] + keys + ['elapsed_time'], out=sys.stdout),
            trigger=(10, 'epoch'))
        trainer.extend(extensions.PlotReport(
            keys, 'epoch', file_name='loss.png',
            postprocess=lambda figure, axes, summary: axes.set_yscale('log')))
        trainer.extend(extensions.ProgressBar(update_interval=100,
                                              out=sys.stdout))
    return trainer


def resume(trainer, path):
    """Loads a snapshot into ``trainer`` (made by :func:`build_trainer`).

    Raises:
        ~minibatch_hybrid.errors.FileError: The snapshot is missing,
            damaged or not one of this experiment.
        ~minibatch_hybrid.errors.SettingsError: It was made by a run with
            other settings.

    """
    if not path.strip():
        raise FileError('--resume needs a snapshot file, such as '
                        'result/snapshot_epoch_50; leave it out to start '
                        'from scratch')
    if not os.path.exists(path):
        raise FileError('snapshot {} does not exist{}; snapshots are '
                        'written as <out>/snapshot_epoch_<N>'.format(
                            path, ' (a link that leads nowhere)'
                            if os.path.islink(path) else ''))
    if os.path.isdir(path):
        raise FileError('{} is a folder; give a snapshot file in it, such as '
                        '{}'.format(path, os.path.join(
                            path, 'snapshot_epoch_<N>')))
    try:
        # The settings first: weights of another width would fail to load
        # before the extension could say why.  Read without pickle.
        with snapshots.open_npz(path) as snapshot:
            key = 'extensions/RunSettings/settings'
            saved = snapshot[key] if key in snapshot.files else None
            if saved is None and 'updater/iteration' not in snapshot.files:
                raise KeyError('updater/iteration')  # not a Trainer's
            reported = any(k.startswith('extensions/PlotReport/')
                           for k in snapshot.files)
        trainer.get_extension('RunSettings').check(saved)
        if not reported and 'PlotReport' in trainer._extensions:
            raise SettingsMismatch('it was made with --no-report, and the '
                                   'reports cannot start in the middle of a '
                                   'run; resume with --no-report')
        snapshots.load_npz(path, trainer)
    except snapshots.UnsafeSnapshotError as e:
        raise FileError('cannot resume from {}: {}'.format(
            path, e.reason)) from None
    except SettingsMismatch as e:
        raise SettingsError('cannot resume from {}: {}'.format(path, e)) \
            from None
    except snapshots.SnapshotError:
        raise  # damaged or not an npz file: checked whole, and said so
    except KeyError as e:
        raise FileError('cannot resume from {}: it is not a snapshot of '
                        'this experiment (it has no {}); give one written '
                        'by this script'.format(path, e)) from None
    except ValueError as e:  # Chainer's copy: an array of another shape
        raise FileError('cannot resume from {}: it is not a snapshot of '
                        'this experiment ({})'.format(
                            path, str(e).splitlines()[0] if str(e) else '')) \
            from None
