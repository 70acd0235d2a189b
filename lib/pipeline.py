"""The ``make reproduce`` driver: run a parameter set's job graph with papermill.

``python -m lib reproduce --params <set>`` reads ``params/<set>.yaml``
(:mod:`lib.params`), plans the jobs (:mod:`lib.stages`: one per notebook, one per training
configuration, then the tables), skips every job whose stamp says nothing changed
(:mod:`lib.stamps`), executes the others with papermill in dependency order, several at once
on a multi-core CPU (:mod:`lib.scheduler`), builds the tables
(:mod:`lib.tables`) and renders the reports (:mod:`lib.render`). Everything lands in the
set's own results folder, ``results/<set>/`` (``--results`` chooses another), which the
notebooks see as ``AIA_RESULTS_DIR``. Progress goes to the log (stderr); the command's
result, one summary line, to stdout.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from lib import params as param_sets
from lib import paths, render, scheduler, tables
from lib.logs import cli_logging
from lib.params import ParamSet, ParamSetError
from lib.stages import Stage, discover_notebooks, plan

log = logging.getLogger(__name__)


@contextmanager
def pipeline_env(results: Path, threads: int | None = None) -> Iterator[None]:
    """Environment of the notebook kernels while the pipeline runs, restored afterwards:
    ``AIA_RESULTS_DIR`` (the set's results folder), no ``MPLBACKEND`` (the kernel's inline
    backend is headless and keeps every figure in the executed copy and its report; ``Agg``
    would drop them), progress bars that refresh every few seconds rather than ten times a
    second, and ``threads`` CPU threads per kernel when several run at once (a value the user set in
    ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` wins)."""
    wanted = {"AIA_RESULTS_DIR": str(results)}
    defaults = {"TQDM_MININTERVAL": "5"}
    if threads is not None:
        defaults.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    saved = {k: os.environ.get(k) for k in (*wanted, *defaults, "MPLBACKEND")}
    os.environ.update(wanted)
    os.environ.pop("MPLBACKEND", None)
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ensure_dataset(data_dir: Path, pset: ParamSet, default: bool) -> None:
    """Draw the set's own data folder when it is missing and the set says how (the embedded
    scenes, or Corel-shaped stand-in images); any other missing folder is an error saying what
    to do."""
    if (data_dir / "train.json").is_file():
        return
    if default and pset.synth is not None:
        from lib import synth

        log.info("drawing the embedded dataset into %s (%s)", paths.portable(data_dir),
                 pset.synth or "defaults")
        synth.generate(data_dir, **pset.synth)
        return
    if default and pset.standin is not None:
        from lib import standin

        log.info("drawing stand-in images into %s (%s)", paths.portable(data_dir), pset.standin)
        options = dict(pset.standin)
        standin.generate_standin(options.pop("annotations"), data_dir, **options)
        return
    hint = ("run `make corel5k` (or see the README, 'Corel-5k')"
            if "corel" in data_dir.name.lower() else "pass DATA=<dataset folder>")
    raise ParamSetError(f"{paths.portable(data_dir)}: no dataset here (train.json missing); "
                        f"{hint}")


def reproduce(
    params: str | os.PathLike = "default",
    data: str | os.PathLike | None = None,
    results: str | os.PathLike | None = None,
    notebooks_dir: str | os.PathLike | None = None,
    only: Sequence[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    timeout: int | None = None,
    prepare: bool = False,
    stages: Mapping[str, Stage] | None = None,
    jobs_at_once: int | str | None = None,
) -> tuple[int, str]:
    """Run the job graph of parameter set ``params``; returns the exit status (0 ok) and a
    one-line summary. ``prepare`` only draws the set's dataset when it is missing (what
    ``make lab`` needs); ``dry_run`` says what would run, and why, and runs nothing;
    ``jobs_at_once``: notebooks run at once (:func:`lib.scheduler.resolve_jobs`, default
    auto)."""
    pset = param_sets.load_param_set(params)
    results = (Path(results) if results is not None else param_sets.results_dir(pset.name))
    results = results.expanduser().resolve()
    data_dir = (pset.default_data_dir() if data is None else
                Path(data).expanduser().resolve())
    is_default = data_dir == pset.default_data_dir()
    if prepare:
        ensure_dataset(data_dir, pset, is_default)
        return 0, f"dataset ready: {paths.portable(data_dir)}"
    folder = Path(notebooks_dir) if notebooks_dir is not None else paths.NOTEBOOKS_DIR
    notebooks = discover_notebooks(folder)
    if not notebooks:
        log.warning("no numbered notebooks in %s", paths.portable(folder))
    jobs, warnings = plan(pset, notebooks, data_dir, results, stages)
    for w in warnings:
        log.warning("%s", w)
    log.info("parameter set %s (%s); dataset %s; results %s; %d jobs", pset.name, pset.where,
             paths.portable(data_dir), paths.portable(results), len(jobs))
    if not dry_run:
        ensure_dataset(data_dir, pset, is_default)
    workers = 1 if dry_run else scheduler.resolve_jobs(jobs_at_once)
    graph = scheduler.JobGraph(jobs, pset=pset, data_dir=data_dir, results=results,
                               notebooks=folder, only=only, force=force, dry_run=dry_run,
                               timeout=timeout, workers=workers)
    started = time.time()
    with pipeline_env(results, scheduler.threads_per_job(workers)):
        if workers > 1:
            log.info("%d notebooks at once, %s CPU thread(s) each", workers,
                     os.environ.get("OMP_NUM_THREADS", "default"))
        failed = graph.run()
    ran, stale = graph.ran, graph.stale
    if failed:
        return 1, f"reproduce {pset.name}: {', '.join(failed)} failed"
    if dry_run:
        return 0, (f"dry run: {len(stale)} of {len(jobs)} job(s) would run"
                   + (f": {', '.join(stale)}" if stale else ""))
    index = render.render_reports(results, [j.name for j in jobs if j.notebook], pset.name,
                                  data_dir)
    return 0, (f"reproduce {pset.name}: {len(ran)} job(s) ran, {len(jobs) - len(ran)} up to "
               f"date or not selected; {time.time() - started:.0f} s; reports in "
               f"{paths.portable(index)}")


def _jobs_option(value: str) -> int | str:
    """``--jobs``: ``auto`` or a whole number of at least 1 (argparse's error otherwise)."""
    if value == "auto":
        return value
    try:
        return scheduler.resolve_jobs(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def reproduce_main(argv: list[str]) -> int:
    """``python -m lib reproduce``: run every notebook of a parameter set with papermill."""
    parser = argparse.ArgumentParser(
        prog="python -m lib reproduce",
        description="Run notebooks/NN_*.ipynb in order with papermill (parameters from "
                    "params/<set>.yaml), then the tables and the HTML reports, into "
                    "results/<set>/. Jobs whose inputs did not change are skipped and "
                    "reported as 'up to date'.")
    parser.add_argument("--params", default="default", help="parameter set name or YAML path")
    parser.add_argument("--data", default=None,
                        help="dataset folder (default: the set's data: name, drawn if missing)")
    parser.add_argument("--results", default=None,
                        help="results folder (default results/<set>/)")
    parser.add_argument("--notebooks", default=None, help="notebooks folder (default notebooks/)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NOTEBOOK",
                        help="run only these jobs (notebook stem, number like 04, run name)")
    parser.add_argument("--force", action="store_true", help="rerun even up-to-date jobs")
    parser.add_argument("--dry-run", action="store_true",
                        help="say what would run and why, run nothing")
    parser.add_argument("--prepare", action="store_true",
                        help="only draw the set's dataset when it is missing (for make lab)")
    parser.add_argument("--jobs", default="auto", metavar="N", type=_jobs_option,
                        help="notebooks run at once: a number, or auto (default: 1 with a "
                             "GPU, else one per core, at most "
                             f"{scheduler.MAX_AUTO_JOBS}, memory permitting)")
    parser.add_argument("--timeout", type=int, default=None,
                        help="per-cell timeout in seconds (default none)")
    args = parser.parse_args(argv)
    with cli_logging():
        try:
            code, summary = reproduce(args.params, args.data, args.results, args.notebooks,
                                      args.only, args.force, args.dry_run, args.timeout,
                                      args.prepare, jobs_at_once=args.jobs)
        except (ParamSetError, tables.TableError) as exc:
            log.error("error: %s", exc)
            return 1
    print(summary)
    return code
