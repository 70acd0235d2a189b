"""The jobs of the Snakemake workflow (``workflow/Snakefile``): one process per job.

``python -m lib.pipeline.jobs notebook NB OUT --parameters JSON`` runs one notebook with papermill
into its executed copy (written only on success; a failing run keeps its executed copy as
``<name>.failed.ipynb`` and the error names the notebook and the cell);
``python -m lib.pipeline.jobs dataset`` draws a parameter set's dataset; ``augment`` runs one
shard of
the ML-WGAN augmentation; ``train`` trains one (configuration, seed) as notebook 04 would
(through ``torchrun`` with ``--gpus K > 1``), and notebook 04 then shows the configuration's
seeds; ``tables`` builds the results tables; ``reports`` renders the HTML reports.

Every job takes ``--gpus K`` GPUs out of ``--gpu-count N`` of the machine: it holds K slot
locks ``<results>/.gpus/gpu-<i>.lock`` for its lifetime and sets ``CUDA_VISIBLE_DEVICES``
(:func:`claim_gpus`); under SLURM, which sets ``CUDA_VISIBLE_DEVICES`` itself, nothing is
claimed. :func:`lib_sources` gives the ``lib/`` sources a notebook or module imports, which
the Snakefile declares as inputs so that an edited source reruns exactly the jobs that
import it (directly or through other ``lib`` modules).
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from lib.core import config as config_lib
from lib.core import paths
from lib.core.fileio import atomic_write_json
from lib.data.drawn import standin, synth
from lib.pipeline.params import load_param_set

LIB = paths.ROOT / "lib"


def module_file(name: str) -> Path | None:
    """The source of ``lib.x.y`` (module or package), None outside ``lib``."""
    parts = name.split(".")
    if parts[0] != "lib":
        return None
    base = LIB.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(source: str, package: str) -> set[str]:
    """Modules named by the import statements of ``source`` (``from lib import x`` gives
    ``lib.x`` when that is a module, else ``lib``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}"))
    return out


def lib_sources(*entries: str | os.PathLike) -> list[str]:
    """The ``lib/`` sources that notebooks or modules (``lib.x``) import, transitively, with
    every package ``__init__`` on the way; repository-relative, sorted."""
    pending: list[tuple[str, str]] = []
    for entry in entries:
        if str(entry).endswith(".ipynb"):
            cells = json.loads(Path(entry).read_text(encoding="utf-8"))["cells"]
            code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
            code = "\n".join(line for line in code.splitlines()
                             if not line.lstrip().startswith(("%", "!")))
            pending += [(m, "") for m in _imports(code, "")]
        else:
            pending.append((str(entry), ""))
    seen: set[Path] = set()
    while pending:
        name, _ = pending.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # lib, lib.plots, lib.plots.dataset
            f = module_file(".".join(parts[:i]))
            if f is None or f in seen:
                continue
            seen.add(f)
            package = ".".join(parts[:i]) if f.name == "__init__.py" else ".".join(parts[:i - 1])
            pending += [(m, "") for m in _imports(f.read_text(encoding="utf-8"), package)]
    return sorted(f.relative_to(paths.ROOT).as_posix() for f in seen)


# ------------------------------------------------------------------ GPUs
def claim_gpus(count: int, total: int, lock_dir: Path) -> list[int]:
    """Take ``count`` free GPU slots of ``total`` (non-blocking ``flock`` on one lock file
    each, released when this process ends) and set ``CUDA_VISIBLE_DEVICES`` to them. Nothing
    to claim when ``count`` is 0 or the variable is already set (SLURM's allocation)."""
    if count <= 0 or total <= 0 or "CUDA_VISIBLE_DEVICES" in os.environ:
        return []
    if count > total:
        raise SystemExit(f"error: this job needs {count} GPU(s); --resources gpu={total}")
    lock_dir.mkdir(parents=True, exist_ok=True)
    taken: list[int] = []
    for i in range(total):
        handle = open(lock_dir / f"gpu-{i}.lock", "w")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _HELD.append(handle)
        taken.append(i)
        if len(taken) == count:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, taken))
            return taken
    raise SystemExit(f"error: no {count} free GPU slot(s) of {total} in {lock_dir} (Snakemake's "
                     "--resources gpu= should not let this happen)")


_HELD: list[Any] = []


# ------------------------------------------------------------------ notebooks
def kernel_env(results: Path, threads: int) -> None:
    """The environment the notebook kernel inherits: the results folder, ``threads`` CPU
    threads, progress bars refreshed every few seconds, and matplotlib's inline backend of
    the kernel (``MPLBACKEND`` removed: a headless backend would leave the reports without
    figures)."""
    os.environ["AIA_RESULTS_DIR"] = str(results)
    os.environ.pop("MPLBACKEND", None)
    os.environ.setdefault("TQDM_MININTERVAL", "5")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def _kernel_config() -> Any:
    """IPC transport in a private folder (over TCP the kernel warns, rightly, that it runs
    without encryption; jupyter's default IPC name in the working folder would be shared by
    the kernels of jobs running side by side)."""
    from traitlets.config import Config  # lazy import (traitlets)

    if os.name != "posix":
        return Config()
    folder = tempfile.mkdtemp(prefix="aia-kernel-")
    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "k")}})


def _interrupt_as_keyboard(*_: Any) -> None:
    raise KeyboardInterrupt


def execute(notebook: Path, executed: Path, parameters: dict[str, Any],
            timeout: int | None = None) -> None:
    """Run ``notebook`` with papermill into ``executed``; see the module docstring. Ctrl-C
    (SIGINT) and SIGTERM (Snakemake stopping its jobs) shut the kernel down."""
    import papermill as pm  # lazy import (papermill)
    from papermill.exceptions import PapermillExecutionError  # lazy import (papermill)

    from lib.pipeline import render  # lazy import (pandas, scipy)

    executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = executed.with_name(f".{executed.stem}.running.ipynb")
    failed = executed.with_name(f"{executed.stem}.failed.ipynb")
    failed.unlink(missing_ok=True)
    signal.signal(signal.SIGTERM, _interrupt_as_keyboard)
    signal.signal(signal.SIGINT, _interrupt_as_keyboard)  # also when started with it ignored
    try:
        pm.execute_notebook(str(notebook), str(tmp), parameters=parameters,
                            kernel_name="python3", cwd=str(notebook.parent), progress_bar=False,
                            execution_timeout=timeout, config=_kernel_config())
    except BaseException as exc:
        if tmp.exists():
            os.replace(tmp, failed)
        lines = [f"FAILED: {paths.portable(notebook)}"]
        if isinstance(exc, PapermillExecutionError):
            source = (exc.source or "").strip().splitlines()
            lines.append(f"  cell {exc.cell_index} of the executed copy (In [{exc.exec_count}]):")
            lines += [f"    {s}" for s in source[:8]]
            lines.append(f"  error: {exc.ename}: {render.relative_to_repo(str(exc.evalue))}")
        else:
            lines.append(f"  error: {type(exc).__name__}: {exc}")
        if failed.exists():
            lines.append(f"  executed copy with the error: {paths.portable(failed)}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(1) from None
    tidy_executed(tmp, executed)
    os.replace(tmp, executed)


def tidy_executed(notebook: Path, final: Path) -> None:
    """Make an executed copy fit to keep: stream outputs merged (a progress bar kept as its
    last state), checkout paths in outputs made relative, papermill's paths made portable."""
    import nbformat  # lazy import (nbformat)

    # lazy import (nbconvert)
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    from lib.pipeline import render  # lazy import (pandas, scipy)

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
    for key, value in (("input_path", record.get("input_path")), ("output_path", final)):
        if key in record:
            record[key] = paths.portable(value)
    nbformat.write(nb, notebook)


# ------------------------------------------------------------------ the other jobs
def draw_dataset(params: str, data: Path) -> None:
    """Draw the set's dataset (the embedded scenes or Corel-shaped stand-in images)."""
    pset = load_param_set(params)
    if pset.synth is not None:
        synth.generate(data, **pset.synth)
    else:
        options = dict(pset.standin or {})
        standin.generate_standin(options.pop("annotations"), data, **options)


def augment_shard(data: Path, preset: str, overrides: dict[str, Any], seed: int, shard: str,
                  out: Path) -> None:
    """One shard of the ML-WGAN augmentation, with notebook 03's settings; its summary to
    ``out``."""
    from lib.data import augmentation  # lazy import (PIL, pandas, torch)
    from lib.method import wgan  # lazy import (PIL, torch)

    config = config_lib.build(wgan.WGANConfig, wgan.PRESETS, preset, {**overrides, "seed": seed},
                              where="notebook 03")
    atomic_write_json(out, augmentation.augment(data, config, shard=shard, progress=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.pipeline.jobs",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("job", choices=("notebook", "dataset", "augment", "train", "tables",
                                        "reports"))
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--parameters", default="{}", help="JSON of the job's values")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--params", default="default", help="parameter set name or path")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpus", type=int, default=0)
    parser.add_argument("--gpu-count", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=None)
    args = parser.parse_args(argv)
    values = json.loads(args.parameters)
    results = (args.results or paths.results_root()).resolve()
    claim_gpus(args.gpus, args.gpu_count, results / ".gpus")
    kernel_env(results, args.threads)
    if args.job == "train" and args.gpus > 1 and "LOCAL_RANK" not in os.environ:
        # one process per GPU (DDP, the global batch of one process), each running this job;
        # this process keeps the GPU slot locks until they finish
        return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               f"--nproc_per_node={args.gpus}", "-m", "lib.pipeline.jobs",
                               *(argv if argv is not None else sys.argv[1:])]).returncode
    if args.job == "notebook":
        execute(args.paths[0].resolve(), args.paths[1].resolve(), values, args.timeout)
    elif args.job == "dataset":
        draw_dataset(args.params, args.paths[0])
    elif args.job == "augment":
        augment_shard(args.paths[0], out=args.paths[1], **values)
    elif args.job == "train":
        from lib.training import launch  # lazy import (pandas, sklearn, timm, torch)

        launch.train_seeds(values["run_name"], values["dataset"], values["seeds"],
                             values.get("preset", "default"), values.get("overrides"))
    elif args.job == "tables":
        # lazy import (matplotlib, pandas, scipy)
        from lib.pipeline import results as results_tables

        results_tables.build_tables(results / "runs", results / "tables", args.params,
                                    values["runs"])
    else:
        from lib.pipeline import render  # lazy import (pandas, scipy)

        render.render_reports(results, values["notebooks"], values["set"], args.paths[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
