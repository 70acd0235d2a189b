"""Files written atomically (with their stale temporaries cleaned) and files read with errors
that name them."""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import pickle
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lib.core.errors import CorruptFileError, DiskFullError, OutputError, one_line


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


#: temporary files of the atomic writers: ``.<name>.<pid>.<random>.tmp[<suffix of name>]``
_TEMP = re.compile(
    r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<token>[A-Za-z0-9_]+)\.tmp(?P<suffix>\.[^.]*)?$")
#: temporary files of earlier versions (``.<name>.<random>.tmp``, no pid): removed by age only
_LEGACY_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<token>[A-Za-z0-9_]{8})\.tmp$")


def temp_path_for(path: str | os.PathLike) -> Path:
    """A new, empty temporary file beside ``path`` for an atomic write of it, named
    ``.<name>.<pid>.<random>.tmp<suffix>`` (hidden; it keeps the target's suffix so that
    savers inferring the format from it still work; the pid lets
    :func:`clean_stale_temps` tell a live writer's file from one a killed process left)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=f".tmp{path.suffix}")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
    return Path(tmp)


#: errors of a full disk (or a full quota)
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _full_disk_cause(exc: BaseException | None) -> OSError | None:
    """The OSError of a full disk behind ``exc`` (itself, its cause or context), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def human_bytes(n: float) -> str:
    """``n`` bytes as ``"1.5 MB"`` (powers of 1000, as ``df -H``)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover


def disk_full_error(path: str | os.PathLike, needed: int | None, written: int = 0,
                    cause: OSError | None = None) -> DiskFullError:
    """The one-line error of a write of ``path`` that ran out of space: the file, the space
    it needed (``needed`` bytes, or more than the ``written`` ones when unknown) and the
    space free there."""
    path = Path(path)
    why = "no space left on device" if cause is None or cause.errno == errno.ENOSPC \
        else "disk quota exceeded"
    if needed is not None:
        need = f"writing it needs {human_bytes(needed)} ({needed} bytes)"
    else:
        need = f"writing it needs more than the {human_bytes(written)} written"
    try:
        free = f"{human_bytes(shutil.disk_usage(path.parent).free)} free in {path.parent}"
    except OSError:
        free = "free space unknown"
    return DiskFullError(f"{path}: {why}: {need}, {free}; free some space and run again "
                         "(nothing was written)")


def _atomic(path: str | os.PathLike, write: Callable[[Path], None],
            needed: Callable[[], int | None] | int | None = None) -> Path:
    """Write through a temporary file in the same folder, then rename over ``path``.

    A full disk is a :class:`lib.core.errors.DiskFullError` naming ``path`` and the space the
    write needed (``needed``: bytes, or a function computing them after the failure); the
    temporary file is removed and ``path`` keeps its old content."""
    path = Path(path)
    try:
        tmp = temp_path_for(path)
    except OSError as exc:
        if exc.errno in _FULL:
            raise disk_full_error(path, needed() if callable(needed) else needed,
                                  cause=exc) from exc
        raise
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            written = tmp.stat().st_size
        except OSError:
            written = 0
        tmp.unlink(missing_ok=True)
        full = _full_disk_cause(exc)
        if full is None:
            raise
        raise disk_full_error(path, needed() if callable(needed) else needed, written,
                              full) from exc
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic(path, lambda tmp: tmp.write_bytes(data), len(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    data = text.encode("utf-8")
    return _atomic(path, lambda tmp: tmp.write_bytes(data), len(data))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_save(path: str | os.PathLike, save: Callable[[Path], None]) -> Path:
    """Atomic write for any saver taking a path, e.g. ``lambda p: df.to_csv(p, index=False)``
    or ``lambda p: fig.savefig(p)`` (torch objects: :func:`atomic_save_torch`).

    The temporary file keeps the target's suffix, so savers that infer the format
    from it (matplotlib, PIL, numpy) still work."""
    return _atomic(path, save)


class _CountingSink:
    """A write-only file object that counts bytes (the size a save needs)."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self.size += n
        return n

    def flush(self) -> None:
        pass


class _RecordingFile:
    """A file object whose write errors are kept: torch's writer turns a Python error of
    ``write`` into a RuntimeError without the errno (``unexpected pos``)."""

    def __init__(self, f) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically; a full disk is one line naming the file
    and the checkpoint's size (:class:`lib.core.errors.DiskFullError`), not torch's traceback."""
    import torch  # lazy import (torch)

    def needed() -> int:
        sink = _CountingSink()
        torch.save(obj, sink)
        return sink.size

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            out = _RecordingFile(f)
            try:
                torch.save(obj, out)
            except RuntimeError as exc:
                if out.error is not None:
                    raise out.error from exc
                raise

    return _atomic(path, write, needed)


def _probe(folder: Path, what: str) -> None:
    try:
        temp_path_for(folder / ".write-probe").unlink()
    except OSError as exc:
        raise OutputError(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from None


def check_output_folder(path: str | os.PathLike) -> Path:
    """Create the output folder ``path`` (and its parents) and check that files can be
    written in it, before a long job starts; else :class:`lib.core.errors.OutputError` on one
    line (a file in the way, a read-only parent, no permission)."""
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{path}: is a file, expected a folder" if parent == path else
                              f"{path}: cannot create the folder, {parent} is a file")
        if parent.exists():
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the folder ({exc.strerror or exc})") from None
    _probe(path, str(path))
    return path


def check_output_file(path: str | os.PathLike) -> Path:
    """Check, before a long job starts, that the file ``path`` can be written atomically:
    not a folder, its folder exists (or can be created) and takes files; else
    :class:`lib.core.errors.OutputError` on one line."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, expected a file name")
    check_output_folder(path.parent)
    return path


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:  # pragma: no cover - e.g. pid out of range
        return False
    return True


def clean_stale_temps(folder: str | os.PathLike, pattern: str = "*", *,
                      max_age_hours: float = 24.0) -> list[Path]:
    """Remove the temporary files that interrupted atomic writes left in ``folder`` (not
    its subfolders) and return them.

    A temporary file of a target matching the glob ``pattern`` (e.g. ``"*.pt"``) is stale
    when the process that wrote it is gone, or when it is older than ``max_age_hours``
    (a pid reused by another process, a writer on another machine). Files of live writers
    are left alone. Call it where a folder is (re)opened for writing."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for entry in os.scandir(folder):
        if not entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        match = _TEMP.match(entry.name) or _LEGACY_TEMP.match(entry.name)
        if match is None or not fnmatch.fnmatchcase(match["name"], pattern):
            continue
        try:
            age_h = (now - entry.stat(follow_symlinks=False).st_mtime) / 3600
        except FileNotFoundError:  # removed meanwhile (the writer finished)
            continue
        pid = match.groupdict().get("pid")
        if age_h > max_age_hours or (pid is not None and not _pid_alive(int(pid))):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed.append(Path(entry.path))
    return sorted(removed)


# --------------------------------------------------------------------------- reading files


def read_text(path: str | os.PathLike, *, error: type[Exception] = CorruptFileError) -> str:
    """A UTF-8 text file (a UTF-8 byte-order mark is accepted). A missing file raises
    FileNotFoundError naming it; undecodable bytes raise ``error`` naming the file, the
    byte, its position and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise FileNotFoundError(errno.ENOENT, "file not found", str(path)) from exc
    except IsADirectoryError as exc:
        raise error(f"{path}: is a folder, expected a file") from exc
    except OSError as exc:
        raise error(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        data = exc.object  # without a byte-order mark
        line = data[:exc.start].count(b"\n") + 1
        raise error(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at position "
                    f"{exc.start}, line {line}); save the file as UTF-8") from exc


def read_json(path: str | os.PathLike, *, error: type[Exception] = CorruptFileError) -> Any:
    """A JSON file (UTF-8); errors name the file and, for malformed JSON, the line."""
    text = read_text(path, error=error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: malformed JSON ({exc})") from exc


def read_yaml(path: str | os.PathLike, *, error: type[Exception] = CorruptFileError) -> Any:
    """A YAML file (UTF-8, ``yaml.safe_load``); errors name the file and the line."""

    text = read_text(path, error=error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or one_line(str(exc))
        raise error(f"{path}: malformed YAML{where} ({problem})") from exc


def load_torch(path: str | os.PathLike, *, map_location: Any = "cpu",
               weights_only: bool = True) -> Any:
    """``torch.load`` of a checkpoint, with errors that name the file: FileNotFoundError
    when it is missing, :class:`CorruptFileError` when it is truncated or not a torch file
    (e.g. a write that was killed), or holds objects ``weights_only`` loading refuses."""

    import torch  # lazy import (torch)

    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise CorruptFileError(f"{path}: is a folder, expected a torch file")
        raise FileNotFoundError(errno.ENOENT, "file not found", str(path))
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            # torch's message suggests loading unsafely; the project never relays that
            found = re.findall(r"GLOBAL\s+([\w.]+)", str(exc))
            what = f" (it references {found[0]})" if found else ""
            raise CorruptFileError(
                f"{path}: refused: holds objects other than tensors and plain values{what}, "
                "so it is not a checkpoint this project wrote and it is not loaded (it could "
                "run code); delete it and train again") from None
        raise CorruptFileError(f"{path}: truncated or not a torch file ({one_line(str(exc))}); "
                               "delete it and create it again") from exc
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, KeyError, IndexError,
            UnicodeDecodeError, AttributeError, TypeError) as exc:
        size = path.stat().st_size
        raise CorruptFileError(f"{path}: truncated or not a torch file ({size} bytes; "
                               f"{type(exc).__name__}: {one_line(str(exc))}); delete it and "
                               "create it again") from exc
