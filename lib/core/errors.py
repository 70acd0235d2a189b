"""The project's errors and the one-line error report of the command line.

Every error a user can cause (a bad file, a bad setting) is an :class:`AIAError` (a
``ValueError``) whose message starts with the file and says what is wrong, e.g.
``data/x/train.json: not UTF-8 text (byte 0xe9 at position 52, line 3)``.
``python -m lib`` turns it, and the common foreign errors that escape (malformed JSON or
YAML, undecodable text, missing files, unreadable images, truncated files), into ONE line
``error: <file>: <problem>`` on stderr and exit code 2 (:func:`report`); ``--debug``
anywhere on the command line, or ``AIA_DEBUG=1``, prints the traceback as well. Other
exceptions are bugs and keep their traceback. Ctrl-C prints ``interrupted`` and exits 130.

Classes: :class:`AIAError` (the base), :class:`DatasetError` (a malformed dataset folder or
file; also ``lib.data.datasets.DatasetError``), :class:`CorruptFileError` (a file that cannot be
decoded), :class:`SettingsError` (a bad setting), :class:`DiskFullError` (a write that ran
out of space).

This module imports only the standard library, so the dispatcher stays cheap.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Sequence

#: exit code of a reported error (argparse uses 2 for usage errors too)
EXIT_ERROR = 2
#: exit code after Ctrl-C (128 + SIGINT, as shells report it)
EXIT_INTERRUPTED = 130
#: exit code when the reader of stdout went away (128 + SIGPIPE)
EXIT_BROKEN_PIPE = 141
DEBUG_FLAG = "--debug"
DEBUG_ENV = "AIA_DEBUG"


class AIAError(ValueError):
    """Bad input the user can fix; the message names the file (or setting) and the problem.

    The project's error classes derive from it (``lib.data.datasets.DatasetError``, ...); it is a
    ``ValueError`` so that existing ``except ValueError`` handlers keep working."""


class DatasetError(AIAError):
    """A dataset folder or file is malformed; the message names the file and the problem.
    (Importable as ``lib.data.datasets.DatasetError``.)"""


class CorruptFileError(AIAError):
    """A file exists but cannot be decoded: truncated, not the format its name says, or not
    UTF-8 text. The message names the file and says how to recover."""


class SettingsError(AIAError):
    """A setting has a bad value (NaN, out of range, wrong type, unknown choice)."""


class OutputError(AIAError):
    """An output file or folder that cannot be written (a file in the way, a folder that
    cannot be created, no permission); checked before the work starts."""


class DiskFullError(AIAError, OSError):
    """A write ran out of disk space (or quota); the message names the file and the space
    the write needed. The half-written temporary file is already removed, the target
    untouched (``lib.core.fileio`` writes atomically)."""


# --------------------------------------------------------------------------- one-line report


def one_line(text: str) -> str:
    """``text`` on one line: its non-blank lines joined with ``"; "``."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


_WORKER = re.compile(r"\bOriginal Traceback \(most recent call last\):")
_QUALIFIED = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Warning): ")


def _unwrap_worker(text: str) -> tuple[str, bool]:
    """Torch's DataLoader re-raises a worker's exception with the worker's whole traceback
    in the message; keep only its last line (``DatasetError: <file>: <problem>``)."""
    if not _WORKER.search(text):
        return text, False
    last = [line for line in text.splitlines() if line.strip()][-1].strip()
    return _QUALIFIED.sub("", last), True


def _module_of(exc: BaseException) -> str:
    return type(exc).__module__ or ""


def _is_instance(exc: BaseException, module: str, name: str) -> bool:
    """``isinstance`` against ``module.name`` without importing the module (it has been
    imported if it raised)."""
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return isinstance(cls, type) and isinstance(exc, cls)


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is reported as one line (bad input) rather than as a bug."""
    if isinstance(exc, ValueError | OSError | EOFError):
        return True  # AIAError, JSON/Unicode/pandas parse errors, missing files, PIL, ...
    return any(_is_instance(exc, m, n) for m, n in (
        ("PIL.Image", "DecompressionBombError"),
        ("yaml", "YAMLError"),
        ("pickle", "UnpicklingError"),
        ("torch.cuda", "OutOfMemoryError"),
    ))


def describe(exc: BaseException) -> str:
    """The one-line ``<file>: <problem>`` text of an error (without ``error: ``)."""
    text, from_worker = _unwrap_worker(str(exc))
    suffix = " (raised in a data-loader worker)" if from_worker else ""
    if isinstance(exc, AIAError) or from_worker:
        return one_line(text) + suffix
    if isinstance(exc, UnicodeDecodeError):
        bad = exc.object[exc.start:exc.start + 1]
        return (f"not {exc.encoding.upper()} text (byte 0x{bad.hex()} at position {exc.start}); "
                "save the file as UTF-8")
    if _is_instance(exc, "json", "JSONDecodeError"):
        return f"malformed JSON ({one_line(text)})"
    if _is_instance(exc, "PIL", "UnidentifiedImageError"):
        match = re.search(r"'(.+)'", text)
        return f"{match[1]}: not an image PIL can read" if match else one_line(text)
    if isinstance(exc, OSError) and exc.filename is not None:
        problem = exc.strerror or one_line(text)
        names = f"{os.fsdecode(exc.filename)}"
        if exc.filename2 is not None:
            names += f" -> {os.fsdecode(exc.filename2)}"
        return f"{names}: {problem}"
    if _is_instance(exc, "PIL.Image", "DecompressionBombError"):
        return f"image too large to decode safely ({one_line(text)})"
    if _is_instance(exc, "yaml", "YAMLError"):
        return f"malformed YAML ({one_line(text)})"
    if isinstance(exc, EOFError) or _is_instance(exc, "pickle", "UnpicklingError"):
        return f"truncated or corrupt file ({one_line(text) or type(exc).__name__})"
    if _is_instance(exc, "torch.cuda", "OutOfMemoryError"):
        first = (text.splitlines() or [""])[0]
        return f"out of GPU memory ({first.strip()}); lower batch_size or image_size"
    return one_line(text) or type(exc).__name__


def debug_requested(argv: Sequence[str] = ()) -> bool:
    """``--debug`` among the options (before a ``--``) or ``AIA_DEBUG`` set to 1/true/yes."""
    options = list(argv)[: list(argv).index("--")] if "--" in argv else list(argv)
    env = os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    return env or DEBUG_FLAG in options


def strip_debug(argv: Sequence[str]) -> list[str]:
    """``argv`` without the ``--debug`` flags (those before a ``--``)."""
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    return [a for a in argv[:end] if a != DEBUG_FLAG] + argv[end:]


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (captured, closed)
        pass


def report(exc: BaseException, *, debug: bool = False, stream=None) -> int:
    """Report an exception a command raised; returns the exit code.

    Ctrl-C: ``interrupted``, 130. Stdout closed by its reader (``| head``): silent, 141.
    A user error (:func:`is_user_error`): ``error: <file>:
    <problem>`` on one line, 2 (with the traceback first when ``debug``). Anything else is
    a bug: re-raised, so Python prints its traceback."""
    stream = sys.stderr if stream is None else stream
    if isinstance(exc, BrokenPipeError) and exc.filename is None:
        # stdout closed by the reader (``python -m lib stats ... | head``): not an error
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    if isinstance(exc, KeyboardInterrupt):
        if debug:
            traceback.print_exception(exc, file=stream)
        print("interrupted", file=stream, flush=True)
        return EXIT_INTERRUPTED
    if not is_user_error(exc):
        raise exc
    if debug:
        traceback.print_exception(exc, file=stream)
    print(f"error: {describe(exc)}", file=stream, flush=True)
    return EXIT_ERROR
