"""The pipeline's stages and its job graph, with declared dependencies.

Every numbered notebook is one stage, declared in :data:`STAGES` by its stem: what kind of
stage it is and, for a notebook with an ``overrides`` parameter, the settings class whose
fields ``overrides`` takes. The kind says what a stage needs and produces:

==================  ==========================================================  ===============
kind                jobs, and what each one produces                            runs after
==================  ==========================================================  ===============
dataset             one job; reads the dataset, writes figures and tables       nothing
augmentation        one job; writes ``<dataset>/train_aug.json`` and the fakes   nothing
training            one job per ``runs:`` entry; trains every seed into          the augmentation
                    ``runs/<run>/seed-<n>/``                                    job, if augmented
run-analysis        one job; shows one seed of one configuration                its training job
                    (``evaluate_run``)
all-runs-analysis   one job; reads every run folder                             every training
                                                                                job
(tables)            built in: the results tables, from every run folder        every training
                                                                                job
==================  ==========================================================  ===============

A numbered notebook without a declared stage is an error that says where to declare it.
The driver sets ``dataset`` (from ``--data``) for every notebook that declares it, and
``run_name`` and ``seeds`` for a training job, ``run_name`` and ``seed`` for a per-run
analysis (a section may choose another ``run_name``/``seed``). :func:`plan` turns a parameter
set and the notebooks into jobs in execution order.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib import paths
from lib.params import ParamSet, ParamSetError, split_values
from lib.runs import SEED_FOLDER, seed_dir  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

KINDS = ("dataset", "augmentation", "training", "run-analysis", "all-runs-analysis")
NOTEBOOK_PATTERN = re.compile(r"^\d\d_.+\.ipynb$")
TABLES_JOB = "tables"
#: the folder of one seed of a training configuration, under ``runs/<run>/``
#: the files of one run folder that analyses and tables read
RUN_FILES = ("config.json", "metrics.json", "thresholds.json", "predictions.csv")


@dataclass(frozen=True)
class Stage:
    """What a notebook is in the pipeline."""

    kind: str
    #: ``module:Class`` of the settings dataclass its ``overrides`` parameter takes
    settings: str | None = None
    about: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"stage kind {self.kind!r} is not one of {KINDS}")

    def settings_class(self) -> type | None:
        if self.settings is None:
            return None
        module, name = self.settings.split(":")
        return getattr(importlib.import_module(module), name)


STAGES: dict[str, Stage] = {
    "01_dataset_statistics": Stage("dataset", about="label statistics and the label graph"),
    "02_label_embeddings": Stage("dataset", about="GloVe label vectors"),
    "03_wgan_augmentation": Stage("augmentation", "lib.wgan:WGANConfig",
                                  "ML-WGAN fakes of the training images"),
    "04_training": Stage("training", "lib.training:TrainConfig",
                         "one training configuration, every seed"),
    "05_evaluation": Stage("run-analysis", about="test metrics of one run"),
    "06_tsne": Stage("run-analysis", about="label vectors before and after the GCN"),
    "07_graph_gain": Stage("all-runs-analysis",
                           about="per-label F1 gain of the GCN over the CNN-only head"),
}


class PlanError(ParamSetError):
    """A parameter set and notebooks that do not make a pipeline; names the file."""


@dataclass
class Job:
    """One unit of the job graph: an executed notebook, or the tables."""

    name: str
    notebook: Path | None
    kind: str
    parameters: dict[str, Any]
    upstream: list[str] = field(default_factory=list)
    reads: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    run_name: str | None = None

    @property
    def stem(self) -> str:
        return self.notebook.stem if self.notebook is not None else self.name


def discover_notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """The numbered notebooks ``NN_name.ipynb`` of a folder, in order."""
    folder = Path(folder) if folder is not None else paths.NOTEBOOKS_DIR
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, str]:
    """Names and default literals of a notebook's ``parameters`` cell (papermill's view)."""
    import papermill as pm

    return {name: info["default"] for name, info in pm.inspect_notebook(str(notebook)).items()}


def run_files(runs_dir: Path, run: str, seeds: Sequence[int]) -> list[Path]:
    return [seed_dir(runs_dir, run, s) / f for s in seeds for f in RUN_FILES]


def stage_of(notebook: Path, stages: Mapping[str, Stage]) -> Stage:
    if notebook.stem not in stages:
        raise PlanError(f"{paths.portable(notebook)}: no stage declared for this notebook; add "
                        f"{notebook.stem!r} to lib.stages.STAGES with one of the kinds {KINDS}")
    return stages[notebook.stem]


#: parameters the driver sets, by stage kind (``dataset`` for every kind)
DRIVER_SET = {"training": ("run_name", "seeds"), "run-analysis": ("run_name", "seed")}
#: parameters a notebook of a kind must declare
REQUIRED = {"training": ("run_name", "seeds"), "run-analysis": ("run_name",)}


def plan(pset: ParamSet, notebooks: Sequence[Path], data_dir: Path, results: Path,
         stages: Mapping[str, Stage] | None = None) -> tuple[list[Job], list[str]]:
    """The jobs of parameter set ``pset`` over ``notebooks``, in execution order, and
    warnings. Every value is checked (a notebook parameter, or a setting of the notebook's
    ``overrides``) before anything runs."""
    stages = STAGES if stages is None else stages
    where = pset.where
    warnings: list[str] = []
    runs_dir = results / "runs"
    dataset = paths.portable(data_dir)
    kinds = {nb.stem: stage_of(nb, stages) for nb in notebooks}
    folder = paths.portable(notebooks[0].parent) if notebooks else "the notebooks folder"
    for stem in pset.sections:
        if stem not in kinds:
            warnings.append(f"{where}: section {stem!r} has no notebook in {folder} (skipped)")
    declared = {nb.stem: set(notebook_parameters(nb)) for nb in notebooks}
    for nb in notebooks:
        stage = kinds[nb.stem]
        lacking = [p for p in REQUIRED.get(stage.kind, ()) if p not in declared[nb.stem]]
        if lacking:
            raise PlanError(f"{paths.portable(nb)}: a {stage.kind} notebook needs the "
                            f"parameters {lacking} in its parameters cell")

    def common_for(nb: Path) -> dict[str, Any]:
        driver = DRIVER_SET.get(kinds[nb.stem].kind, ())
        return {k: v for k, v in pset.common.items()
                if k in declared[nb.stem] and k not in driver}

    used = {k for nb in notebooks for k in common_for(nb)}
    unused = sorted(set(pset.common) - used)
    if unused and notebooks:
        raise PlanError(f"{where}: common parameters {unused} are not parameters of any "
                        f"notebook in {folder} (that the driver does not set itself)")

    def values(nb: Path, label: str, *parts: dict[str, Any]) -> dict[str, Any]:
        """common, then each part (section, run), split into parameters and overrides."""
        stage = kinds[nb.stem]
        settings = stage.settings_class()
        out: dict[str, Any] = dict(common_for(nb))
        for part in parts:
            if "dataset" in part:
                raise PlanError(f"{where}: {label}: 'dataset' comes from --data (DATA=...), "
                                "not from the parameter set")
            split = split_values(part, declared[nb.stem], settings, f"{where}: {label}")
            overrides = {**out.get("overrides", {}), **split.pop("overrides", {})}
            out.update(split)
            if overrides:
                out["overrides"] = overrides
        if "dataset" in declared[nb.stem]:
            out["dataset"] = dataset
        return out

    jobs: list[Job] = []
    augment: Job | None = None
    training: dict[str, Job] = {}
    for nb in notebooks:
        stage = kinds[nb.stem]
        section = pset.section(nb.stem)
        if stage.kind == "training":
            for key in ("run_name", "seeds"):
                if key in section:
                    raise PlanError(f"{where}: {nb.stem}: {key!r} is set by the driver "
                                    "(runs: and seeds:), not in the notebook's section")
            if not pset.runs:
                warnings.append(f"{where}: no runs: for {nb.name} (skipped)")
            for run, run_values in pset.runs.items():
                run_values = {k: v for k, v in run_values.items() if k != "seeds"}
                params = values(nb, f"run {run!r}", section, run_values)
                seeds = pset.run_seeds(run)
                params.update(run_name=run, seeds=seeds)
                augmented = bool(params.get("overrides", {}).get("augmented", False))
                job = Job(f"{nb.stem}__{run}", nb, stage.kind, params,
                          upstream=[augment.name] if augmented and augment else [],
                          reads=[data_dir / "train_aug.json"] if augmented else [],
                          outputs=[seed_dir(runs_dir, run, s) / f for s in seeds
                                   for f in ("config.json", "metrics.json")],
                          run_name=run)
                jobs.append(job)
                training[run] = job
            continue
        params = values(nb, nb.stem, section)
        job = Job(nb.stem, nb, stage.kind, params)
        if stage.kind in ("run-analysis", "all-runs-analysis") and not pset.runs:
            warnings.append(f"{where}: no runs: for {nb.name} to analyse (skipped)")
            continue
        if stage.kind in ("run-analysis", "all-runs-analysis") and not training:
            raise PlanError(f"{paths.portable(nb)}: a {stage.kind} notebook must come after "
                            "the training notebook (number it higher)")
        if stage.kind == "run-analysis":
            run = params.get("run_name", pset.evaluate_run)
            if run not in pset.runs:
                raise PlanError(f"{where}: {nb.stem}: run_name {run!r} is not one of runs: "
                                f"{list(pset.runs)}")
            seeds = pset.run_seeds(run)
            seed = params.get("seed", seeds[0])
            if seed not in seeds:
                raise PlanError(f"{where}: {nb.stem}: seed {seed} is not a seed of run "
                                f"{run!r} ({seeds})")
            job.parameters["run_name"] = run
            if "seed" in declared[nb.stem]:
                job.parameters["seed"] = seed
            # ``compare_runs``: other configurations the notebook shows beside its run
            others = list(params.get("compare_runs") or [])
            unknown = [r for r in others if r not in pset.runs]
            if unknown:
                raise PlanError(f"{where}: {nb.stem}: compare_runs {unknown} are not runs: "
                                f"{list(pset.runs)}")
            job.upstream = [training[r].name for r in [run, *others] if r in training]
            job.reads = run_files(runs_dir, run, [seed])
            job.reads += [f for r in others for f in run_files(runs_dir, r, pset.run_seeds(r))]
            job.run_name = run
        elif stage.kind == "all-runs-analysis":
            job.upstream = [j.name for j in training.values()]
            job.reads = [f for r in training for f in run_files(runs_dir, r, pset.run_seeds(r))]
        elif stage.kind == "augmentation":
            augment = job
            job.outputs = [data_dir / "train_aug.json"]
        jobs.append(job)
    if not training:
        if pset.runs:
            warnings.append(f"{where}: runs: given but no training notebook in {folder} "
                            "(no training, no tables)")
        return jobs, warnings
    jobs.append(Job(
        TABLES_JOB, None, TABLES_JOB, {"runs": list(training)},
        upstream=[j.name for j in training.values()],
        reads=[f for r in training for f in run_files(runs_dir, r, pset.run_seeds(r))],
        outputs=[results / "tables" / "main.csv", results / "tables" / "ablations.csv"],
    ))
    return jobs, warnings
