"""Figures, drawn without pyplot (no global state, no window)."""
from matplotlib.figure import Figure
import numpy


def _finish(ax, title, xlabel, ylabel, log=True, **legend):
    """A log y axis (if ``log``), a legend, a grid, the title and labels."""
    if log:
        ax.set_yscale('log')
    ax.legend(**legend)
    ax.grid(True)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def loss_figure(curves, switch_epoch=None, title='loss'):
    """Returns the post's figure: loss per epoch on a log scale.

    Args:
        curves (dict): Label (``'normal_loss'``) to losses from epoch 1.
        switch_epoch (int): The hybrid's last epoch in fixed order, marked.
        title (str): The axes' title.

    """
    figure = Figure(figsize=(8, 5), layout='constrained')
    ax = figure.subplots()
    for label, loss in curves.items():
        loss = numpy.asarray(loss)
        ax.plot(numpy.arange(1, len(loss) + 1), loss, label=label)
    if switch_epoch is not None:
        ax.axvline(switch_epoch, color='gray', linestyle='--', linewidth=1,
                   label='switch to random (epoch {})'.format(switch_epoch))
    _finish(ax, title, 'epoch', 'loss')
    return figure


def band_figure(curves, title='median loss and quartiles over seeds'):
    """Returns the median per-epoch loss with its quartile band, log y,
    from ``curves``: label to a ``(seeds, epochs)`` array of losses."""
    figure = Figure(figsize=(8, 5), layout='constrained')
    ax = figure.subplots()
    for label, runs in curves.items():
        q25, median, q75 = numpy.percentile(runs, [25, 50, 75], axis=0)
        epochs = numpy.arange(1, runs.shape[1] + 1)
        line, = ax.plot(epochs, median, label='{} (n={})'.format(
            label, len(runs)))
        ax.fill_between(epochs, q25, q75, color=line.get_color(), alpha=0.25,
                        linewidth=0)
    _finish(ax, title, 'epoch', 'loss (median, quartile band)')
    return figure


def paired_figure(baseline, others, stuck):
    """Returns scatter plots of final losses, seed by seed, log-log.

    Args:
        baseline (tuple): ``(label, values)``, one final loss per seed.
        others (list of tuple): ``(label, values)`` to compare with it.
        stuck (dict): Label to booleans per seed (drawn as crosses).

    """
    # Square axes under two-line titles: a little taller than wide.
    figure = Figure(figsize=(5 * len(others), 5.6), layout='constrained')
    axes = numpy.atleast_1d(figure.subplots(1, len(others)))
    label_a, a = baseline
    for ax, (label_b, b) in zip(axes, others):
        a, b = numpy.asarray(a), numpy.asarray(b)
        lo = min(a.min(), b.min()) / 2
        hi = max(a.max(), b.max()) * 2
        ax.plot([lo, hi], [lo, hi], color='gray', linewidth=1,
                linestyle='--', label='equal')
        flat = numpy.asarray(stuck[label_a]) | numpy.asarray(stuck[label_b])
        ax.scatter(a[~flat], b[~flat], s=14, label='seeds')
        if flat.any():
            ax.scatter(a[flat], b[flat], s=30, marker='x', color='C3',
                       label='a run on a plateau')
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect('equal')
        _finish(ax, '{} seeds; below the diagonal:\n{} ends lower'.format(
            len(a), label_b), 'final loss, {}'.format(label_a),
            'final loss, {}'.format(label_b), log=False, loc='lower right',
            fontsize='small')
        ax.title.set_fontsize('medium')
    return figure


def sweep_figure(fractions, quartiles, stuck=None, title='final loss against '
                 'the fixed fraction'):
    """Returns final loss (median, quartile bars) against the fixed fraction.

    Args:
        fractions (dict): Label (``'fixed first'``) to fractions of epochs
            in fixed order.
        quartiles (dict): Label to ``(q25, median, q75)`` arrays.
        stuck (dict): Label to the fractions of runs on a plateau, drawn
            in a second panel.

    """
    figure = Figure(figsize=(8, 7 if stuck else 5), layout='constrained')
    if stuck:
        ax, low = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    else:
        ax = figure.subplots()
    for i, label in enumerate(fractions):
        q25, median, q75 = (numpy.asarray(q) for q in quartiles[label])
        x = numpy.asarray(fractions[label]) + (i - 0.5) * 0.006
        ax.errorbar(x, median, yerr=[median - q25, q75 - median], marker='o',
                    capsize=3, label=label)
        if stuck:
            low.plot(x, 100 * numpy.asarray(stuck[label]), marker='o',
                     label=label)
    xlabel = 'fraction of epochs in fixed order'
    _finish(ax, title, None if stuck else xlabel,
            'final training loss (median, quartiles)')
    if stuck:
        low.set_ylabel('runs on a plateau (%)')
        low.set_ylim(bottom=0)
        low.grid(True)
        low.set_xlabel(xlabel)
    return figure


def functions_figure(x, panels, boundary=None, level=None):
    """Returns what networks compute over ``x``, over sin(x).

    Args:
        x: The points, ``(N,)``.
        panels (list): ``(title, {label: (N,) outputs})`` per panel.
        boundary (float): An x to mark (the plateau's c*).
        level (float): The constant to draw right of ``boundary``.

    """
    figure = Figure(figsize=(4.2 * len(panels), 4), layout='constrained')
    axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    x = numpy.asarray(x)
    for ax, (title, curves) in zip(axes, panels):
        ax.plot(x, numpy.sin(x), color='black', linewidth=3, alpha=0.25,
                label='sin(x)')
        for label, y in curves.items():
            ax.plot(x, y, linewidth=1.2, label=label)
        if boundary is not None:
            ax.axvline(boundary, color='gray', linestyle='--', linewidth=1,
                       label='c* = {:.3f}'.format(boundary))
            if level is not None:
                ax.hlines(level, boundary, x.max(), color='red',
                          linestyle=':', label='mean of sin beyond c*')
        _finish(ax, title, 'x', None, log=False, fontsize=7)
    axes[0].set_ylabel('network output')
    return figure


def coverage_figure(coverage, labels, boundary=None, switch=None,
                    title='second hidden layer: largest x at which a unit '
                    'is active'):
    """Returns coverage per epoch, one line per run.

    Args:
        coverage: ``(epochs + 1, K)``: before training, after each epoch.
        labels (list of str): One per run.
        boundary (float): A level to mark (the plateau's c*).
        switch (int): An epoch to mark (where order changes).

    """
    figure = Figure(figsize=(8, 4.5), layout='constrained')
    ax = figure.subplots()
    coverage = numpy.asarray(coverage)
    epochs = numpy.arange(len(coverage))
    for k, label in enumerate(labels):
        ax.plot(epochs, coverage[:, k], linewidth=1.2, label=label)
    if boundary is not None:
        ax.axhline(boundary, color='gray', linestyle='--', linewidth=1,
                   label='c* = {:.3f}'.format(boundary))
    if switch is not None:
        ax.axvline(switch, color='black', linestyle=':', linewidth=1,
                   label='switch to random (epoch {})'.format(switch))
    ax.set_ylim(0, 2 * numpy.pi + 0.2)
    _finish(ax, title, 'epoch', 'coverage (x)', log=False, fontsize=7,
            ncol=2)
    return figure
