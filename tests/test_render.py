"""HTML reports: table pages, the index and notebook pages, with no absolute path of the
checkout in them; notebook pages share one stylesheet."""

from __future__ import annotations

import nbformat
import pytest
from test_tables import GCN, LINEAR, make_run

from lib.analysis import tables
from lib.core import paths
from lib.pipeline import render
from lib.pipeline.results import build_tables


def notebook_with_output(path, text: str):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('x')")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=text)]
    nb.cells = [nbformat.v4.new_markdown_cell("# a notebook"), cell]
    nbformat.write(nb, path)
    return path


def test_reports_hold_no_absolute_path_of_the_checkout(tmp_path):
    root = str(paths.ROOT)
    runs = tmp_path / "runs"
    # an old config with an absolute dataset path under the checkout
    dataset = str(paths.ROOT / "data" / "scenes")
    for seed in range(2):
        make_run(runs, "gcn-asl", seed, GCN[seed], dataset=dataset)
        make_run(runs, "linear-asl", seed, LINEAR[seed], head="linear", dataset=dataset)
    out = tmp_path / "tables"
    build_tables(runs, out)
    reports = tmp_path / "reports"
    pages = [render.render_table_html(out, name, reports / f"table_{name}.html")
             for name in ("main", "ablations")]
    warning = f"{root}/lib/training/settings.py:12: UserWarning: something\n"
    executed = notebook_with_output(tmp_path / "05_evaluation.ipynb", warning)
    page = render.render_notebook_html(executed, reports / "05_evaluation.html")
    index = render.write_index(reports, [("05_evaluation", page)], pages,
                               {"dataset": paths.portable(dataset)}, [out / "main.csv"])
    for path in [*pages, page, index, *out.iterdir()]:
        if path.suffix != ".png":
            assert root not in path.read_text(encoding="utf-8"), path
    assert "lib/training/settings.py:12: UserWarning" in page.read_text()
    text = index.read_text()
    assert "<th>dataset</th><td>data/scenes</td>" in text
    assert "href='table_main.html'" in text and "href='05_evaluation.html'" in text
    assert "href='../tables/main.csv'" in text
    main = pages[0].read_text()
    assert "0.510 ± 0.014" in main                       # gcn-asl, seeds 0 and 1
    assert "sample standard deviation" in main and "data:image/png;base64" in main
    assert "paired t-interval" in pages[1].read_text()
    assert "+0.035 ± 0.021 (≈ 0)" in pages[1].read_text()   # GCN - linear: +0.02, +0.05


def test_relative_to_repo():
    root = str(paths.ROOT)
    assert render.relative_to_repo(f"{root}/lib/x.py:3: W; cwd {root} ok") == \
        "lib/x.py:3: W; cwd . ok"
    assert render.relative_to_repo(f"{root}-other/y") == f"{root}-other/y"


def test_provenance_report_is_installed_without_the_checkout_path(tmp_path):
    """Snakemake's --report names the Snakefile, the commands and the files by absolute path:
    the installed copy names them from the checkout, the raw file is gone, and a missing
    raw report is one error naming it."""
    root = str(paths.ROOT)
    raw = tmp_path / "raw.html"
    raw.write_text(f'<script>var rules = {{"cmd": "{root}/.venv/bin/python -m lib.pipeline.jobs '
                   f'notebook {root}/notebooks/01.ipynb", "dir": "{root}"}};</script>')
    out = render.install_provenance(raw, tmp_path / "reports")
    assert out == tmp_path / "reports" / render.PROVENANCE and not raw.exists()
    text = out.read_text()
    assert root not in text
    assert '".venv/bin/python -m lib.pipeline.jobs notebook notebooks/01.ipynb", "dir": "."' in text
    with pytest.raises(FileNotFoundError, match="raw.html: no Snakemake report"):
        render.install_provenance(raw, tmp_path / "reports")


def test_notebook_pages_share_one_stylesheet(tmp_path):
    """Rendered notebooks link reports/notebook.css instead of inlining the template's CSS;
    the cell's own output stays in the page."""
    out = tmp_path / "reports"
    pages = [render.render_notebook_html(
        notebook_with_output(tmp_path / f"{name}.ipynb", f"hello {name}\n"),
        out / f"{name}.html").read_text() for name in ("a", "b")]
    css = (out / render.NOTEBOOK_CSS).read_text()
    assert ".highlight" in css and "--jp-" in css              # nbconvert's template styles
    for name, page in zip("ab", pages, strict=True):
        head = page.split("</head>")[0]
        assert "<style" not in head and f'href="{render.NOTEBOOK_CSS}"' in head
        assert f"hello {name}" in page
    assert len(pages[0]) < len(css)


def _png(color: str) -> bytes:
    """A real matplotlib PNG (one coloured square)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.add_patch(plt.Rectangle((0, 0), 1, 1, color=color))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def test_notebook_reports_hold_their_figures_inline(tmp_path):
    """Every image output of an executed notebook is in its page as an inline data URI
    (byte for byte), so a report shows the figures its notebook drew."""
    import base64
    import re

    figures = [_png(c) for c in ("red", "blue", "green")]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 09 · Figures\n\nThree plots. More text.")]
    for i, png in enumerate(figures):
        cell = nbformat.v4.new_code_cell(f"plt.plot({i})")
        cell.outputs = [nbformat.v4.new_output(
            "display_data", data={"image/png": base64.b64encode(png).decode(),
                                  "text/plain": "<Figure size 100x100 with 1 Axes>"})]
        nb.cells.append(cell)
    nb.cells.append(nbformat.v4.new_code_cell("print(1)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="1\n")]))
    executed = tmp_path / "09_figures.ipynb"
    nbformat.write(nb, executed)
    assert render.count_image_outputs(executed) == 3
    page = render.render_notebook_html(executed, tmp_path / "reports" / "09_figures.html")
    assert render.count_inline_images(page) == 3
    embedded = re.findall(r"src=\"data:image/png;base64,([^\"]+)\"", page.read_text())
    assert [base64.b64decode(e) for e in embedded] == figures


def test_count_inline_images_ignores_linked_images(tmp_path):
    page = tmp_path / "p.html"
    page.write_text("<img src='fig.png'><img alt=x src=\"data:image/png;base64,AA\">"
                    "<IMG SRC='data:image/jpeg;base64,BB'>", encoding="utf-8")
    assert render.count_inline_images(page) == 2


def _executed(path, title, sentence, start, end):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\n{sentence} Second sentence.")]
    nb.metadata["papermill"] = {"start_time": start, "end_time": end, "duration": 60.0}
    nbformat.write(nb, path)


def test_index_is_the_front_door(tmp_path):
    """index.html says what was run (set, dataset, seeds, commit from the table stamp,
    notebook times from papermill's metadata), shows the headline table, one line per
    report, the per-job benchmark figures and the provenance link."""
    results = tmp_path / "res"
    for seed in range(2):
        make_run(results / "runs", "gcn-asl", seed, GCN[seed])
        make_run(results / "runs", "linear-asl", seed, LINEAR[seed], head="linear")
    build_tables(results / "runs", results / "tables", "default")
    executed = paths.ensure(results / "executed")
    _executed(executed / "01_a.ipynb", "01 · Dataset statistics", "Label statistics.",
              "2026-01-01T10:00:00", "2026-01-01T10:01:00")
    _executed(executed / "02_b.ipynb", "02 · Embeddings", "Label vectors: what they bring.",
              "2026-01-01T10:00:30", "2026-01-01T10:03:30")
    bench = paths.ensure(results / "benchmarks" / "train")
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"
    (bench / "gcn-asl_seed-0.tsv").write_text(
        f"{header}\n12.5000\t0:00:12\t812.3\t900\t800\t805\t1\t2\t95.1\t11.9\n")
    (bench / "broken.tsv").write_text("nothing here\n")
    paths.ensure(results / "reports")
    (results / "reports" / "provenance.html").write_text("<html></html>")
    index = render.render_reports(results, None, "default")
    text = index.read_text()
    _, stamp = tables.read_table(results / "tables", "main")
    assert f"<th>commit</th><td>{stamp.commit}</td>" in text
    assert "<th>seeds</th><td>0, 1</td>" in text
    assert "<th>parameter set</th><td>default (params/default.yaml)</td>" in text
    # notebook time 60 + 60 s; wall 10:00:00 -> 10:03:30
    assert "2 executed, 2 min 00 s of notebook time, 3 min 30 s from first start" in text
    assert "href='01_a.html'>01_a</a>: 01 · Dataset statistics. Label statistics.</li>" in text
    assert "02 · Embeddings. Label vectors</li>" in text
    assert "<h2>Headline</h2>" in text and "gcn-asl" in text.split("<h2>Headline</h2>")[1]
    assert "<td>train</td><td>gcn-asl_seed-0</td><td>12.5</td><td>812.3</td><td>11.9</td>" \
        in text
    assert "1 jobs, 12.5 s of job time" in text and "broken" not in text
    assert "href='provenance.html'" in text
    for name in ("01_a", "02_b"):
        assert (results / "reports" / f"{name}.html").is_file()
