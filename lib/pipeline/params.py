"""Parameter sets: ``params/<set>.yaml``, what ``make reproduce PARAMS=<set>`` runs.

A parameter set is a mapping with these top-level keys (docs/CONTRACTS.md, "Notebooks and
parameter sets"):

- ``data:`` ``name:`` the dataset folder under the data root; ``synth:`` options of
  :func:`lib.data.drawn.synth.generate` to draw it when missing, or ``standin:`` options of
  :func:`lib.data.drawn.standin.generate_standin` (absent: never drawn);
- ``seeds:`` the seeds every training configuration is trained with (default ``[0]``);
- ``common:`` parameters given to every notebook that declares them;
- one mapping per notebook stem (``03_wgan_augmentation:``): that notebook's values;
- ``runs:`` the training configurations, name -> values for the training notebook
  (a run may set its own ``seeds``);
- ``evaluate_run:`` the configuration the per-run analysis notebooks show;
- ``workflow:`` how the jobs run (docs/pipeline.md): ``augment_shards:`` the number of
  ML-WGAN shard jobs (default 1), ``resources:`` per rule (``train``, ``augment``,
  ``notebook``) Snakemake resources such as ``slurm_partition``, ``mem_mb``, ``runtime``,
  ``cpus_per_task``, ``gpu``. A run may set ``gpus:`` (GPUs of one node it trains on,
  through torchrun; default 1).

A value whose name is a parameter of its notebook goes to that parameter; any other name
goes into the notebook's ``overrides`` mapping, when it has one, and must then be a field of
the notebook's settings class (workflow/Snakefile SETTINGS): anything else is an error
naming the yaml file and the key, raised before anything runs (:func:`split_values`).
Each set writes to its own results folder, :func:`results_dir` (``results/<set>/``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lib.core import paths
from lib.core.config import ConfigError, coerce
from lib.core.errors import AIAError

TOP_KEYS = ("data", "seeds", "common", "runs", "evaluate_run", "workflow")
#: keys of ``workflow:`` (how the jobs run, not what they compute)
WORKFLOW_KEYS = ("augment_shards", "resources")
NOTEBOOK_KEY = re.compile(r"^\d\d_")
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
DEFAULT_SEEDS = (0,)


class ParamSetError(AIAError):
    """A parameter set that is missing or malformed; names the yaml file and the key."""


@dataclass
class ParamSet:
    """A parameter set as read from its yaml file."""

    name: str
    path: Path
    data_name: str = paths.DEFAULT_DATASET
    synth: dict[str, Any] | None = None
    standin: dict[str, Any] | None = None
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    common: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluate_run: str | None = None
    workflow: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return paths.portable(self.path)

    def section(self, stem: str) -> dict[str, Any]:
        return dict(self.sections.get(stem) or {})

    def run_seeds(self, run: str) -> list[int]:
        """The seeds of configuration ``run`` (its own ``seeds:``, else the set's)."""
        own = self.runs.get(run, {}).get("seeds")
        return list(own) if own is not None else list(self.seeds)

    def default_data_dir(self) -> Path:
        return paths.dataset_dir(self.data_name)


def results_dir(name_or_path: str | os.PathLike) -> Path:
    """The results folder of a parameter set: ``results/<set name>/``
    (:func:`lib.core.paths.set_results_dir`)."""
    return paths.set_results_dir(Path(str(name_or_path)).stem)


def _seeds(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ParamSetError(f"{where}: seeds must be a non-empty list of integers, got {value!r}")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in value):
        raise ParamSetError(f"{where}: seeds must be integers >= 0, got {value!r}")
    if len(set(value)) != len(value):
        raise ParamSetError(f"{where}: seeds {value!r} repeat a seed")
    return list(value)


def load_param_set(name_or_path: str | os.PathLike) -> ParamSet:
    """Read ``params/<name>.yaml`` (or a yaml path) and check its shape."""

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = paths.PARAMS_DIR / f"{name_or_path}.yaml"
    where = paths.portable(path)
    if not path.is_file():
        known = sorted(p.stem for p in paths.PARAMS_DIR.glob("*.yaml"))
        raise ParamSetError(f"{where}: no such parameter set (known: {known})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamSetError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ParamSetError(f"{where}: expected a mapping at the top level")
    pset = ParamSet(path.stem, path)
    for key, value in raw.items():
        key = str(key)
        if key in TOP_KEYS:
            continue
        if not NOTEBOOK_KEY.match(key):
            raise ParamSetError(f"{where}: unknown key {key!r} (expected {list(TOP_KEYS)} or a "
                                "notebook stem like 01_dataset_statistics)")
        if value is not None and not isinstance(value, dict):
            raise ParamSetError(f"{where}: section {key!r} must be a mapping")
        pset.sections[key] = dict(value or {})
    data = raw.get("data") or {}
    if not isinstance(data, dict) or set(data) - {"name", "synth", "standin"} or \
            {"synth", "standin"} <= set(data):
        raise ParamSetError(f"{where}: data: must be a mapping with name: and one of synth: "
                            f"or standin:, got {data!r}")
    pset.data_name = str(data.get("name", paths.DEFAULT_DATASET))
    if "synth" in data:
        if data["synth"] is not None and not isinstance(data["synth"], dict):
            raise ParamSetError(f"{where}: data: synth: must be a mapping of "
                                "lib.data.drawn.synth.generate options")
        pset.synth = dict(data["synth"] or {})
    if "standin" in data:
        if not isinstance(data["standin"], dict) or "annotations" not in data["standin"]:
            raise ParamSetError(f"{where}: data: standin: must be a mapping with annotations: "
                                "(and seed:), options of lib.data.drawn.standin.generate_standin")
        pset.standin = dict(data["standin"])
    if "seeds" in raw:
        pset.seeds = _seeds(raw["seeds"], f"{where}: seeds")
    common = raw.get("common") or {}
    if not isinstance(common, dict):
        raise ParamSetError(f"{where}: common: must be a mapping")
    pset.common = dict(common)
    runs = raw.get("runs") or {}
    if not isinstance(runs, dict):
        raise ParamSetError(f"{where}: runs: must map run names to training-notebook values")
    for run, values in runs.items():
        if values is not None and not isinstance(values, dict):
            raise ParamSetError(f"{where}: run {run!r} must be a mapping")
        if not RUN_NAME.fullmatch(str(run)):
            raise ParamSetError(f"{where}: run name {run!r} is not a valid folder name")
        values = dict(values or {})
        if "seeds" in values:
            values["seeds"] = _seeds(values["seeds"], f"{where}: run {run!r}: seeds")
        gpus = values.get("gpus", 1)
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
            raise ParamSetError(f"{where}: run {run!r}: gpus must be an integer >= 1, "
                                f"got {gpus!r}")
        pset.runs[str(run)] = values
    pset.workflow = _workflow(raw.get("workflow"), where)
    evaluate = raw.get("evaluate_run")
    if evaluate is not None and evaluate not in pset.runs:
        raise ParamSetError(f"{where}: evaluate_run {evaluate!r} is not one of runs: "
                            f"{list(pset.runs)}")
    pset.evaluate_run = evaluate if evaluate is not None else next(iter(pset.runs), None)
    return pset


def _workflow(value: Any, where: str) -> dict[str, Any]:
    """``workflow:`` checked: known keys, a shard count >= 1, resources by rule."""
    value = {} if value is None else value
    if not isinstance(value, dict) or set(value) - set(WORKFLOW_KEYS):
        raise ParamSetError(f"{where}: workflow: must be a mapping with keys among "
                            f"{list(WORKFLOW_KEYS)}, got {value!r}")
    shards = value.get("augment_shards", 1)
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ParamSetError(f"{where}: workflow: augment_shards must be an integer >= 1, "
                            f"got {shards!r}")
    resources = value.get("resources") or {}
    rules = ("train", "augment", "notebook", "dataset", "tables", "reports")
    if not isinstance(resources, dict) or any(
            r not in rules or not isinstance(v, dict) for r, v in resources.items()):
        raise ParamSetError(f"{where}: workflow: resources: must map rules {list(rules)} to "
                            f"mappings of Snakemake resources, got {resources!r}")
    return dict(value)


def check_settings(values: dict[str, Any], settings: type, where: str) -> dict[str, Any]:
    """``values`` checked against the fields of dataclass ``settings`` (names, then types
    through :func:`lib.core.config.coerce`); an unknown name is an error naming ``where``."""
    known = {f.name for f in dataclasses.fields(settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ParamSetError(f"{where}: {unknown} are neither parameters of the notebook nor "
                            f"{settings.__name__} settings (known: {sorted(known)})")
    for key, value in values.items():
        try:
            coerce(settings, key, value)
        except ConfigError as exc:
            raise ParamSetError(f"{where}: {exc}") from None
    return values


def split_values(values: dict[str, Any], declared: set[str], settings: type | None,
                 where: str) -> dict[str, Any]:
    """Notebook parameters from ``values``: names the notebook declares pass as they are;
    the others go into its ``overrides`` parameter (merged with an explicit ``overrides:``),
    checked against ``settings``. Without an ``overrides`` parameter they are an error."""
    params = {k: v for k, v in values.items() if k in declared}
    rest = {k: v for k, v in values.items() if k not in declared}
    if rest and ("overrides" not in declared or settings is None):
        raise ParamSetError(f"{where}: {sorted(rest)} not in the notebook's parameters cell "
                            f"(it has {sorted(declared)})")
    explicit = params.get("overrides") or {}
    if not isinstance(explicit, dict):
        raise ParamSetError(f"{where}: overrides: must be a mapping, got {explicit!r}")
    if not rest and not explicit:
        return params
    both = sorted(set(explicit) & set(rest))
    if both:
        raise ParamSetError(f"{where}: {both} given both directly and under overrides:")
    merged = {**explicit, **rest}
    params["overrides"] = check_settings(merged, settings, where) if settings else merged
    return params
