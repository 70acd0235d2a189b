"""Logging for commands: library modules log through ``logging.getLogger(__name__)``; a
command (``python -m lib ...``) shows those messages on stderr, plainly, while it runs, and
keeps stdout for its result."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cli_logging(level: int = logging.INFO) -> Iterator[None]:
    """While the block runs, messages of the ``lib`` loggers at ``level`` and above go to
    stderr as bare lines (warnings and errors prefixed with their level)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Plain())
    logger = logging.getLogger("lib")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


_PREFIXED = ("error:", "warning:", "FAILED")


class _Plain(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING and not text.startswith(_PREFIXED):
            text = f"{record.levelname.lower()}: {text}"
        return text
