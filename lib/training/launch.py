"""How a training starts: ``train`` (one configuration into its run folder), ``train_seeds``
(notebook 04: one configuration per seed) and ``python -m lib train``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lib.core import config as settings
from lib.core import paths
from lib.core.config import ConfigError
from lib.core.logs import cli_logging, metrics_summary
from lib.training.runs import RunFolder, load_checkpoint, seed_dir
from lib.training.settings import PRESETS, RESUME_FREE, TrainConfig, build_config
from lib.training.trainer import Trainer

log = logging.getLogger(__name__)


def train(config: TrainConfig, *, max_epochs_this_call: int | None = None) -> Path:
    """Train ``config`` into its run folder and return the folder.

    A run folder that holds the same configuration is continued (or left as it is when
    finished); one that holds another configuration is an error unless
    ``config.overwrite``. ``max_epochs_this_call`` trains at most that many epochs in this
    call (an interruption, for tests and time limits)."""
    return Trainer(config).run(max_epochs_this_call)


def train_seeds(run_name: str, dataset: str, seeds: Sequence[int], preset: str = "default",
                overrides: dict[str, Any] | None = None) -> list[RunFolder]:
    """Train one configuration once per seed into ``runs/<run_name>/seed-<n>/`` (notebook
    04); every seed's configuration is built and checked before the first trains."""
    if not seeds:
        raise ConfigError("seeds: give at least one seed")
    overrides = settings.parse_overrides(overrides, f"run {run_name!r}")
    configs = [build_config(preset, {**overrides, "data": str(dataset), "seed": int(seed),
                                     "run_name": Path(run_name).name,
                                     "out": str(seed_dir(paths.runs_dir(), run_name, seed))},
                            where=f"run {run_name!r}") for seed in seeds]
    return [RunFolder(train(_replacing_changed(c))) for c in configs]


def _replacing_changed(config: TrainConfig) -> TrainConfig:
    """The pipeline owns its run folders: a run whose configuration changed (a parameter
    set or a default was edited) is trained again, with a warning, instead of refused."""
    folder = RunFolder(config.resolved_out())
    if config.overwrite or not folder.checkpoint_path.is_file():
        return config
    saved = load_checkpoint(folder.checkpoint_path)["config"]
    now = config.to_dict()
    changed = sorted(k for k in set(now) | set(saved)
                     if k not in (*RESUME_FREE, "amp") and now.get(k) != saved.get(k))
    if not changed:
        return config
    log.warning("%s: configuration changed (%s): training again", paths.portable(folder.path),
                ", ".join(changed))
    return dataclasses.replace(config, overwrite=True)


# --------------------------------------------------------------------------- CLI


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib train",
                                description="Train a model into a run folder (a rerun of the "
                                            "same configuration continues it).")
    p.add_argument("--preset", choices=tuple(PRESETS), default="default",
                   help="starting configuration; options given here override it")
    settings.add_arguments(p, TrainConfig)
    p.add_argument("--json", action="store_true",
                   help="print the run's metrics.json on stdout instead of the summary")
    p.add_argument("--max-epochs-this-call", type=int, default=None, help=argparse.SUPPRESS)
    return p


def run_summary(folder: RunFolder) -> list[str]:
    """The human summary of a finished run: where it is, how it trained, the headline test
    numbers (rounded)."""
    key = folder.key_metrics()
    lines = [f"run folder: {paths.portable(folder.path)}",
             f"  {key['epochs_trained']} epochs in {key['train_seconds']:.1f} s, best epoch "
             f"{key['best_epoch']} (selected on {folder.config.get('selection_split', 'val')}"
             + (", leaky)" if key["leaky"] else ")"),
             "test metrics:", *metrics_summary(folder.metrics()),
             f"(full metrics: {paths.portable(folder.metrics_path())}, or --json)"]
    return lines


def train_main(argv: list[str]) -> int:
    args = train_parser().parse_args(argv)
    given = settings.given(args, TrainConfig)
    config = build_config(args.preset, given)
    with cli_logging():
        out = train(config, max_epochs_this_call=args.max_epochs_this_call)
    folder = RunFolder(out)
    if int(os.environ.get("RANK", "0")) == 0:
        if args.json and folder.finished:
            print(json.dumps(folder.metrics(), indent=2))
        elif folder.finished:
            print("\n".join(run_summary(folder)))
        else:
            print(f"run folder: {paths.portable(out)} (stopped after "
                  f"{len(folder.history())} epochs; run again to continue)")
    return 0
