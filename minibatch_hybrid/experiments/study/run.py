"""Running a study: chunks of seeds, trained here or on a Dask cluster.

A study trains every schedule from every seed's initial weights (the same
weights for all schedules of a seed) as one ensemble per chunk of seeds,
and saves each chunk as soon as it is done: rerunning an interrupted study
continues where it stopped and ends with the same numbers as an
uninterrupted run, because a replica's results do not depend on which
other replicas share its ensemble, nor (with the native engine) on the CPU
that ran it.  :func:`train_chunk` is the unit of work, a pure function of
its arguments; :mod:`~minibatch_hybrid.experiments.study.distributed` runs
it as Dask tasks.
"""
import numpy

from minibatch_hybrid import engines
from minibatch_hybrid._version import __version__
from minibatch_hybrid.core.data import SinDataset
from minibatch_hybrid.core.data import make_heldout_dataset
from minibatch_hybrid.core.data import make_sin_dataset
from minibatch_hybrid.core.device import get_device
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.core.revival import Revival
from minibatch_hybrid.errors import Error
from minibatch_hybrid.io.progress import Progress
from minibatch_hybrid.schedules import parse_schedule
from minibatch_hybrid.experiments.study.config import StudyResult
from minibatch_hybrid.experiments.study.folder import StudyFolder
from minibatch_hybrid.core.loop import train


class VersionMismatch(Error, RuntimeError):
    """A process (a Dask worker, say) runs another version of the package
    than the study: it does not train, as its numbers could differ."""


def _heldout(config, chunk_seeds):
    # Each run is measured on its own seed's held-out points, as in
    # ``reproduce``: a (K, N, 1) data set, one slice per replica.
    sets = [make_heldout_dataset(config.n_heldout, seed)
            for seed in chunk_seeds]
    sets = sets * len(config.arms())
    return SinDataset(numpy.stack([h.x for h in sets]),
                      numpy.stack([h.y for h in sets]))


def train_chunk(config, engine, chunk_seeds, version=__version__,
                callback=None):
    """Trains one chunk of a study; returns its results.

    Args:
        config (StudyConfig): The study's settings.
        engine (str): The resolved engine (``'native'``, ``'numpy'``, ...).
        chunk_seeds (list of int): The chunk's seeds (a study's ``seeds``
            setting is their number).
        version (str): The package version the caller runs; a process
            that runs another refuses (its numbers could differ).
        callback (callable): Called with each epoch's
            :data:`~minibatch_hybrid.core.loop.EpochLog`.

    Returns:
        dict: ``seeds``, ``loss`` ``(arms, seeds, epochs)``,
        ``final_loss``, ``heldout_mse`` and ``coverage`` (the second
        hidden layer's at the end: :mod:`~minibatch_hybrid.core.diagnosis`)
        ``(arms, seeds)``, and ``record``: the settings, engine, version
        and seeds it trained with.  The arms are
        :meth:`StudyConfig.arms`: the schedules, then their revived arms.

    """
    if version != __version__:
        raise VersionMismatch(
            'this process runs minibatch_hybrid {}, the study {}: their '
            'numbers may differ, so it does not train for it; install the '
            'same version everywhere'.format(__version__, version))
    device = get_device(config.device)
    arms = config.arms()
    replica_seeds = [seed for _ in arms for seed in chunk_seeds]
    ensemble = engines.make_ensemble(
        engine, [make_model(config.n_units, seed) for seed in replica_seeds],
        device)
    schedules = [parse_schedule(text, seed)
                 for _, text, _ in arms for seed in chunk_seeds]
    dataset = make_sin_dataset(config.n_data).to_device(device)
    result = train(ensemble, None, dataset, schedules, config.epochs,
                   config.batchsize, heldout=_heldout(config, chunk_seeds),
                   callback=callback, train_loss='last',
                   interventions=_revivals(arms, replica_seeds))
    shape = (len(arms), len(chunk_seeds))
    coverage = ensemble.activity(dataset.x).coverage()[:, 1]
    return {
        'record': {'config': config.identity(), 'engine': engine,
                   'version': __version__, 'seeds': list(chunk_seeds)},
        'seeds': numpy.array(chunk_seeds),
        'loss': result.loss.T.reshape(shape + (config.epochs,)),
        'final_loss': result.train_loss[-1].reshape(shape),
        'heldout_mse': result.heldout_mse.reshape(shape),
        'coverage': coverage.reshape(shape),
    }


def _revivals(arms, replica_seeds):
    """Returns the revivals of a chunk's revived arms, one per epoch."""
    seeds_per_arm = len(replica_seeds) // len(arms)
    at = {}
    for a, (_, _, epoch) in enumerate(arms):
        if epoch is not None:
            at.setdefault(epoch, []).extend(
                range(a * seeds_per_arm, (a + 1) * seeds_per_arm))
    return [Revival(epoch, replicas, replica_seeds)
            for epoch, replicas in sorted(at.items())]


def _run_here(config, engine, folder, todo, progress):
    """Trains the chunks ``todo`` in this process, saving each."""
    for n, index in enumerate(todo):
        done_before = n * config.epochs

        def callback(entry, done_before=done_before):
            progress.update(done_before + entry.epoch,
                            'median loss {:.3e}'.format(
                                float(numpy.median(entry.loss))))

        folder.save(index, train_chunk(config, engine,
                                       config.chunks()[index],
                                       callback=callback))


def run_study(config, out, log=print, progress_stream=None, cluster=None,
              finish=None, outputs=()):
    """Runs (or continues) a study, saving each chunk when it is done.

    Args:
        config (StudyConfig): The settings.
        out (str): Output folder; chunks go to ``out/chunks``.  A folder
            with chunks of the same study is continued; one that holds
            anything else is refused, as is a folder another run holds.
        log (callable): Takes one line of text.
        progress_stream: Where the progress bar goes (standard error).
        cluster (~minibatch_hybrid.experiments.study.distributed.Cluster):
            If given, the chunks run as tasks on its Dask cluster; the
            results are the same bytes.
        finish (callable): If given, called with the StudyResult while the
            folder is still held, to write the result files: its lock is
            released only after they exist, so a second run cannot start
            in between.
        outputs (tuple of str): Names of the result files ``finish``
            writes into ``out``: a folder (or anything but a file) in the
            place of one is refused before anything is trained.

    Returns:
        StudyResult

    """
    config.check_memory()
    device = get_device(config.device)
    engine = engines.resolve_engine(config.engine, device)
    if cluster is not None:
        cluster.check_workers(engine)
    with StudyFolder(out, config, engine, outputs) as folder:
        chunks = config.chunks()
        saved = folder.saved()
        if saved:
            log('continuing: {} of {} chunks already saved in {}'.format(
                len(saved), len(chunks), out))
        todo = [i for i in range(len(chunks)) if i not in saved]
        # Here progress counts epochs; a cluster reports whole chunks.
        progress = Progress(len(todo) * (config.epochs if cluster is None
                                         else 1), progress_stream)
        try:
            if cluster is None:
                _run_here(config, engine, folder, todo, progress)
            else:
                cluster.run(config, engine, folder, todo, progress)
        finally:
            progress.close()
        parts = [folder.load(i) for i in range(len(chunks))]
        result = StudyResult(
            config,
            numpy.concatenate([p['loss'] for p in parts], axis=1),
            numpy.concatenate([p['final_loss'] for p in parts], axis=1),
            numpy.concatenate([p['heldout_mse'] for p in parts], axis=1),
            engine,
            numpy.concatenate([p['coverage'] for p in parts], axis=1))
        if finish is not None:
            finish(result)
    return result
