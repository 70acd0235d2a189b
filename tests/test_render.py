"""HTML reports: table pages, the index and notebook pages, with no absolute path of the
checkout in them; notebook pages share one stylesheet."""

from __future__ import annotations

import nbformat
from test_tables import GCN, LINEAR, make_run

from lib import paths, render, tables


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
    tables.build_tables(runs, out)
    reports = tmp_path / "reports"
    pages = [render.render_table_html(out, name, reports / f"table_{name}.html")
             for name in ("main", "ablations")]
    warning = f"{root}/lib/training.py:12: UserWarning: something\n"
    executed = notebook_with_output(tmp_path / "05_evaluation.ipynb", warning)
    page = render.render_notebook_html(executed, reports / "05_evaluation.html")
    index = render.write_index(reports, [("05_evaluation", page)], pages,
                               {"dataset": paths.portable(dataset)}, [out / "main.csv"])
    for path in [*pages, page, index, *out.iterdir()]:
        if path.suffix != ".png":
            assert root not in path.read_text(encoding="utf-8"), path
    assert "lib/training.py:12: UserWarning" in page.read_text()
    text = index.read_text()
    assert "dataset: data/scenes" in text
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
