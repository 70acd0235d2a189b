"""Which fakes are ours: the layout of a set of fakes, its records, and the lock they live under.

Part of the ML-WGAN augmentation job (:mod:`lib.data.augmentation` trains and saves the fakes; this
module names them, reads and writes what records them, and guards the records).

Records (settings never mix silently): ``augment_logs/config.json`` records the settings of
the job (everything but ``batch_images``, ``device`` and ``threads``, which do not change the
fakes), and every image records the hash of the settings its fakes were made with in
``augment_logs/<stem>.settings.json``, written before its three fakes. An image is done when
its three fakes exist and its record matches the current settings. A job whose settings differ
from the recorded ones is refused (:class:`SettingsMismatch`) unless ``overwrite``, which
records the new settings first; a later plain run then redoes every image whose record
differs. The check and the record happen under ``augment_logs/.lock``, shared by all shards
(:func:`lock`); :class:`Presence` tells whether another augmentation process runs, and
:func:`remove_stale_temps` removes the temporary files of an interrupted save.

Shipped fakes and named sets (``fakes``): fakes or a ``train_aug.json`` without our record
(e.g. the Kaggle release of Corel-5k, which ships the reference's 13,500 fakes in ``images/``
and its ``train_aug.json``) are someone else's: no code path writes, renames or deletes them,
``overwrite`` included; a job of the set they are in is refused (:func:`check_and_record`). This
project's fakes go beside them in a named set, ``fakes=NAME`` (``--fakes NAME``): fakes
``images/NAME/<stem>_aug*.jpeg`` (:func:`aug_names`), records ``augment_logs/NAME/``
(:func:`records_dir`: ``config.json``, per image ``<stem>.csv`` and ``<stem>.settings.json``),
list ``train_aug_NAME.json`` (:func:`list_file`); each set resumes, shards and overwrites on its
own (the lock and the presence file, ``augment_logs/.lock`` and ``.running``, are shared by
all). The unnamed set (``fakes`` empty, the default) is the layout above.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from lib.core.errors import AIAError
from lib.core.config import build
from lib.core.locking import file_lock
from lib.core.fileio import atomic_write_json
from lib.method.wgan import AUG_SUFFIXES, WGANConfig, job_settings, settings_hash

LOG_DIR = "augment_logs"
CONFIG_FILE = "config.json"
TRAIN_AUG_FILE = "train_aug.json"
#: the lock of the check-and-record critical section and of train_aug.json, in LOG_DIR
LOCK_FILE = ".lock"
#: held shared by every running augmentation process of a dataset, in LOG_DIR
PRESENCE_FILE = ".running"
#: temporary files of an interrupted save older than this are removed even while another
#: augmentation process runs (a save takes milliseconds)
STALE_TEMP_SECONDS = 3600


class SettingsMismatch(AIAError):
    """The settings of a job differ from those recorded in the dataset's augment_logs/."""


# --------------------------------------------------------------------------- layout


def aug_names(name: str, fakes: str = "") -> list[str]:
    """The three generated image names of a training image (the last one marks it done),
    relative to ``images/``: ``<stem>_aug.jpeg`` ..., under ``<fakes>/`` for a named set."""
    stem = str((PurePosixPath(fakes) / name).with_suffix(""))
    return [f"{stem}{suffix}.jpeg" for suffix in AUG_SUFFIXES]


def list_file(fakes: str = "") -> str:
    """The list file of a set of fakes: ``train_aug.json``, or ``train_aug_<fakes>.json``."""
    return f"train_aug_{fakes}.json" if fakes else TRAIN_AUG_FILE


def records_dir(dataset_root: str | Path, fakes: str = "") -> Path:
    """Where a set of fakes keeps its records: ``augment_logs/``, or ``augment_logs/<fakes>/``
    (the lock and the presence file of every set stay in ``augment_logs/``)."""
    return Path(dataset_root) / LOG_DIR / fakes


def log_path(root: Path, name: str, fakes: str = "") -> Path:
    """The loss log of ``name``'s fakes: ``<stem>.csv`` in :func:`records_dir`."""
    return records_dir(root, fakes) / f"{PurePosixPath(name).with_suffix('')}.csv"


def record_path(root: Path, name: str, fakes: str = "") -> Path:
    """The settings record of ``name``'s fakes: ``<stem>.settings.json`` in :func:`records_dir`."""
    return records_dir(root, fakes) / f"{PurePosixPath(name).with_suffix('')}.settings.json"


# --------------------------------------------------------------------------- records


def recorded_hash(root: str | Path, name: str, fakes: str = "") -> str | None:
    """The settings hash recorded for ``name``'s fakes (None: no readable record)."""
    try:
        record = json.loads(record_path(Path(root), name, fakes).read_text(encoding="utf-8"))
        return str(record["settings_hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def has_fakes(root: str | Path, name: str, fakes: str = "") -> bool:
    """True when all three fakes of ``name`` exist (whatever made them)."""
    return all((Path(root) / "images" / aug).is_file() for aug in aug_names(name, fakes))


def is_done(root: str | Path, name: str, config_hash: str, fakes: str = "") -> bool:
    """True when the three fakes of ``name`` exist and were made with the settings of hash
    ``config_hash`` (:func:`settings_hash`)."""
    return has_fakes(root, name, fakes) and recorded_hash(root, name, fakes) == config_hash


def read_config(dataset_root: str | Path, fakes: str = "") -> dict[str, Any] | None:
    """``augment_logs/config.json`` (``augment_logs/<fakes>/`` for a named set; None when
    there is none): the recorded ``settings``, their ``settings_hash``, and ``images``
    augmented ``of`` the training images, ``selected`` by ``select``."""
    path = records_dir(dataset_root, fakes) / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        out = json.loads(text)
    except ValueError as exc:
        raise SettingsMismatch(f"{path}: not valid JSON ({exc}); pass overwrite=True "
                               "(--overwrite) to record the settings afresh") from None
    if not isinstance(out, dict):
        raise SettingsMismatch(f"{path}: expected a JSON object")
    return out


def recorded_config(dataset_root: str | Path, fakes: str = "") -> WGANConfig | None:
    """The settings recorded in the set's ``config.json`` (execution settings at their
    defaults), or None when there is no such file."""
    recorded = read_config(dataset_root, fakes)
    if recorded is None:
        return None
    where = str(records_dir(dataset_root, fakes) / CONFIG_FILE)
    if not isinstance(recorded.get("settings"), dict):
        raise SettingsMismatch(f"{where}: no 'settings' (written by an older version); pass "
                               "overwrite=True (--overwrite) to record the settings afresh")
    return build(WGANConfig, overrides={**recorded["settings"], "fakes": fakes}, where=where)


def augmentation_info(dataset_root: str | Path, fakes: str = "") -> dict[str, Any] | None:
    """``{"images": n, "of": N, "select": ...}``: how many training images have fakes in
    the set's list file, of how many, chosen how; None when nothing was recorded (e.g. the
    shipped fakes of the Kaggle release)."""
    recorded = read_config(dataset_root, fakes)
    if recorded is None or "images" not in recorded:
        return None
    return {"images": recorded["images"], "of": recorded["of"], "select": recorded["select"]}


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [k for k in new if old.get(k, "(not recorded)") != new[k]]
    keys += [k for k in old if k not in new]
    return "; ".join(f"{k}: recorded {old.get(k, '(not recorded)')}, now "
                     f"{new.get(k, '(none)')}" for k in keys)


def check_and_record(root: Path, config: WGANConfig, names: Sequence[str],
                     selected: Sequence[str], overwrite: bool, alone: bool) -> None:
    """Refuse settings other than the recorded ones (unless ``overwrite``, and then only
    when no other augmentation process runs here); refuse fakes or a list file of the set
    that it did not record; record the new ones (:func:`write_config`). ``names``: every
    training image, in training order; ``selected``: those ``config`` selects. Call under
    the lock."""
    fakes = config.fakes
    path = records_dir(root, fakes) / CONFIG_FILE
    wanted = job_settings(config)
    try:
        recorded = read_config(root, fakes)
    except SettingsMismatch:
        if not overwrite:
            raise
        recorded = {"settings": "(unreadable)"}
    if recorded is not None:
        old = recorded.get("settings")
        old = old if isinstance(old, dict) else {k: v for k, v in recorded.items()
                                                 if k in wanted}  # an older, flat config.json
        if old == wanted:
            return
        if not overwrite:
            raise SettingsMismatch(
                f"{path}: the fakes here were made with other settings ({_diff(old, wanted)}); "
                "rerun with the recorded settings, or pass overwrite=True (--overwrite) to "
                "redo the selected images with the new ones")
        if not alone:
            raise SettingsMismatch(
                f"{path}: another augmentation process is running in {root} with the recorded "
                f"settings ({_diff(old, wanted)}); wait for it or stop it before overwriting")
    else:
        # fakes (or a list) without our record are someone else's, e.g. the Kaggle
        # release's 13,500 (the reference's own): never written, not even with overwrite
        made = [n for n in names if has_fakes(root, n, fakes)]
        listed = root / list_file(fakes)
        if made or listed.is_file():
            what = (f"{root / 'images'} holds the fakes of {len(made)} training images (e.g. "
                    f"{aug_names(made[0], fakes)[0]})" if made else f"{listed} exists")
            other = "another name" if fakes else "a name"
            raise SettingsMismatch(
                f"{path} is missing, but {what}, made elsewhere (e.g. the shipped fakes of the "
                "Kaggle release), with unknown settings; they are never overwritten: train on "
                f"them as they are (augmented: true, aug_list: {list_file(fakes)}), or write "
                f"fakes of this project beside them under {other} (fakes: NAME, --fakes NAME: "
                "images/NAME/, train_aug_NAME.json; then aug_list: train_aug_NAME.json)")
    write_config(root, config, names, selected)


def write_config(root: Path, config: WGANConfig, names: Sequence[str],
                 selected: Sequence[str]) -> list[str]:
    """Record ``config`` in the set's ``config.json`` with the counts (``names``: every
    training image, in training order; ``selected``: those ``config`` selects); returns
    ``done``: selected and made with these settings, training order."""
    chosen = set(selected)
    config_hash = settings_hash(config)
    done = [n for n in names if n in chosen and is_done(root, n, config_hash, config.fakes)]
    atomic_write_json(records_dir(root, config.fakes) / CONFIG_FILE, {
        "images": len(done), "of": len(names), "select": config.select,
        "limit": config.limit, "selected": len(selected), "settings_hash": config_hash,
        "settings": job_settings(config),
    })
    return done


# --------------------------------------------------------------------------- concurrency


class Presence:
    """A shared ``flock`` on ``augment_logs/.running`` held by every augmentation process of a
    dataset for its whole job (the OS drops it when the process dies). Taking it exclusively
    (under the lock, without waiting) tells whether any other such process is alive."""

    def __init__(self, root: Path):
        path = root / LOG_DIR / PRESENCE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a+")  # noqa: SIM115 - closed in close()

    def alone(self) -> bool:
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def share(self) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_SH)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


#: temporary files of lib.core.fileio' atomic writes (``.<name>.<random>.tmp``, and atomic_save's
#: ``.<name>.<random><suffix>``) of the files augment writes
_TEMP_NAMES = {
    "images": re.compile(r"^\..+_aug(_hor_flip|_rot_90)?\.jpeg\.[^.]+\.tmp$"),
    LOG_DIR: re.compile(r"^\..+\.(csv|json)\.[^.]+\.(tmp|csv|json)$"),
}


def remove_stale_temps(root: Path, alone: bool) -> int:
    """Remove the temporary files an interrupted save left behind: all of them when no other
    augmentation process runs here, else those older than :data:`STALE_TEMP_SECONDS`."""
    removed = 0
    now = time.time()
    candidates = [p for folder, pattern in _TEMP_NAMES.items() if (root / folder).is_dir()
                  for p in (root / folder).rglob(".*") if pattern.match(p.name)]
    candidates += [p for p in root.glob(".train_aug*.json.*.tmp")]  # every set's list
    for path in candidates:
        with contextlib.suppress(FileNotFoundError):
            if alone or now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                path.unlink()
                removed += 1
    return removed


def lock(root: Path):
    """The lock of the check-and-record critical section and of every set's list file,
    ``augment_logs/.lock`` (waits for it)."""
    return file_lock(root / LOG_DIR / LOCK_FILE, "ML-WGAN augmentation", wait=True)



__all__ = [
    "CONFIG_FILE", "LOCK_FILE", "LOG_DIR", "PRESENCE_FILE", "STALE_TEMP_SECONDS",
    "TRAIN_AUG_FILE", "Presence", "SettingsMismatch", "aug_names", "augmentation_info",
    "check_and_record", "has_fakes", "is_done", "list_file", "lock", "log_path", "read_config",
    "record_path", "records_dir", "recorded_config", "recorded_hash", "remove_stale_temps",
    "write_config",
]
