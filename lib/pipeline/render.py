"""HTML reports: executed notebooks, the results tables, and the index linking them.

Everything lands in ``<results>/reports/``: ``<job>.html`` per executed notebook (nbconvert;
the template's stylesheet once in ``notebook.css``), ``table_<name>.html`` per results table,
and ``index.html``. Pages hold no absolute path of this machine: paths are written with
:func:`lib.core.paths.portable`, and paths under the repository that notebook outputs print (a
library warning names its source file) are made relative in the page as well.
"""

from __future__ import annotations

import argparse
import base64
import html
import logging
import os
import re
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import yaml

from lib.analysis import tables
from lib.core import paths
from lib.core.fileio import atomic_write_text
from lib.core.logs import cli_logging
from lib.core.provenance import git_commit
from lib.pipeline.params import load_param_set

log = logging.getLogger(__name__)

#: the stylesheet nbconvert's template inlines into every page, kept once beside the reports
NOTEBOOK_CSS = "notebook.css"
_HEAD_STYLE = re.compile(r"<style[^>]*>(.*?)</style>\s*", re.S)
TABLE_NAMES = ("main", "ablations")

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
th {{ background: #f3f3f3; }} td:nth-child(-n+3) {{ text-align: left; }}
.stamp {{ color: #555; }} .note {{ font-size: 0.9em; }}
</style></head><body>
{body}
</body></html>
"""


def relative_to_repo(text: str) -> str:
    """``text`` with this checkout's absolute path removed from the paths under it
    (``<root>/lib/x.py`` -> ``lib/x.py``, ``<root>`` alone -> ``.``); a sibling folder whose
    name merely starts like the checkout's is left alone."""
    pattern = re.escape(str(paths.ROOT)) + r"(?:" + re.escape(os.sep) + r"|(?![\w.-]))"
    return re.sub(pattern, lambda m: "" if m.group(0).endswith(os.sep) else ".", text)


def render_notebook_html(executed: Path, out: Path) -> Path:
    """nbconvert HTML of an executed notebook. The template's ~7,000 lines of CSS, the same
    for every page, go once into ``notebook.css`` beside it, which the page links."""
    from nbconvert import HTMLExporter  # lazy import (nbconvert)

    with warnings.catch_warnings():  # the lib.core.glue.record outputs have no HTML form
        warnings.filterwarnings("ignore", message="Your element with mimetype")
        body, _ = HTMLExporter().from_filename(str(executed))
    head, sep, rest = body.partition("</head>")
    if sep:
        css = "\n".join(m.group(1).strip() for m in _HEAD_STYLE.finditer(head)) + "\n"
        stylesheet = out.parent / NOTEBOOK_CSS
        if not stylesheet.exists() or stylesheet.read_text(encoding="utf-8") != css:
            atomic_write_text(stylesheet, css)
        link = f'<link rel="stylesheet" href="{NOTEBOOK_CSS}"/>\n'
        body = _HEAD_STYLE.sub("", head) + link + sep + rest
    return atomic_write_text(out, relative_to_repo(body))


def _link(path: Path, start: Path) -> str:
    return html.escape(Path(os.path.relpath(path, start)).as_posix(), quote=True)


def render_table_html(table_dir: Path, name: str, out: Path) -> Path:
    """HTML page of a results table: title, stamp, caption, table, the plot for ``main``."""
    table, stamp = tables.read_table(table_dir, name)
    parts = [f"<h1>{html.escape(tables.TITLES.get(name, name))}</h1>"]
    if stamp is not None:
        parts.append(f"<p class='stamp'>{html.escape(stamp.line().replace('`', ''))}</p>")
        parts += [f"<p class='note'>{html.escape(n.replace('`', ''))}</p>"
                  for n in tables.caption(stamp, table)]
    shown = tables.display_table(name, table, stamp.leaky_runs if stamp else ())
    parts.append(shown.to_html(index=False, na_rep="", border=0, escape=True)
                 if not shown.empty else "<p><i>No runs for this table.</i></p>")
    png = table_dir / f"{name}_per_class_f1.png"
    if png.is_file():
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(f"<p><img alt='per-class F1' src='data:image/png;base64,{data}'></p>")
    links = [f"<a href='{_link(table_dir / f'{name}.{ext}', out.parent)}'>{ext}</a>"
             for ext in ("csv", "md") if (table_dir / f"{name}.{ext}").is_file()]
    parts.append("<p>Files: " + " · ".join(links) + "</p>")
    return atomic_write_text(out, PAGE.format(title=html.escape(name), body="\n".join(parts)))


def count_image_outputs(notebook: Path) -> int:
    """Image outputs (``image/png``, ``image/jpeg``, ``image/svg+xml``) an executed notebook
    holds: the figures its report must show."""
    import nbformat  # lazy import (nbformat)

    nb = nbformat.read(notebook, as_version=4)
    return sum(1 for cell in nb.cells if cell.cell_type == "code"
               for out in cell.get("outputs", [])
               if any(m in out.get("data", {}) for m in IMAGE_TYPES))


def count_inline_images(page: Path) -> int:
    """Images embedded in an HTML page (``<img src="data:image/...">`` and inline SVG)."""
    text = Path(page).read_text(encoding="utf-8")
    return len(_INLINE_IMG.findall(text)) + text.count("<svg")


IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
_INLINE_IMG = re.compile(r"<img\b[^>]*\bsrc=[\"']data:image/", re.I)


def describe_notebook(notebook: Path) -> tuple[str, str]:
    """(title, one sentence) of a notebook from its first markdown cell: the heading and the
    first sentence of the text under it."""
    import nbformat  # lazy import (nbformat)

    nb = nbformat.read(notebook, as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if cell is None:
        return notebook.stem, ""
    lines = cell.source.strip().splitlines()
    title = lines[0].lstrip("#").strip() if lines and lines[0].startswith("#") else notebook.stem
    text = " ".join(line.strip() for line in lines[1:] if line.strip())
    first = re.split(r"(?<=[.:])\s", text, maxsplit=1)[0] if text else ""
    return title, first.rstrip(":")


def notebook_times(executed: Sequence[Path]) -> tuple[float, float]:
    """(wall seconds from the first notebook's start to the last one's end, sum of the
    notebooks' own durations) from papermill's metadata; zeros when absent."""
    import nbformat  # lazy import (nbformat)

    starts, ends, total = [], [], 0.0
    for path in executed:
        meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
        total += float(meta.get("duration") or 0.0)
        try:
            starts.append(datetime.fromisoformat(meta["start_time"]))
            ends.append(datetime.fromisoformat(meta["end_time"]))
        except (KeyError, TypeError, ValueError):
            continue
    wall = (max(ends) - min(starts)).total_seconds() if starts else 0.0
    return wall, total


#: columns of Snakemake's ``benchmark:`` files shown in the index (name, header)
BENCH_COLUMNS = (("s", "seconds"), ("max_rss", "max RSS (MB)"), ("cpu_time", "CPU s"),
                 ("mean_load", "mean load"))


def read_benchmarks(folder: Path) -> list[dict[str, str]]:
    """One row per Snakemake benchmark file under ``folder`` (``<rule>/<name>.tsv``: a
    header line and one row per repeat; the last repeat is shown). A file that is not of
    that form is skipped with a warning naming it."""
    rows = []
    for tsv in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        lines = [ln for ln in tsv.read_text(encoding="utf-8").splitlines() if ln.strip()]
        header = lines[0].split("\t") if lines else []
        if len(lines) < 2 or "s" not in header:
            log.warning("%s: not a Snakemake benchmark file (header with 's' and a row); "
                        "left out of the index", paths.portable(tsv))
            continue
        values = dict(zip(header, lines[-1].split("\t"), strict=False))
        rel = tsv.relative_to(folder).with_suffix("")
        rows.append({"rule": rel.parts[0] if len(rel.parts) > 1 else "",
                     "job": "/".join(rel.parts[1:]) or rel.name, **values})
    return rows


def _seconds_text(seconds: float) -> str:
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes} min {sec:02d} s" if minutes else f"{seconds:.1f} s"


def _benchmark_table(rows: Sequence[dict[str, str]]) -> list[str]:
    def cell(value: str | None) -> str:
        try:
            return f"{float(value):.1f}"
        except (TypeError, ValueError):
            return html.escape(value or "")
    head = "".join(f"<th>{h}</th>" for h in ("rule", "job", *(h for _, h in BENCH_COLUMNS)))
    body = ["<tr><td>" + html.escape(r["rule"]) + "</td><td>" + html.escape(r["job"])
            + "</td>" + "".join(f"<td>{cell(r.get(k))}</td>" for k, _ in BENCH_COLUMNS)
            + "</tr>" for r in rows]
    total = sum(float(r.get("s") or 0) for r in rows)
    return ["<table>", f"<tr>{head}</tr>", *body, "</table>",
            f"<p class='note'>{len(rows)} jobs, {_seconds_text(total)} of job time in all "
            "(Snakemake's per-job benchmark files).</p>"]


def write_index(reports: Path, notebooks: Sequence[tuple[str, Path]], table_pages: Sequence[Path],
                info: dict[str, str], others: Sequence[Path] = (), *,
                descriptions: dict[str, str] | None = None, headline: str = "",
                benchmarks: Sequence[dict[str, str]] = ()) -> Path:
    """``reports/index.html``, the front door of a results folder: what was run (``info``),
    the headline table (``headline``, HTML), one line per notebook report (its
    ``descriptions``), the table pages, the per-job figures of ``benchmarks`` and the
    provenance report ``reports/provenance.html`` when it exists, and the other files."""
    descriptions = descriptions or {}
    parts = ["<h1>Graph-based image annotation: results</h1>", "<h2>What was run</h2>",
             "<table class='info'>"]
    parts += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
              for k, v in info.items()]
    parts.append("</table>")
    if headline:
        parts += ["<h2>Headline</h2>", headline]
    parts += ["<h2>Notebook reports</h2>", "<ul>"]
    for name, page in notebooks:
        line = descriptions.get(name, "")
        parts.append(f"<li><a href='{_link(page, reports)}'>{html.escape(name)}</a>"
                     + (f": {html.escape(line)}" if line else "") + "</li>")
    parts += ["</ul>", "<h2>Tables</h2>", "<ul>"]
    for page in table_pages:
        title = tables.TITLES.get(page.stem.removeprefix("table_"), page.stem)
        parts.append(f"<li><a href='{_link(page, reports)}'>{html.escape(title)}</a></li>")
    parts.append("</ul>")
    provenance = reports / PROVENANCE
    if benchmarks or provenance.is_file():
        parts.append("<h2>Jobs</h2>")
        if provenance.is_file():
            parts.append(f"<p><a href='{_link(provenance, reports)}'>Provenance report</a> "
                         "(Snakemake's report of the workflow: its jobs, rules and outputs).</p>")
        if benchmarks:
            parts += _benchmark_table(benchmarks)
    if others:
        parts += ["<h2>Other tables and files</h2>", "<ul>"]
        parts += [f"<li><a href='{_link(p, reports)}'>{_link(p, reports)}</a></li>"
                  for p in others]
        parts.append("</ul>")
    return atomic_write_text(reports / "index.html",
                             relative_to_repo(PAGE.format(title="results",
                                                          body="\n".join(parts))))


#: Snakemake's provenance report, beside the other reports, linked from the index when present
PROVENANCE = "provenance.html"


def install_provenance(raw: Path, reports: Path) -> Path:
    """Snakemake's ``--report`` output ``raw`` as ``reports/provenance.html``, with the
    checkout's absolute path taken out of it (its commands, Snakefile and file paths name
    files under the checkout); ``raw`` is removed."""
    raw = Path(raw)
    try:
        text = raw.read_text(encoding="utf-8")
    except OSError as e:
        raise FileNotFoundError(f"{paths.portable(raw)}: no Snakemake report to install "
                                f"({e.strerror})") from None
    out = atomic_write_text(Path(reports) / PROVENANCE, relative_to_repo(text))
    raw.unlink()
    return out


def _seeds_of(params: str) -> str:
    """The seeds a parameter set declares (its ``seeds:``), as text; empty when unreadable."""

    path = Path(params) if Path(params).suffix else paths.PARAMS_DIR / f"{params}.yaml"
    try:
        seeds = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("seeds")
    except (OSError, yaml.YAMLError, AttributeError):
        return ""
    return ", ".join(map(str, seeds)) if isinstance(seeds, list) else ""


def run_info(results: Path, params: str, data_dir: Path | None,
             executed: Sequence[Path]) -> dict[str, str]:
    """What was run, for the index: parameter set, dataset, seeds, commit (from the main
    table's stamp when there is one: the commit the results were made at), wall time (from
    the executed notebooks' papermill metadata) and the date."""
    stamp = None
    try:
        _, stamp = tables.read_table(results / "tables", "main")
    except Exception:  # noqa: BLE001 - no table, or an unreadable one: fall back below
        stamp = None
    wall, total = notebook_times(executed)
    info = {"parameter set": f"{params} (params/{Path(params).stem}.yaml)",
            "dataset": stamp.dataset if stamp else
            (paths.portable(data_dir) if data_dir is not None else "unknown"),
            "seeds": (", ".join(map(str, stamp.seeds)) if stamp and stamp.seeds
                      else _seeds_of(params) or "unknown"),
            "commit": stamp.commit if stamp else git_commit(),
            "results folder": paths.portable(results)}
    if executed:
        info["notebooks"] = (f"{len(executed)} executed, {_seconds_text(total)} of notebook "
                             f"time, {_seconds_text(wall)} from first start to last end")
    info["date"] = stamp.date if stamp else datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return info


def _headline(tables_dir: Path) -> str:
    try:
        table, stamp = tables.read_table(tables_dir, "main")
    except Exception:  # noqa: BLE001 - the index is written even without a table
        return ""
    shown = tables.display_table("main", tables.thresholded_rows(table),
                                 stamp.leaky_runs if stamp else ())
    if shown.empty:
        return ""
    return (shown.to_html(index=False, na_rep="", border=0, escape=True)
            + "<p class='note'>At threshold 0.5 and with MCC thresholds; the full table "
              "(also both top-3s) with its caption: "
              "<a href='table_main.html'>main results</a>.</p>")


def render_reports(results: Path, notebook_jobs: Sequence[str] | None = None,
                   params: str = "default", data_dir: Path | None = None) -> Path:
    """HTML of every executed notebook among ``notebook_jobs`` (default: every notebook in
    ``<results>/executed/``; rendered when missing or older than its executed copy), of the
    tables, and the index; returns the index."""
    results = Path(results)
    reports = paths.ensure(results / "reports")
    executed_dir = results / "executed"
    if notebook_jobs is None:
        notebook_jobs = sorted(p.stem for p in executed_dir.glob("*.ipynb"))
    pages: list[tuple[str, Path]] = []
    descriptions: dict[str, str] = {}
    executed_files = []
    for job in notebook_jobs:
        executed = executed_dir / f"{job}.ipynb"
        if not executed.is_file():
            continue
        executed_files.append(executed)
        page = reports / f"{job}.html"
        if not page.is_file() or page.stat().st_mtime < executed.stat().st_mtime:
            render_notebook_html(executed, page)
            log.info("report: %s", paths.portable(page))
        pages.append((job, page))
        title, sentence = describe_notebook(executed)
        descriptions[job] = f"{title}. {sentence}".strip() if sentence else title
    tables_dir = results / "tables"
    table_pages = [render_table_html(tables_dir, name, reports / f"table_{name}.html")
                   for name in TABLE_NAMES if (tables_dir / f"{name}.csv").is_file()]
    own = {tables_dir / f"{n}.{ext}" for n in TABLE_NAMES for ext in ("csv", "md", "meta.json")}
    others = sorted(p for p in tables_dir.rglob("*") if p.is_file() and p not in own
                    and p.suffix in (".csv", ".md", ".png", ".json", ".html")
                    and not p.name.startswith(".")) if tables_dir.is_dir() else []
    info = run_info(results, params, data_dir, executed_files)
    return write_index(reports, pages, table_pages, info, others, descriptions=descriptions,
                       headline=_headline(tables_dir),
                       benchmarks=read_benchmarks(results / "benchmarks"))


def render_main(argv: list[str]) -> int:
    """``python -m lib render``: the HTML reports and the index of a results folder."""

    parser = argparse.ArgumentParser(
        prog="python -m lib render",
        description="Render the executed notebooks, the tables and index.html of a results "
                    "folder into its reports/.")
    parser.add_argument("--params", default="default", help="parameter set (default: default)")
    parser.add_argument("--results", default=None,
                        help="results folder (default: results/<params>/)")
    parser.add_argument("--data", default=None, help="dataset folder, shown in the index "
                                                     "when the tables have no stamp")
    parser.add_argument("--provenance", default=None, metavar="HTML",
                        help="install this `snakemake --report` output as "
                             "reports/provenance.html (paths made relative), then the index")
    args = parser.parse_args(argv)
    results = (paths.from_portable(args.results) if args.results
               else paths.set_results_dir(Path(args.params).stem))
    data = paths.dataset_dir(args.data) if args.data else None
    with cli_logging():
        if args.provenance:
            page = install_provenance(Path(args.provenance), results / "reports")
            print(f"wrote {paths.portable(page)}")
            data = data or load_param_set(args.params).default_data_dir()  # as the workflow
        index = render_reports(results, None, args.params, data)
    print(f"wrote {paths.portable(index)}")
    return 0
