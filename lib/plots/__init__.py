"""Plots (seaborn/matplotlib), one sub-module per pipeline stage.

Every plotting function returns the matplotlib figure; :func:`save` writes it atomically
as PNG (matplotlib picks a headless backend by itself when there is no display).
"""

from __future__ import annotations

import os
from pathlib import Path

from lib.core.fileio import atomic_save


def save(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a figure as PNG, atomically; returns the path."""
    return atomic_save(path, lambda p: fig.savefig(p, dpi=dpi, bbox_inches="tight"))


def integer_epochs(ax) -> None:
    """Whole-number ticks on the x axis (epochs are never 1.5)."""
    from matplotlib.ticker import MaxNLocator  # lazy import (matplotlib)

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def legend_outside(ax, **kwargs) -> None:
    """Move the axes' legend to the right of the plot, off the data."""
    import seaborn as sns  # lazy import (seaborn)

    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, **kwargs)


#: offsets (points) tried in turn for a label beside its point: NE, SE, NW, SW, E, W
_OFFSETS = ((4, 4), (4, -11), (-4, 4), (-4, -11), (6, -3), (-6, -3))


def place_labels(ax, xs, ys, texts, fontsize: float = 7) -> list[str]:
    """Write ``texts`` beside their points without overlap: each label (in the order given,
    so put the most important first) takes the first of a few fixed offsets where its box
    meets no label already placed, nor leaves the axes; a label with no free place is left
    out. Deterministic; returns the labels written."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = []
    written = []
    for x, y, text in zip(xs, ys, texts, strict=True):
        for dx, dy in _OFFSETS:
            ann = ax.annotate(str(text), (x, y), xytext=(dx, dy), textcoords="offset points",
                              fontsize=fontsize, ha="left" if dx >= 0 else "right",
                              va="bottom" if dy >= 0 else "top")
            box = ann.get_window_extent(renderer).expanded(1.05, 1.1)
            inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                      and box.y1 <= frame.y1)
            if inside and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                written.append(str(text))
                break
            ann.remove()
    return written
