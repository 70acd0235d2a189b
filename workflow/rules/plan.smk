# The plan: the parameter set checked (every value routed to a notebook parameter or to a
# setting of its overrides, lib.pipeline.params.split_values), and the jobs it asks for.
import importlib

import papermill as pm

PSET = load_param_set(config.get("params", "default"))
WHERE = PSET.where
RESULTS = Path(config.get("results") or results_dir(PSET.name)).expanduser().resolve()
DATA = Path(config["data"]).expanduser().resolve() if config.get("data") else \
    PSET.default_data_dir()
DRAWN = DATA == PSET.default_data_dir() and (PSET.synth is not None or PSET.standin is not None)
if not DRAWN and not (DATA / "train.json").is_file():
    fail(f"{paths.portable(DATA)}: no dataset here (train.json missing); " + (
        "run `make corel5k` (or see docs/cluster.md)" if "corel" in DATA.name.lower()
        else "pass DATA=<dataset folder>"))
NOTEBOOKS = Path(config.get("notebooks") or ROOT / "notebooks").resolve()
FOUND = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
for stem in FOUND:
    if stem not in KINDS:
        fail(f"{paths.portable(NOTEBOOKS / stem)}.ipynb: no job declared for this notebook "
             f"(workflow/Snakefile KINDS knows {sorted(KINDS)})")
for stem in PSET.sections:
    if stem not in FOUND:
        print(f"warning: {WHERE}: section {stem!r} has no notebook in "
              f"{paths.portable(NOTEBOOKS)} (skipped)", file=sys.stderr)
DEFAULTS = {s: {k: v["default"] for k, v in pm.inspect_notebook(
    str(NOTEBOOKS / f"{s}.ipynb")).items()} for s in FOUND}
DECLARED = {s: set(DEFAULTS[s]) for s in FOUND}
KIND = {s: KINDS[s] for s in FOUND}
unused = sorted(k for k in PSET.common if not any(
    k in DECLARED[s] and k not in DRIVER_SET.get(KIND[s], ()) for s in FOUND))
if unused and FOUND:
    fail(f"{WHERE}: common parameters {unused} are not parameters of any notebook in "
         f"{paths.portable(NOTEBOOKS)} (that the workflow does not set itself)")


def settings_class(stem):
    if stem not in SETTINGS:
        return None
    where, name = SETTINGS[stem].split(":")
    return getattr(importlib.import_module(where), name)


def values(stem, label, *parts):
    """Notebook parameters of ``stem``: common:, then each part (section, run)."""
    driver = DRIVER_SET.get(KIND[stem], ())
    out = {k: v for k, v in PSET.common.items() if k in DECLARED[stem] and k not in driver}
    for part in parts:
        if "dataset" in part:
            fail(f"{WHERE}: {label}: 'dataset' comes from DATA=..., not from the parameter set")
        split = split_values(part, DECLARED[stem], settings_class(stem), f"{WHERE}: {label}")
        overrides = {**out.get("overrides", {}), **split.pop("overrides", {})}
        out.update(split)
        if overrides:
            out["overrides"] = overrides
    if "dataset" in DECLARED[stem]:
        out["dataset"] = paths.portable(DATA)
    return out


TRAIN = "04_training" in FOUND and bool(PSET.runs)
PARAMS = {}  # executed-notebook name -> its parameters
RUN_GPUS = {}
for stem in FOUND:
    kind, section = KIND[stem], PSET.section(stem)
    if kind == "training":
        for key in ("run_name", "seeds"):
            if key in section:
                fail(f"{WHERE}: {stem}: {key!r} is set by the workflow (runs: and seeds:), "
                     "not in the notebook's section")
        for run, run_values in PSET.runs.items():
            own = {k: v for k, v in run_values.items() if k not in ("seeds", "gpus")}
            base = values(stem, f"run {run!r}", section, own)
            RUN_GPUS[run] = run_values.get("gpus", 1)
            PARAMS[f"{stem}__{run}"] = {**base, "run_name": run, "seeds": PSET.run_seeds(run)}
        continue
    if kind in ("run", "all-runs") and not TRAIN:
        print(f"warning: {WHERE}: no runs to analyse for {stem} (skipped)", file=sys.stderr)
        continue
    p = values(stem, stem, section)
    if kind == "run":
        run = p.setdefault("run_name", PSET.evaluate_run)
        if run not in PSET.runs:
            fail(f"{WHERE}: {stem}: run_name {run!r} is not one of runs: {list(PSET.runs)}")
        seed = p.get("seed", PSET.run_seeds(run)[0])
        if seed not in PSET.run_seeds(run):
            fail(f"{WHERE}: {stem}: seed {seed} is not a seed of run {run!r} "
                 f"({PSET.run_seeds(run)})")
        if "seed" in DECLARED[stem]:
            p["seed"] = seed
        unknown = [r for r in p.get("compare_runs") or [] if r not in PSET.runs]
        if unknown:
            fail(f"{WHERE}: {stem}: compare_runs {unknown} are not runs: {list(PSET.runs)}")
    PARAMS[stem] = p

RUN_FILES = ("config.json", "metrics.json", "thresholds.json", "predictions.csv")
SHARDS = PSET.workflow.get("augment_shards", 1)
try:  # a cluster run gives no total of cores: one thread per kernel unless threads= says
    CORES = workflow.cores if isinstance(workflow.cores, int) else 1
except WorkflowError:
    CORES = 1
THREADS = int(config.get("threads") or 0) or max(1, CORES // min(CORES, 4))
_gpu = (workflow.global_resources or {}).get("gpu")
GPU_COUNT = int(getattr(_gpu, "value", _gpu) or 0)  # --resources gpu=N: slots to hand out


def executed(name):
    return str(RESULTS / "executed" / f"{name}.ipynb")


def run_files(run, seeds=None):
    return [str(RESULTS / "runs" / run / f"seed-{s}" / f)
            for s in (seeds if seeds is not None else PSET.run_seeds(run)) for f in RUN_FILES]


def job_resources(rule, **default):
    """A rule's resources: its defaults, then the set's workflow: resources: (per rule)."""
    return {**default, **PSET.workflow.get("resources", {}).get(rule, {})}


def sources(*entries):
    """The lib/ sources that notebooks or modules import (lib.pipeline.jobs.lib_sources), absolute."""
    return [str(ROOT / f) for f in jobs.lib_sources(*entries)]
