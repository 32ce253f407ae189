"""Running a study: chunks of seeds, trained here or on a Dask cluster.

Each chunk is saved when done, so an interrupted study continues where it
stopped, with the same numbers; :func:`train_chunk` is the unit of work.
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
    """A process runs another version of the package than the study."""


def _heldout(config, chunk_seeds):
    # Each replica's own seed's held-out points, as in ``reproduce``.
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
        chunk_seeds (list of int): The chunk's seeds.
        version (str): The caller's version: a process of another refuses.
        callback (callable): Takes each epoch's
            :data:`~minibatch_hybrid.core.loop.EpochLog`.

    Returns:
        dict: ``record`` (what it trained), ``seeds``, and per arm
        (:meth:`StudyConfig.arms`) and seed ``loss`` (per epoch),
        ``final_loss``, ``heldout_mse`` and ``coverage``.

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
        out (str): Output folder (chunks in ``out/chunks``): one with
            chunks of the same study is continued, any other refused.
        log (callable): Takes one line of text.
        progress_stream: Where the progress bar goes (standard error).
        cluster (~minibatch_hybrid.experiments.study.distributed.Cluster):
            If given, the chunks run on it (the same bytes).
        finish (callable): Called with the StudyResult while the folder is
            still held, to write the result files.
        outputs (tuple of str): The files ``finish`` writes into ``out``,
            checked before anything is trained.

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
        joined = {k: numpy.concatenate([p[k] for p in parts], axis=1)
                  for k in ('loss', 'final_loss', 'heldout_mse', 'coverage')}
        result = StudyResult(config, joined['loss'], joined['final_loss'],
                             joined['heldout_mse'], engine,
                             joined['coverage'])
        if finish is not None:
            finish(result)
    return result
