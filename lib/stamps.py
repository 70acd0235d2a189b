"""Input-hash stamps: what a job's result depends on, so a rerun redoes only what changed.

A job's **components** are hashes of its notebook, its parameters, every Python source under
``lib/``, the dataset's annotation files, the stamps of the jobs upstream of it and the
files it reads. After a job succeeds, ``<results>/.stamps/<job>.json`` records them; the
next run compares (:func:`why_stale`) and skips the job when nothing changed and its
outputs are there. File names enter the hashes as :func:`lib.paths.portable` names, so a
stamp is the same on every checkout and never holds this machine's absolute paths.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lib import paths
from lib.stages import Job
from lib.utils import atomic_write_json

REASONS = {
    "notebook": "notebook changed", "parameters": "parameters changed",
    "lib": "lib/ sources changed", "dataset": "dataset annotations changed",
    "reads": "files it reads changed",
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def hash_files(files: Iterable[Path], base: Path | None = None) -> str:
    """Hash of the names (relative to ``base``, else portable) and contents of files; a
    missing file counts as missing."""
    h = hashlib.sha256()
    for f in sorted(files):
        name = f.relative_to(base).as_posix() if base is not None else paths.portable(f)
        h.update(name.encode() + b"\0")
        h.update(f.read_bytes() if f.is_file() else b"<missing>")
        h.update(b"\0")
    return h.hexdigest()[:16]


def lib_hash() -> str:
    """Hash of every Python source under ``lib/``."""
    lib = paths.ROOT / "lib"
    return hash_files([p for p in lib.rglob("*.py") if "__pycache__" not in p.parts], lib)


def dataset_hash(data_dir: Path) -> str:
    """Hash of the dataset's annotation files (``*.json``, ``vocabulary.txt``), leaving out
    ``train_aug.json``, which the pipeline itself writes (jobs that read it hash it)."""
    files = [p for p in data_dir.glob("*.json") if p.name != "train_aug.json"]
    files += [p for p in (data_dir / "vocabulary.txt",) if p.is_file()]
    return hash_files(files, data_dir)


def read_stamp(stamps: Path, name: str) -> dict[str, Any] | None:
    """A job's stamp, or None when there is none (or it is unreadable: the job reruns)."""
    path = stamps / f"{name}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def components(job: Job, data_dir: Path, stamps: Path, lib: str) -> dict[str, str]:
    """The hashed inputs of a job, by component."""
    out = {
        "notebook": hash_files([job.notebook]) if job.notebook else "none",
        "parameters": _sha(json.dumps(job.parameters, sort_keys=True, default=str).encode()),
        "lib": lib,
        "dataset": dataset_hash(data_dir),
    }
    for up in job.upstream:
        stamp = read_stamp(stamps, up)
        out[f"upstream {up}"] = stamp["hash"] if stamp else "missing"
    if job.reads:
        out["reads"] = hash_files(job.reads)
    return out


def total(parts: dict[str, str]) -> str:
    return _sha(json.dumps(parts, sort_keys=True).encode())


def write_stamp(stamps: Path, job: Job, parts: dict[str, str], seconds: float) -> Path:
    return atomic_write_json(stamps / f"{job.name}.json", {
        "job": job.name, "hash": total(parts), "components": parts,
        "parameters": job.parameters, "seconds": round(seconds, 1),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    })


def why_stale(job: Job, parts: dict[str, str], stamp: dict[str, Any] | None,
              executed: Path | None) -> list[str]:
    """Reasons to (re)run a job; empty when it is up to date."""
    if stamp is None:
        return ["never run"]
    reasons = []
    old = stamp.get("components", {})
    for key, value in parts.items():
        if old.get(key) == value:
            continue
        if key.startswith("upstream "):
            reasons.append(f"{key.removeprefix('upstream ')} reran")
        else:
            reasons.append(REASONS.get(key, f"{key} changed"))
    reasons += [f"{key} no longer an input" for key in old if key not in parts]
    if executed is not None and not executed.exists():
        reasons.append("executed copy missing")
    missing = [p for p in job.outputs if not p.exists()]
    if missing:
        shown = sorted({paths.portable(p) for p in missing})
        reasons.append(f"outputs missing ({', '.join(shown[:4])}"
                       + (f", {len(shown) - 4} more" if len(shown) > 4 else "") + ")")
    return reasons
