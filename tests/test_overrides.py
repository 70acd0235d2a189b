"""``overrides`` as papermill users pass it: a mapping, JSON or YAML text (``-p``), ``-y``."""

from __future__ import annotations

import pytest

from lib.core.config import ConfigError, parse_overrides
from lib.training import settings


@pytest.mark.parametrize("value, expected", [
    ({"epochs": 1}, {"epochs": 1}),
    ('{"epochs": 1, "head": "linear"}', {"epochs": 1, "head": "linear"}),   # -p JSON text
    ("epochs: 2\nloss: bce", {"epochs": 2, "loss": "bce"}),                   # YAML text
    ("{epochs: 3}", {"epochs": 3}),
    ("", {}), ("  ", {}), (None, {}), ({}, {}),
])
def test_accepted_forms(value, expected):
    assert parse_overrides(value) == expected


@pytest.mark.parametrize("value, problem", [
    ('{"epochs": 1', "is not JSON/YAML text"),
    ("[1, 2]", "is a list"),
    ("epochs", "is a str"),
    (3, "is a int"),
])
def test_other_forms_are_one_line_errors_showing_the_right_form(value, problem):
    with pytest.raises(ConfigError) as err:
        parse_overrides(value, "notebook 04")
    text = str(err.value)
    assert text.startswith("notebook 04: overrides") and problem in text
    assert "\n" not in text and """-p overrides '{"epochs": 1}'""" in text


def test_build_config_takes_text_overrides():
    config = settings.build_config("default", '{"epochs": 1, "head": "linear"}')
    assert (config.epochs, config.head) == (1, "linear")
    with pytest.raises(ConfigError, match="unknown TrainConfig settings"):
        settings.build_config("default", "{epoch: 1}")


@pytest.mark.slow
def test_notebook_04_with_overrides_as_papermill_p_passes_them(tiny_scenes, tmp_path):
    """``papermill -p overrides '{...}'`` hands the notebook a string."""
    import json

    from conftest import run_notebook

    from lib.core import paths
    from lib.training.runs import RunFolder

    text = json.dumps({"epochs": 1, "image_size": 32, "batch_size": 16})
    out = run_notebook("04_training", {"run_name": "nb-text", "dataset": str(tiny_scenes),
                                       "overrides": text}, tmp_path)
    cfg = RunFolder(paths.run_dir("nb-text") / "seed-0").config
    assert (cfg["epochs"], cfg["image_size"], cfg["batch_size"]) == (1, 32, 16)
    import nbformat

    nb = nbformat.read(out, as_version=4)
    streams = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.outputs if o.output_type == "stream")
    assert "nb-text seed 0 · epoch 1/1 · train loss" in streams   # one line per epoch
    assert "it/s" not in streams and "%|" not in streams           # no progress-bar snapshots
