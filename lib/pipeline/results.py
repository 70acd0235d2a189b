"""A parameter set's results tables: the tables of its runs, the main-table chart, the
README block (``python -m lib tables``). The tables themselves are
:mod:`lib.analysis.tables`; this module resolves a parameter set and draws."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from lib.analysis import tables
from lib.analysis.tables import TableError, select_runs, thresholded_rows, update_readme
from lib.core import paths
from lib.core.logs import cli_logging
from lib.pipeline.params import ParamSetError, load_param_set, results_dir
from lib.plots import save
from lib.plots.tables import main_table_bars

log = logging.getLogger(__name__)


def build_tables(
    runs_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    params: str | None = None,
    run_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The main and ablation tables (:func:`lib.analysis.tables.build_tables`) and the
    main-table chart, from run folders alone. ``run_names`` (or the ``runs:`` of parameter
    set ``params``) restricts the configurations; returns ``{"main": frame, "ablations":
    frame, "files": [...]}``."""
    runs_dir = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
    out_dir = Path(out_dir) if out_dir is not None else paths.tables_dir()
    label = "(run folders)"
    if params is not None:
        pset = load_param_set(params)
        label = pset.name
        if run_names is None:
            present = {c.name for c in select_runs(runs_dir, None)} if runs_dir.is_dir() else set()
            run_names = [r for r in pset.runs if r in present]
            missing = [r for r in pset.runs if r not in present]
            if missing:
                log.warning("tables: runs of parameter set %r not in %s yet: %s", pset.name,
                            paths.portable(runs_dir), missing)
            if not run_names:
                raise TableError(f"{paths.portable(runs_dir)}: none of the runs of parameter "
                                 f"set {pset.name!r} ({list(pset.runs)}) is there; run `make "
                                 f"reproduce PARAMS={pset.name}`")
    result = tables.build_tables(runs_dir, out_dir, run_names, label)
    if (result["main"]["source"] == "ours").any():
        fig = main_table_bars(thresholded_rows(result["main"]))
        result["files"].append(save(fig, Path(out_dir) / "main_per_class_f1.png"))
        plt.close(fig)
    return result


def tables_main(argv: list[str]) -> int:
    """``python -m lib tables``: rebuild the results tables from run folders."""

    parser = argparse.ArgumentParser(
        prog="python -m lib tables",
        description="Build the results tables (main, ablations; CSV, Markdown, PNG) from run "
                    "folders alone.")
    parser.add_argument("--params", default=None,
                        help="parameter set: its runs: and its results folder results/<set>/ "
                             "(default: every run folder under the results folder)")
    parser.add_argument("--runs", default=None, help="runs folder (default <results>/runs)")
    parser.add_argument("--out", default=None, help="output folder (default <results>/tables)")
    parser.add_argument("--readme", default=None, metavar="README.md",
                        help="also write the tables and one sentence per comparison into this "
                             "README's results block")
    args = parser.parse_args(argv)
    with cli_logging():
        try:
            results = results_dir(args.params) if args.params else paths.results_root()
            runs = Path(args.runs) if args.runs else results / "runs"
            out = Path(args.out) if args.out else results / "tables"
            result = build_tables(runs, out, args.params)
            if args.readme:
                update_readme(args.readme, out)
        except (TableError, ParamSetError) as exc:
            log.error("error: %s", exc)
            return 1
    for f in result["files"]:
        print(f"wrote {paths.portable(f)}")
    if args.readme:
        print(f"wrote {paths.portable(args.readme)}")
    return 0
