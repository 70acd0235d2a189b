"""Plots (seaborn/matplotlib), one sub-module per pipeline stage.

Every plotting function returns the matplotlib figure; :func:`save` writes it atomically
as PNG (matplotlib picks a headless backend by itself when there is no display).
"""

from __future__ import annotations

import os
from pathlib import Path

from lib.utils import atomic_save


def save(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a figure as PNG, atomically; returns the path."""
    return atomic_save(path, lambda p: fig.savefig(p, dpi=dpi, bbox_inches="tight"))
