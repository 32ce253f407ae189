"""Figures, drawn without pyplot (no global state, no window)."""
from matplotlib.figure import Figure
import numpy


def loss_figure(curves, switch_epoch=None, title='loss'):
    """Returns the post's figure: loss per epoch on a log scale.

    Args:
        curves (dict): Legend label (the post: ``'normal_loss'``,
            ``'hybrid_loss'``) to per-epoch losses; epoch 1 is the first.
        switch_epoch (int): If given, the epoch after which the hybrid
            switches from fixed to random order, marked by a dashed line.
        title (str): The axes' title.

    Returns:
        matplotlib.figure.Figure

    """
    figure = Figure(figsize=(8, 5), layout='constrained')
    ax = figure.subplots()
    for label, loss in curves.items():
        loss = numpy.asarray(loss)
        ax.plot(numpy.arange(1, len(loss) + 1), loss, label=label)
    if switch_epoch is not None:
        ax.axvline(switch_epoch, color='gray', linestyle='--', linewidth=1,
                   label='switch to random (epoch {})'.format(switch_epoch))
    ax.set_yscale('log')
    ax.legend()
    ax.grid(True)
    ax.set_title(title)
    ax.set_xlabel('epoch')
    ax.set_ylabel('loss')
    return figure
