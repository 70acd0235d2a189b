"""The project's errors, the one-line error report of the command line, settings checks.

Every error a user can cause (a bad file, a bad setting) is an :class:`AIAError` (a
``ValueError``) whose message starts with the file and says what is wrong, e.g.
``data/x/train.json: not UTF-8 text (byte 0xe9 at position 52, line 3)``.
``python -m lib`` turns it, and the common foreign errors that escape (malformed JSON or
YAML, undecodable text, missing files, unreadable images, truncated files), into ONE line
``error: <file>: <problem>`` on stderr and exit code 2 (:func:`report`); ``--debug``
anywhere on the command line, or ``AIA_DEBUG=1``, prints the traceback as well. Other
exceptions are bugs and keep their traceback. Ctrl-C prints ``interrupted`` and exits 130.

Classes: :class:`AIAError` (the base), :class:`DatasetError` (a malformed dataset folder or
file; also ``lib.data.DatasetError``), :class:`CorruptFileError` (a file that cannot be
decoded), :class:`SettingsError` (a bad setting), :class:`DiskFullError` (a write that ran
out of space).

The ``check_*`` helpers validate settings (finite, positive, in a range, one of a set) and
raise :class:`SettingsError` naming the setting, where it came from and the bad value.

This module imports only the standard library, so the dispatcher stays cheap.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import sys
import traceback
from collections.abc import Iterable, Sequence
from typing import Any

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

    The project's error classes derive from it (``lib.data.DatasetError``, ...); it is a
    ``ValueError`` so that existing ``except ValueError`` handlers keep working."""


class DatasetError(AIAError):
    """A dataset folder or file is malformed; the message names the file and the problem.
    (Importable as ``lib.data.DatasetError``.)"""


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
    untouched (``lib.utils`` writes atomically)."""


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


# --------------------------------------------------------------------------- settings checks


def _where(name: str, where: str | None) -> str:
    return f"{where}: {name}" if where else name


def _number(name: str, value: Any, where: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SettingsError(f"{_where(name, where)} must be a number, got {value!r}")
    return float(value)


def check_finite(name: str, value: Any, where: str | None = None):
    """``value`` if it is a real number other than NaN and +-inf; else :class:`SettingsError`.
    ``where`` (a file, a command) prefixes the message."""
    if not math.isfinite(_number(name, value, where)):
        raise SettingsError(f"{_where(name, where)} must be a finite number, got {value!r}")
    return value


def check_range(name: str, value: Any, low: float | None = None, high: float | None = None,
                *, low_open: bool = False, high_open: bool = False, where: str | None = None):
    """``value`` if it is finite and within ``[low, high]`` (``low_open``/``high_open`` exclude
    an end; ``None`` leaves a side unbounded); else :class:`SettingsError`."""
    x = float(check_finite(name, value, where))
    below = low is not None and (x <= low if low_open else x < low)
    above = high is not None and (x >= high if high_open else x > high)
    if below or above:
        lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
        hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
        raise SettingsError(f"{_where(name, where)} must be in {lo}, {hi}, got {value!r}")
    return value


def check_positive(name: str, value: Any, where: str | None = None):
    """``value`` if it is a finite number > 0; else :class:`SettingsError`."""
    check_finite(name, value, where)
    if value <= 0:
        raise SettingsError(f"{_where(name, where)} must be > 0, got {value!r}")
    return value


def check_non_negative(name: str, value: Any, where: str | None = None):
    """``value`` if it is a finite number >= 0; else :class:`SettingsError`."""
    check_finite(name, value, where)
    if value < 0:
        raise SettingsError(f"{_where(name, where)} must be >= 0, got {value!r}")
    return value


def check_probability(name: str, value: Any, where: str | None = None):
    """``value`` if it is a finite number in [0, 1]; else :class:`SettingsError`."""
    return check_range(name, value, 0.0, 1.0, where=where)


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None,
              where: str | None = None) -> int:
    """``value`` if it is an integer (not a bool, not 3.0) within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SettingsError(f"{_where(name, where)} must be an integer, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (f">= {minimum}" if maximum is None else f"<= {maximum}" if minimum is None
                  else f"in [{minimum}, {maximum}]")
        raise SettingsError(f"{_where(name, where)} must be an integer {bounds}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any], where: str | None = None):
    """``value`` if it is one of ``choices``; else :class:`SettingsError` listing them."""
    choices = list(choices)
    if value not in choices:
        raise SettingsError(f"{_where(name, where)} must be one of {choices}, got {value!r}")
    return value


def check_finite_array(name: str, values: Any, where: str | None = None):
    """``values`` (anything numpy takes) if every entry is finite; else :class:`SettingsError`
    saying how many entries are NaN or infinite and the first positions."""
    import numpy as np

    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise SettingsError(f"{_where(name, where)} must be real numbers, got dtype {array.dtype}")
    bad = ~np.isfinite(array)
    if bad.any():
        first = [tuple(int(i) for i in idx) for idx in np.argwhere(bad)[:5]]
        raise SettingsError(f"{_where(name, where)} has {int(bad.sum())} NaN or infinite "
                            f"value(s), first at index {first}")
    return values
