"""HTML reports: executed notebooks, the results tables, and the index linking them.

Everything lands in ``<results>/reports/``: ``<job>.html`` per executed notebook (nbconvert;
the template's stylesheet once in ``notebook.css``), ``table_<name>.html`` per results table,
and ``index.html``. Pages hold no absolute path of this machine: paths are written with
:func:`lib.paths.portable`, and paths under the repository that notebook outputs print (a
library warning names its source file) are made relative in the page as well.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import re
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from lib import paths, tables
from lib.utils import atomic_write_text, git_commit

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
    from nbconvert import HTMLExporter

    with warnings.catch_warnings():  # the lib.utils.record outputs have no HTML form
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


def write_index(reports: Path, notebooks: Sequence[tuple[str, Path]], table_pages: Sequence[Path],
                info: dict[str, str], others: Sequence[Path] = ()) -> Path:
    """``reports/index.html`` linking every notebook report, table page and other file."""
    parts = ["<h1>Graph-based image annotation: reports</h1>",
             "<p class='stamp'>" + " · ".join(f"{html.escape(k)}: {html.escape(v)}"
                                              for k, v in info.items()) + "</p>",
             "<h2>Notebooks</h2>", "<ul>"]
    parts += [f"<li><a href='{_link(page, reports)}'>{html.escape(name)}</a></li>"
              for name, page in notebooks]
    parts += ["</ul>", "<h2>Tables</h2>", "<ul>"]
    for page in table_pages:
        title = tables.TITLES.get(page.stem.removeprefix("table_"), page.stem)
        parts.append(f"<li><a href='{_link(page, reports)}'>{html.escape(title)}</a></li>")
    parts.append("</ul>")
    if others:
        parts += ["<h2>Other tables and files</h2>", "<ul>"]
        parts += [f"<li><a href='{_link(p, reports)}'>{_link(p, reports)}</a></li>"
                  for p in others]
        parts.append("</ul>")
    return atomic_write_text(reports / "index.html",
                             relative_to_repo(PAGE.format(title="reports",
                                                          body="\n".join(parts))))


def render_reports(results: Path, notebook_jobs: Sequence[str], params: str,
                   data_dir: Path) -> Path:
    """HTML of every executed notebook among ``notebook_jobs`` (when missing or older than its
    executed copy), of the tables, and the index linking them; returns the index."""
    reports = paths.ensure(results / "reports")
    pages: list[tuple[str, Path]] = []
    for job in notebook_jobs:
        executed = results / "executed" / f"{job}.ipynb"
        if not executed.is_file():
            continue
        page = reports / f"{job}.html"
        if not page.is_file() or page.stat().st_mtime < executed.stat().st_mtime:
            render_notebook_html(executed, page)
            log.info("report: %s", paths.portable(page))
        pages.append((job, page))
    tables_dir = results / "tables"
    table_pages = [render_table_html(tables_dir, name, reports / f"table_{name}.html")
                   for name in TABLE_NAMES if (tables_dir / f"{name}.csv").is_file()]
    own = {tables_dir / f"{n}.{ext}" for n in TABLE_NAMES for ext in ("csv", "md", "meta.json")}
    others = sorted(p for p in tables_dir.rglob("*") if p.is_file() and p not in own
                    and p.suffix in (".csv", ".md", ".png", ".json", ".html")
                    and not p.name.startswith(".")) if tables_dir.is_dir() else []
    info = {"parameter set": params, "dataset": paths.portable(data_dir),
            "commit": git_commit(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    return write_index(reports, pages, table_pages, info, others)
