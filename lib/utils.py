"""Small shared helpers: atomic writes and their stale temporaries, reading files with
errors that name them, seeding, provenance."""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import random
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from lib.errors import CorruptFileError, one_line
from lib.paths import ROOT


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


def _atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_save(path: str | os.PathLike, save: Callable[[Path], None]) -> Path:
    """Atomic write for any saver taking a path, e.g. ``lambda p: torch.save(obj, p)``,
    ``lambda p: df.to_csv(p, index=False)`` or ``lambda p: fig.savefig(p)``.

    The temporary file keeps the target's suffix, so savers that infer the format
    from it (matplotlib, PIL, numpy) still work."""
    return _atomic(path, save)


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
    import yaml

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
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise CorruptFileError(f"{path}: is a folder, expected a torch file")
        raise FileNotFoundError(errno.ENOENT, "file not found", str(path))
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            raise CorruptFileError(
                f"{path}: holds objects that safe (weights_only) loading refuses "
                f"({one_line(str(exc)).split(';')[0]})") from exc
        raise CorruptFileError(f"{path}: truncated or not a torch file ({one_line(str(exc))}); "
                               "delete it and create it again") from exc
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, KeyError, IndexError,
            UnicodeDecodeError, AttributeError, TypeError) as exc:
        size = path.stat().st_size
        raise CorruptFileError(f"{path}: truncated or not a torch file ({size} bytes; "
                               f"{type(exc).__name__}: {one_line(str(exc))}); delete it and "
                               "create it again") from exc


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when imported) torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - legacy global state used by libraries
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.manual_seed(seed)


def git_commit() -> str:
    """Commit of the checkout (with ``-dirty`` when there are changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def library_versions(names: tuple[str, ...] = (
    "torch", "torchvision", "timm", "numpy", "scikit-learn", "gensim", "pandas",
)) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


RECORD_MIMETYPE = "application/x-aia-record+json"


def record(name: str, value: Any) -> Any:
    """Record a number (or any JSON value) in a notebook's output, where tests and the
    reports read it back (the papermill/scrapbook "glue" pattern). Returns ``value``.

    Outside a notebook it does nothing visible."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover
        return value
    if get_ipython() is not None:
        display({RECORD_MIMETYPE: {name: _jsonable(value)}}, raw=True)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def notebook_records(path: str | os.PathLike) -> dict[str, Any]:
    """Everything a notebook recorded with :func:`record`, by name."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    out: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RECORD_MIMETYPE in data:
                out.update(data[RECORD_MIMETYPE])
    return out
