"""Executing the job graph: papermill runs of the notebooks, in dependency order, several
at once where the machine has the cores for it.

:class:`JobGraph` takes the planned jobs (:mod:`lib.stages`) and runs each one whose stamp
says it is stale (:mod:`lib.stamps`) as soon as the jobs it depends on (``Job.upstream``)
have finished, in plan order; the training configurations, which depend on nothing but the
augmentation, run side by side. How many notebooks run at once is ``--jobs``: by default one
where a GPU trains (jobs would share it) and, on CPU, one per core (at most
:data:`MAX_AUTO_JOBS`, and at most one per :data:`JOB_MEMORY` of available memory). Several
kernels at once get ``OMP_NUM_THREADS = cores // jobs`` each, so that they do not fight over
the cores: small convolutions gain more from a core each than from two threads in one
process (measured in results/benchmarks.md). The thread count changes float summation order,
so the numbers of a CPU run depend on it within the seed spread, as they always depended on
the machine's core count; each run folder records its ``cpu_threads``.

The first failure stops new jobs from starting; the ones already running finish (and are
stamped), then the driver reports every failure with its cell. Ctrl-C interrupts every
running kernel (they run in their own sessions, out of reach of the terminal's Ctrl-C).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from lib import paths, render, stamps, tables
from lib.params import ParamSet
from lib.stages import TABLES_JOB, Job

log = logging.getLogger(__name__)

#: most notebooks run at once when the count is chosen automatically (``--jobs auto``)
MAX_AUTO_JOBS = 4
#: memory set aside per notebook running at once (a training kernel of the embedded default
#: peaks at about 1.6 GB; results/benchmarks.md)
JOB_MEMORY = 3 * 1024**3


def cpu_count() -> int:
    """Cores this process may use (its affinity, not the machine's total)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux ``MemAvailable``), None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cuda_trains() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_jobs(jobs: int | str | None) -> int:
    """The number of notebooks run at once: ``jobs`` itself when it is a number, else
    (``None`` or ``"auto"``) one where CUDA is available, else one per core, at most
    :data:`MAX_AUTO_JOBS` and at most one per :data:`JOB_MEMORY` of available memory."""
    if jobs not in (None, "auto"):
        try:
            count = int(jobs)
        except (TypeError, ValueError):
            count = 0
        if count < 1 or str(count) != str(jobs).strip():
            raise ValueError(f"--jobs must be a whole number of at least 1, or auto; "
                             f"got {jobs!r}")
        return count
    if _cuda_trains():
        return 1
    count = min(cpu_count(), MAX_AUTO_JOBS)
    memory = available_memory()
    if memory is not None:
        count = min(count, memory // JOB_MEMORY)
    return max(1, count)


def threads_per_job(workers: int) -> int | None:
    """CPU threads for each kernel when ``workers`` run at once (None: one at a time, the
    libraries' own default)."""
    return None if workers <= 1 else max(1, cpu_count() // workers)


# ------------------------------------------------------------------ kernels
_KERNELS: weakref.WeakSet = weakref.WeakSet()
_KERNELS_LOCK = threading.Lock()
_MANAGER_CLASS: type | None = None
_IPC_FOLDER: str | None = None


def _ipc_folder() -> str:
    """A private temporary folder for this process's kernel sockets, removed at exit."""
    global _IPC_FOLDER
    with _KERNELS_LOCK:
        if _IPC_FOLDER is None:
            _IPC_FOLDER = tempfile.mkdtemp(prefix="aia-kernels-")
            atexit.register(shutil.rmtree, _IPC_FOLDER, True)
    return _IPC_FOLDER


def tracked_manager_class() -> type:
    """nbclient's kernel manager, remembered while it lives, so that :func:`interrupt_kernels`
    can reach the kernels of notebooks that run in worker threads."""
    global _MANAGER_CLASS
    if _MANAGER_CLASS is None:
        from jupyter_client.manager import AsyncKernelManager

        class TrackedKernelManager(AsyncKernelManager):
            def __init__(self, **kw: Any) -> None:
                super().__init__(**kw)
                if self.transport == "ipc":  # jupyter's default, "kernel-ipc" in the working
                    # folder, is shared by every kernel of this process: give each its own
                    self.ip = os.path.join(_ipc_folder(), f"k{uuid.uuid4().hex[:12]}")

            async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
                await super().start_kernel(**kw)
                with _KERNELS_LOCK:
                    _KERNELS.add(self)

        _MANAGER_CLASS = TrackedKernelManager
    return _MANAGER_CLASS


def interrupt_kernels() -> int:
    """SIGINT to every live kernel this process started (each runs in its own session:
    the signal goes to its process group); returns how many were signalled."""
    with _KERNELS_LOCK:
        managers = list(_KERNELS)
    sent = 0
    for km in managers:
        provisioner = getattr(km, "provisioner", None)
        pid = getattr(provisioner, "pid", None)
        if pid and km.has_kernel:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGINT)
                sent += 1
    return sent


def kernel_options() -> dict[str, Any]:
    """papermill/nbclient options for the kernels: IPC transport on POSIX (the kernel would
    otherwise warn that it runs over TCP without encryption, and it would be right), and the
    tracked kernel manager."""
    from traitlets.config import Config

    config: dict[str, Any] = {"NotebookClient": {"kernel_manager_class": tracked_manager_class()}}
    if os.name == "posix":
        config["KernelManager"] = {"transport": "ipc"}
    return {"config": Config(config)}


def execute(job: Job, executed: Path, cwd: Path, timeout: int | None = None,
            progress: bool = False) -> None:
    """Run one notebook with papermill into ``executed`` (written only on success; a failed
    copy is kept beside it as ``<name>.failed.ipynb``); ``progress``: papermill's cell bar."""
    import papermill as pm

    assert job.notebook is not None
    executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = executed.with_name(f".{executed.stem}.running.ipynb")
    failed = executed.with_name(f"{executed.stem}.failed.ipynb")
    failed.unlink(missing_ok=True)
    try:
        pm.execute_notebook(
            str(job.notebook), str(tmp), parameters=job.parameters, kernel_name="python3",
            cwd=str(cwd), progress_bar=progress, execution_timeout=timeout,
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


def selected(job: Job, selectors: Sequence[str]) -> bool:
    """Whether ``--only`` selectors (notebook stem, number like 04, run name) name a job."""
    for s in selectors:
        s = s.removesuffix(".ipynb")
        if s in (job.name, job.stem, job.run_name) or job.name.startswith(s + "_") \
                or job.name[:2] == s:
            return True
    return False


class JobGraph:
    """Runs planned jobs in dependency order, ``workers`` notebooks at once; see the module
    docstring. :meth:`run` returns the names of the jobs that failed (empty: all went well);
    ``ran`` and ``stale`` say what ran (or, in a dry run, would run)."""

    def __init__(self, jobs: Sequence[Job], *, pset: ParamSet, data_dir: Path, results: Path,
                 notebooks: Path, only: Sequence[str] | None = None, force: bool = False,
                 dry_run: bool = False, timeout: int | None = None, workers: int = 1):
        self.jobs, self.pset, self.data_dir, self.results = list(jobs), pset, data_dir, results
        self.notebooks, self.only, self.force, self.dry_run = notebooks, only, force, dry_run
        self.timeout, self.workers = timeout, max(1, workers)
        self.stamp_dir = results / ".stamps"
        self.lib = stamps.lib_hash()
        self.ran: list[str] = []
        self.stale: list[str] = []
        self.failed: list[str] = []

    def executed(self, job: Job) -> Path | None:
        return self.results / "executed" / f"{job.name}.ipynb" if job.notebook else None

    def reasons(self, job: Job) -> list[str]:
        """Why ``job`` must run (empty: it is up to date); read once its upstream finished."""
        if self.force:
            return ["--force"]
        parts = stamps.components(job, self.data_dir, self.stamp_dir, self.lib)
        return stamps.why_stale(job, parts, stamps.read_stamp(self.stamp_dir, job.name),
                                self.executed(job))

    def work(self, job: Job) -> float:
        """Run one job (a notebook, or the tables); returns its seconds."""
        t0 = time.time()
        if job.name == TABLES_JOB:
            tables.build_tables(self.results / "runs", self.results / "tables", self.pset.path,
                                job.parameters["runs"])
        else:
            executed = self.executed(job)
            assert executed is not None
            execute(job, executed, self.notebooks, self.timeout,
                    progress=sys.stderr.isatty() and self.workers == 1)
        return time.time() - t0

    def finished(self, job: Job, outcome: float | BaseException) -> None:
        """Stamp a job that ran, or report a notebook that failed."""
        if isinstance(outcome, BaseException):
            executed = self.executed(job)
            assert executed is not None
            failed = executed.with_name(f"{executed.stem}.failed.ipynb")
            log.error("%s", describe_failure(job, outcome, failed))
            self.failed.append(job.name)
            return
        stamps.write_stamp(self.stamp_dir, job, stamps.components(
            job, self.data_dir, self.stamp_dir, self.lib), outcome)
        self.ran.append(job.name)
        log.info("done: %s (%.1f s)", job.name, outcome)

    def _attempt(self, job: Job) -> float | BaseException:
        """A notebook job's seconds, or the exception it failed with."""
        try:
            return self.work(job)
        except Exception as exc:  # noqa: BLE001 - reported with the cell by finished()
            return exc

    def run(self) -> list[str]:
        names = {j.name for j in self.jobs}
        pending = list(self.jobs)
        done: set[str] = set()
        running: dict[Future, Job] = {}
        pool = ThreadPoolExecutor(self.workers, "job") if self.workers > 1 else None
        try:
            while pending or running:
                for job in list(pending):
                    if self.failed or (pool is not None and len(running) >= self.workers):
                        break
                    if not set(job.upstream) & names <= done:
                        continue
                    pending.remove(job)
                    if self.only and not selected(job, self.only):
                        log.info("not selected (--only): %s", job.name)
                        done.add(job.name)
                        continue
                    reasons = self.reasons(job)
                    if not reasons:
                        log.info("up to date: %s", job.name)
                        done.add(job.name)
                        continue
                    self.stale.append(job.name)
                    log.info("%s: %s (%s)", "would run" if self.dry_run else "running",
                             job.name, "; ".join(reasons))
                    if self.dry_run:
                        done.add(job.name)
                    elif job.notebook is None:  # the tables: quick, here; a TableError
                        self.finished(job, self.work(job))  # ends the run with its message
                        done.add(job.name)
                    elif pool is None:
                        self.finished(job, self._attempt(job))
                        done.add(job.name)
                    else:
                        running[pool.submit(self._attempt, job)] = job
                if self.failed and not running:
                    break
                if running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        job = running.pop(future)
                        self.finished(job, future.result())
                        done.add(job.name)
                elif pending and not self.failed:  # pragma: no cover - plan() orders jobs
                    raise RuntimeError(f"jobs wait on unknown upstream: "
                                       f"{[j.name for j in pending]}")
        except KeyboardInterrupt:
            if running:
                log.warning("interrupted: stopping %d running notebook(s)", len(running))
            while any(not f.done() for f in running):  # a kernel may still be starting
                interrupt_kernels()
                wait(running, timeout=2)
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        return self.failed


__all__ = ["JobGraph", "execute", "interrupt_kernels", "kernel_options", "resolve_jobs",
           "selected", "threads_per_job"]
