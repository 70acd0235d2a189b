"""One writer per folder: an advisory lock file held for the whole of a job.

``with file_lock(folder / ".lock", "training run"):`` takes the lock or fails at once
with :class:`LockedError` naming the folder and the process that holds it. The lock is
``fcntl.flock`` on the file, so the operating system drops it when its process dies
(kill -9 included): a stale lock file never blocks a later run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from lib.core.errors import AIAError


class LockedError(AIAError):
    """Another process holds the lock; the message names the folder and that process."""


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, what: str = "job", *, wait: bool = False
              ) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block.

    ``wait=False`` (default) raises :class:`LockedError` when another process holds it;
    ``wait=True`` blocks until it is free (for short critical sections)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - closed in finally
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise LockedError(f"{path.parent}: a {what} is already writing here ({owner}); "
                              "wait for it to finish or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield path
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
