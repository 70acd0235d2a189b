"""lib.utils: atomic writes keep content and the usual file mode; records round-trip."""

import json
import os
import stat

import pytest

from lib import utils


def test_atomic_write_replaces_content_with_the_usual_mode(tmp_path):
    target = tmp_path / "sub" / "a.json"
    utils.atomic_write_json(target, {"x": 1})
    utils.atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]  # no temporary left


def test_atomic_save_keeps_the_suffix_and_cleans_up_on_failure(tmp_path):
    seen = []
    utils.atomic_save(tmp_path / "f.png", lambda p: (seen.append(p.suffix), p.write_bytes(b"1")))
    assert seen == [".png"] and (tmp_path / "f.png").read_bytes() == b"1"

    def broken(p):
        p.write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        utils.atomic_save(tmp_path / "f.png", broken)
    assert (tmp_path / "f.png").read_bytes() == b"1"  # the old file survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_records_round_trip_through_a_notebook_file(tmp_path):
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {utils.RECORD_MIMETYPE: {"f1": 0.5}}},
        {"output_type": "display_data", "data": {utils.RECORD_MIMETYPE: {"n": 3}}},
    ]}]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    assert utils.notebook_records(path) == {"f1": 0.5, "n": 3}
