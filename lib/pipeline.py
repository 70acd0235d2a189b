"""The ``make reproduce`` driver: run a parameter set's job graph with papermill.

``python -m lib reproduce --params <set>`` reads ``params/<set>.yaml``
(:mod:`lib.params`), plans the jobs (:mod:`lib.stages`: one per notebook, one per training
configuration, then the tables), skips every job whose stamp says nothing changed
(:mod:`lib.stamps`), executes the others in order with papermill (kernels run over IPC
sockets where the platform has them, not unencrypted TCP), builds the tables
(:mod:`lib.tables`) and renders the reports (:mod:`lib.render`). Everything lands in the
set's own results folder, ``results/<set>/`` (``--results`` chooses another), which the
notebooks see as ``AIA_RESULTS_DIR``. Progress goes to the log (stderr); the command's
result, one summary line, to stdout.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lib import params as param_sets
from lib import paths, render, stamps, tables
from lib.logs import cli_logging
from lib.params import ParamSet, ParamSetError
from lib.stages import TABLES_JOB, Job, Stage, discover_notebooks, plan

log = logging.getLogger(__name__)


@contextmanager
def pipeline_env(results: Path) -> Iterator[None]:
    """Environment of the notebook kernels while the pipeline runs, restored afterwards:
    ``AIA_RESULTS_DIR`` (the set's results folder), a headless matplotlib backend, and
    progress bars that refresh every few seconds rather than ten times a second."""
    wanted = {"AIA_RESULTS_DIR": str(results)}
    defaults = {"MPLBACKEND": "Agg", "TQDM_MININTERVAL": "5"}
    saved = {k: os.environ.get(k) for k in (*wanted, *defaults)}
    os.environ.update(wanted)
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


def kernel_options() -> dict[str, Any]:
    """papermill/nbclient options for the kernels: IPC transport on POSIX (the kernel would
    otherwise warn that it runs over TCP without encryption, and it would be right)."""
    if os.name != "posix":
        return {}
    from traitlets.config import Config

    return {"config": Config({"KernelManager": {"transport": "ipc"}})}


def execute(job: Job, executed: Path, cwd: Path, timeout: int | None = None) -> None:
    """Run one notebook with papermill into ``executed`` (written only on success; a failed
    copy is kept beside it as ``<name>.failed.ipynb``)."""
    import papermill as pm

    assert job.notebook is not None
    executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = executed.with_name(f".{executed.stem}.running.ipynb")
    failed = executed.with_name(f"{executed.stem}.failed.ipynb")
    failed.unlink(missing_ok=True)
    try:
        pm.execute_notebook(
            str(job.notebook), str(tmp), parameters=job.parameters, kernel_name="python3",
            cwd=str(cwd), progress_bar=sys.stderr.isatty(), execution_timeout=timeout,
            **kernel_options())
    except BaseException:
        if tmp.exists():
            os.replace(tmp, failed)
        raise
    tidy_executed(tmp, executed)
    os.replace(tmp, executed)


def tidy_executed(notebook: Path, final: Path) -> None:
    """Make an executed copy fit to keep: consecutive stream outputs merged and carriage
    returns resolved (a progress bar is stored as its last state, not as every refresh),
    paths under the checkout that outputs print made relative (a library warning names its
    source file), and papermill's record of the input and output paths made portable."""
    import nbformat
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    nb = nbformat.read(notebook, as_version=4)
    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = render.relative_to_repo(output["text"])
            if "traceback" in output:
                output["traceback"] = [render.relative_to_repo(t) for t in output["traceback"]]
            if "text/plain" in output.get("data", {}):
                output["data"]["text/plain"] = render.relative_to_repo(
                    output["data"]["text/plain"])
    record = nb.metadata.get("papermill", {})
    if "input_path" in record:
        record["input_path"] = paths.portable(record["input_path"])
    if "output_path" in record:
        record["output_path"] = paths.portable(final)
    nbformat.write(nb, notebook)


def describe_failure(job: Job, exc: BaseException, failed_copy: Path) -> str:
    """A failing notebook: its name, the failing cell and the error."""
    from papermill.exceptions import PapermillExecutionError

    lines = [f"FAILED: {job.name} ({paths.portable(job.notebook or job.name)})"]
    if isinstance(exc, PapermillExecutionError):
        source = (exc.source or "").strip().splitlines()
        lines.append(f"  cell {exc.cell_index} of the executed copy (In [{exc.exec_count}]):")
        lines += [f"    {s}" for s in source[:8]]
        if len(source) > 8:
            lines.append(f"    ... ({len(source) - 8} more lines)")
        lines.append(f"  error: {exc.ename}: {render.relative_to_repo(str(exc.evalue))}")
    else:
        lines.append(f"  error: {type(exc).__name__}: {render.relative_to_repo(str(exc))}")
    if failed_copy.exists():
        lines.append(f"  executed copy with the error: {paths.portable(failed_copy)}")
    return "\n".join(lines)


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


def _selected(job: Job, selectors: Sequence[str]) -> bool:
    for s in selectors:
        s = s.removesuffix(".ipynb")
        if s in (job.name, job.stem, job.run_name) or job.name.startswith(s + "_") \
                or job.name[:2] == s:
            return True
    return False


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
) -> tuple[int, str]:
    """Run the job graph of parameter set ``params``; returns the exit status (0 ok) and a
    one-line summary. ``prepare`` only draws the set's dataset when it is missing (what
    ``make lab`` needs); ``dry_run`` says what would run, and why, and runs nothing."""
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
    stamp_dir = results / ".stamps"
    lib = stamps.lib_hash()
    ran: list[str] = []
    stale: list[str] = []
    started = time.time()
    with pipeline_env(results):
        for job in jobs:
            if only and not _selected(job, only):
                log.info("not selected (--only): %s", job.name)
                continue
            executed = results / "executed" / f"{job.name}.ipynb" if job.notebook else None
            parts = stamps.components(job, data_dir, stamp_dir, lib)
            reasons = ["--force"] if force else stamps.why_stale(
                job, parts, stamps.read_stamp(stamp_dir, job.name), executed)
            if not reasons:
                log.info("up to date: %s", job.name)
                continue
            stale.append(job.name)
            log.info("%s: %s (%s)", "would run" if dry_run else "running", job.name,
                     "; ".join(reasons))
            if dry_run:
                continue
            t0 = time.time()
            if job.name == TABLES_JOB:
                tables.build_tables(results / "runs", results / "tables", pset.path,
                                    job.parameters["runs"])
            else:
                assert executed is not None
                try:
                    execute(job, executed, folder, timeout)
                except Exception as exc:  # noqa: BLE001 - reported with the cell, then stop
                    failed = executed.with_name(f"{executed.stem}.failed.ipynb")
                    log.error("%s", describe_failure(job, exc, failed))
                    return 1, f"reproduce {pset.name}: {job.name} failed"
            stamps.write_stamp(stamp_dir, job, stamps.components(job, data_dir, stamp_dir, lib),
                               time.time() - t0)
            ran.append(job.name)
            log.info("done: %s (%.1f s)", job.name, time.time() - t0)
    if dry_run:
        return 0, (f"dry run: {len(stale)} of {len(jobs)} job(s) would run"
                   + (f": {', '.join(stale)}" if stale else ""))
    index = render.render_reports(results, [j.name for j in jobs if j.notebook], pset.name,
                                  data_dir)
    return 0, (f"reproduce {pset.name}: {len(ran)} job(s) ran, {len(jobs) - len(ran)} up to "
               f"date or not selected; {time.time() - started:.0f} s; reports in "
               f"{paths.portable(index)}")


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
    parser.add_argument("--timeout", type=int, default=None,
                        help="per-cell timeout in seconds (default none)")
    args = parser.parse_args(argv)
    with cli_logging():
        try:
            code, summary = reproduce(args.params, args.data, args.results, args.notebooks,
                                      args.only, args.force, args.dry_run, args.timeout,
                                      args.prepare)
        except (ParamSetError, tables.TableError) as exc:
            log.error("error: %s", exc)
            return 1
    print(summary)
    return code
