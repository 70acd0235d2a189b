"""What a person sees while things run: log lines, progress, warnings, summaries.

- Library modules log through ``logging.getLogger(__name__)``; a command
  (``python -m lib ...``) shows those messages on stderr, plainly, while it runs
  (:func:`cli_logging`), keeps stdout for its result, and turns every Python warning into
  one ``warning:`` line (category, message, where) instead of the file, line and source.
- Progress bars (:func:`progress`, a drop-in for ``tqdm``) are drawn only on an interactive
  terminal (stderr is a TTY); in a notebook, an executed copy, a report or a log file there
  are none, and what a long job says instead is one line per step (:func:`line`: one line
  per training epoch). ``AIA_PROGRESS=bars`` forces bars, ``AIA_PROGRESS=off`` disables them.
- :func:`metrics_summary`: the few headline numbers of a run, rounded, for a command's
  human output (the full JSON stays available, e.g. ``python -m lib train --json``).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm.std import tqdm as _tqdm

from lib.core import paths


def bars_on() -> bool:
    """Progress bars are drawn: ``AIA_PROGRESS=bars``/``off`` decides, else only when
    stderr is an interactive terminal (never in a Jupyter kernel or a pipeline job)."""
    choice = os.environ.get("AIA_PROGRESS", "").strip().lower()
    if choice in {"bars", "1", "on"}:
        return True
    if choice in {"off", "0", "none"}:
        return False
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def progress(*args: Any, **kwargs: Any) -> _tqdm:
    """``tqdm`` (text bars) that stays silent off an interactive terminal (:func:`bars_on`);
    a caller's own ``disable=True`` still wins."""
    kwargs["disable"] = bool(kwargs.get("disable")) or not bars_on()
    return _tqdm(*args, **kwargs)


def line(text: str, logger: logging.Logger | None = None) -> None:
    """One line of progress a person reads: above the bars on a terminal, through the
    ``lib`` logger while a command runs (stderr), else printed (a notebook's output)."""
    logger = logger or logging.getLogger("lib")
    if bars_on():
        _tqdm.write(text, file=sys.stderr)
    elif _handled(logger):
        logger.info("%s", text)
    else:
        print(text, flush=True)


def _handled(logger: logging.Logger) -> bool:
    current: logging.Logger | None = logger
    while current is not None:
        if current.handlers:
            return True
        current = current.parent if current.propagate else None
    return False


def warning_line(message: Warning | str, category: type[Warning], filename: str,
                 lineno: int) -> str:
    """A Python warning as one line: ``warning: UserWarning: <message> (lib/x.py:12)``."""
    text = " ".join(str(message).split())
    return f"warning: {category.__name__}: {text} ({paths.portable(Path(filename))}:{lineno})"


@contextmanager
def cli_logging(level: int = logging.INFO) -> Iterator[None]:
    """While the block runs, messages of the ``lib`` loggers at ``level`` and above go to
    stderr as bare lines (warnings and errors prefixed with their level), and every Python
    warning is one ``warning:`` line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Plain())
    logger = logging.getLogger("lib")
    old_level = logger.level
    old_show = warnings.showwarning
    logger.addHandler(handler)
    logger.setLevel(level)

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        logger.warning("%s", warning_line(message, category, filename, lineno))

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = old_show
        logger.removeHandler(handler)
        logger.setLevel(old_level)


_PREFIXED = ("error:", "warning:", "FAILED")


class _Plain(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING and not text.startswith(_PREFIXED):
            text = f"{record.levelname.lower()}: {text}"
        return text


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


#: the headline numbers of a metrics.json, in the order a person reads them
HEADLINE = (("mAP", ("mean_average_precision",)),
            ("per-class F1 @0.5", ("at_0.5", "per_class_f1")),
            ("per-class F1 @MCC", ("mcc", "per_class_f1")),
            ("per-image F1 @0.5", ("at_0.5", "per_image_f1")),
            ("N+ @0.5", ("at_0.5", "n_plus")),
            ("per-class F1 top-3", ("top3", "per_class_f1")))


def metrics_summary(metrics: Mapping[str, Any]) -> list[str]:
    """``name  value`` lines of the headline numbers present in a metrics mapping (the
    layout of ``metrics.json``), rounded to four decimals."""
    rows = []
    for name, keys in HEADLINE:
        value: Any = metrics
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is not None:
            rows.append((name, _fmt(value)))
    width = max((len(n) for n, _ in rows), default=0)
    return [f"  {name:<{width}}  {value}" for name, value in rows]
