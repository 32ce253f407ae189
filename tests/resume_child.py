"""Runs or resumes a short Trainer run in its own process, for test_trainer.

Usage: resume_child.py OUT SCHEDULE ITERATOR EPOCHS [SNAPSHOT]

Writes OUT/orders.json: the order the training iterator holds at the start
and after each epoch, by epoch (read from the iterator's state: test code).
"""
import json
import os
import sys

# (before chainer)
from minibatch_hybrid.chainer_ext import trainer as trainer_module
from chainer import training  # NOQA: I100


def main(out, schedule, iterator, epochs, snapshot=None):
    trainer = trainer_module.build_trainer(
        schedule, int(epochs), batchsize=10, seed=3, n_units=16, n_data=200,
        out=out, snapshot_every=1, iterator=iterator, report=False)
    if snapshot:
        trainer_module.resume(trainer, snapshot)
    it = trainer.updater.get_iterator('main')
    orders = {}

    @training.make_extension(trigger=(1, 'epoch'))
    def record(trainer):
        order = it._state.order
        orders[int(order.epoch)] = order.tolist()

    start = it._state.order
    orders[int(start.epoch)] = start.tolist()
    trainer.extend(record)
    trainer.run()
    with open(os.path.join(out, 'orders.json'), 'w') as f:
        json.dump(orders, f)
    it.finalize()


if __name__ == '__main__':
    main(*sys.argv[1:])
