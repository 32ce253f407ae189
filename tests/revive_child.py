"""A user's own Linear + ReLU chain trained in a Trainer with the package's
schedule and ReviveDeadUnits, for tests/test_revival.py: run in a new
process, optionally resumed from a snapshot (mh.load_npz: no pickle).

    python revive_child.py OUT EPOCHS REVIVE_EPOCH [SNAPSHOT]

Writes OUT/snapshot_epoch_E after every epoch and OUT/revived.json.
"""
import json
import os
import sys

# minibatch_hybrid's iterators first: they make chainer import on NumPy 2.
from minibatch_hybrid import iterators
import minibatch_hybrid as mh  # NOQA: I100
import chainer  # NOQA: I100
import chainer.functions as F
import chainer.links as L
import numpy
from minibatch_hybrid.extensions import ReviveDeadUnits
from chainer import training
from chainer.training import extensions


class Net(chainer.Chain):
    """Not MyChain: other names, a width of 24, a Classifier around it."""

    def __init__(self):
        super().__init__()
        rng = numpy.random.RandomState(7)
        with self.init_scope():
            self.inp = L.Linear(1, 24, initialW=chainer.initializers
                                .LeCunNormal(rng=rng))
            self.hid = L.Linear(24, 24, initialW=chainer.initializers
                                .LeCunNormal(rng=rng))
            self.out = L.Linear(24, 1, initialW=chainer.initializers
                                .LeCunNormal(rng=rng))

    def forward(self, x):
        return self.out(F.relu(self.hid(F.relu(self.inp(x)))))


def build(out, epochs, revive_epoch):
    dataset = mh.make_sin_dataset(200)
    model = L.Classifier(Net(), lossfun=F.mean_squared_error)
    model.compute_accuracy = False
    schedule = mh.parse_schedule(
        'fixed:{}+random:{}'.format(revive_epoch, epochs - revive_epoch),
        seed=0, size=len(dataset))
    iterator = iterators.SerialIterator(dataset, 10, order_sampler=schedule)
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    trainer = training.Trainer(
        training.StandardUpdater(iterator, optimizer), (epochs, 'epoch'),
        out=out)
    revive = ReviveDeadUnits(dataset.x, seed=3, epochs=(revive_epoch,),
                             layers='all')
    trainer.extend(revive)
    trainer.extend(extensions.snapshot(
        filename='snapshot_epoch_{.updater.epoch}'), trigger=(1, 'epoch'))
    return trainer, revive


def main():
    out, epochs, revive_epoch = sys.argv[1], int(sys.argv[2]), \
        int(sys.argv[3])
    trainer, revive = build(out, epochs, revive_epoch)
    if len(sys.argv) > 4:
        mh.load_npz(sys.argv[4], trainer)
    trainer.run()
    with open(os.path.join(out, 'revived.json'), 'w') as f:
        json.dump({str(k): list(v) for k, v in revive.revived.items()}, f)


if __name__ == '__main__':
    main()
