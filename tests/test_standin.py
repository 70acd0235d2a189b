"""Stand-in images for a real annotation folder (the Corel-5k rehearsal): format, fidelity
to the real annotations, determinism, label-dependent content."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.core import paths
from lib.core.paths import ROOT
from lib.data import datasets
from lib.data.drawn import standin, standin_draw

LIMIT = 6


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _samples(root: Path, split: str) -> list[dict]:
    return json.loads((root / f"{split}.json").read_text(encoding="utf-8"))["samples"]


@pytest.fixture(scope="session")
def corel_annotations() -> Path:
    """The real Corel-5k annotation folder ($AIA_COREL5K_ANNOTATIONS, default
    ../shared/corel5k beside the checkout); a failure naming the folder when absent."""
    path = Path(os.environ.get("AIA_COREL5K_ANNOTATIONS",
                               paths.ROOT.parent / "shared" / "corel5k"))
    if not (path / "train.json").is_file():
        pytest.fail(f"Corel-5k annotation files not found: {path / 'train.json'} is missing "
                    "(../shared/corel5k beside the checkout, or set AIA_COREL5K_ANNOTATIONS)",
                    pytrace=False)
    return path


@pytest.fixture
def handmade(tmp_path) -> Path:
    """A small annotation folder written by hand: val.json, vocabulary.txt, an unlabelled
    image, a hyphenated label, a name in a subfolder, a .jpg and a .png name."""
    root = tmp_path / "ann"
    root.mkdir()
    vocab = ["sky", "sea", "f-16", "jet", "statue", "buildings"]
    (root / "vocabulary.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    splits = {
        "train": [("1.jpeg", ["sky", "f-16", "jet"]), ("2.jpeg", []),
                  ("sub/3.jpg", ["statue", "buildings"]), ("4.png", ["sea", "sky"])],
        "val": [("5.jpeg", ["jet", "sky"])],
        "test": [("6.jpeg", ["statue"]), ("7.jpeg", ["sea", "f-16"])],
    }
    for split, samples in splits.items():
        (root / f"{split}.json").write_text(json.dumps(
            {"labels": vocab, "samples": [{"image_name": n, "image_labels": ls}
                                          for n, ls in samples]}), encoding="utf-8")
    return root


# --------------------------------------------------------------------------- fast tests


def test_handmade_folder(handmade, tmp_path):
    out = standin.generate_standin(handmade, tmp_path / "out", seed=0, progress=False)
    for name in ("train.json", "val.json", "test.json", "vocabulary.txt"):
        assert (out / name).read_bytes() == (handmade / name).read_bytes(), name
    ds = datasets.load_dataset(out, check_images=True)
    src = datasets.load_dataset(handmade, check_images=False)
    assert ds.labels == src.labels
    for split in ("train", "val", "test"):
        assert ds.splits[split].names == src.splits[split].names
        np.testing.assert_array_equal(ds.splits[split].targets, src.splits[split].targets)
    formats = {}
    for path in sorted((out / "images").rglob("*.*")):
        with Image.open(path) as img:
            formats[str(path.relative_to(out / "images"))] = img.format
            assert img.mode == "RGB" and img.size in {(192, 128), (128, 192)}
    assert formats == {"1.jpeg": "JPEG", "2.jpeg": "JPEG", "sub/3.jpg": "JPEG", "4.png": "PNG",
                       "5.jpeg": "JPEG", "6.jpeg": "JPEG", "7.jpeg": "JPEG"}
    meta = json.loads((out / "standin.json").read_text())
    assert meta["stand_in"] is True and "not Corel images" in meta["note"]
    assert meta["generator"] == "lib.standin" and meta["seed"] == 0
    assert meta["source"] == str(handmade) and meta["limit"] is None
    assert meta["counts"]["images"] == {"train": 4, "val": 1, "test": 2}
    assert meta["counts"]["unlabelled"] == {"train": 1, "val": 0, "test": 0}
    assert meta["counts"]["landscape"] + meta["counts"]["portrait"] == 7
    assert meta["scene_labels"] == {"sky": "sky", "sea": "sea", "buildings": "building"}
    assert set(meta["marks"]) == {"f-16", "jet", "statue"}
    assert sorted(meta["copied"]) == ["test.json", "train.json", "val.json", "vocabulary.txt"]
    for name in meta["portrait_images"]:
        with Image.open(out / "images" / name) as img:
            assert img.size == (128, 192)


def test_is_standin_and_note(handmade, tmp_path, corel_annotations, tiny_scenes):
    out = standin.generate_standin(handmade, tmp_path / "out", progress=False)
    assert standin.is_standin(out) and standin.is_standin(str(out))
    note = standin.standin_note(out)
    assert note == standin.NOTE and "not comparable with published Corel-5k results" in note
    for real in (handmade, corel_annotations, tiny_scenes, tmp_path / "missing"):
        assert not standin.is_standin(real)
        assert standin.standin_note(real) is None
    # a damaged manifest still marks the folder as a stand-in
    (out / "standin.json").write_text("{not json")
    assert standin.is_standin(out) and standin.standin_note(out) == standin.NOTE


def test_corel_subset(corel_annotations, tmp_path):
    out = standin.generate_standin(corel_annotations, tmp_path / "c", seed=0, limit=LIMIT,
                                   progress=False)
    for split in ("train", "test"):
        real = json.loads((corel_annotations / f"{split}.json").read_text())
        copy = json.loads((out / f"{split}.json").read_text())
        assert copy["labels"] == real["labels"] and len(copy["labels"]) == 260
        assert copy["samples"] == real["samples"][:LIMIT]
    assert not (out / "train_aug.json").exists() and not (out / "val.json").exists()
    names = {s["image_name"] for sp in ("train", "test") for s in _samples(out, sp)}
    assert {p.name for p in (out / "images").iterdir()} == names == {
        "1000.jpeg", "1003.jpeg", "1004.jpeg", "1005.jpeg", "1006.jpeg", "1007.jpeg",
        "1001.jpeg", "1002.jpeg", "1024.jpeg", "1029.jpeg", "1055.jpeg", "1061.jpeg"}
    datasets.load_dataset(out, check_images=True)
    meta = json.loads((out / "standin.json").read_text())
    assert meta["limit"] == LIMIT and meta["counts"]["total"] == 2 * LIMIT
    assert meta["counts"]["labels"] == 260
    assert meta["counts"]["scene_labels"] + meta["counts"]["mark_labels"] == 260


def test_same_seed_same_bytes_other_seed_differs(corel_annotations, tmp_path):
    a = _hashes(standin.generate_standin(corel_annotations, tmp_path / "a", seed=3, limit=4,
                                         progress=False))
    b = _hashes(standin.generate_standin(corel_annotations, tmp_path / "b", seed=3, limit=4,
                                         progress=False))
    c = _hashes(standin.generate_standin(corel_annotations, tmp_path / "c", seed=4, limit=4,
                                         progress=False))
    assert a == b and len(a) == 8 + 3  # images, two split files, the manifest
    assert a.keys() == c.keys()
    differing = {k for k in a if a[k] != c[k]}
    assert {k for k in a if k.startswith("images/")} <= differing
    assert "standin.json" in differing and "train.json" not in differing


def test_an_image_depends_only_on_seed_and_name(handmade, tmp_path):
    """The subset run and the full run draw the same bytes for the same image."""
    full = _hashes(standin.generate_standin(handmade, tmp_path / "full", progress=False))
    part = _hashes(standin.generate_standin(handmade, tmp_path / "part", limit=1,
                                            progress=False))
    images = {k: v for k, v in part.items() if k.startswith("images/")}
    assert set(images) == {"images/1.jpeg", "images/5.jpeg", "images/6.jpeg"}
    assert all(full[k] == v for k, v in images.items())


def test_regenerating_replaces_an_earlier_draw(handmade, tmp_path):
    out = tmp_path / "d"
    standin.generate_standin(handmade, out, seed=1, progress=False)
    standin.generate_standin(handmade, out, seed=0, limit=1, progress=False)
    fresh = standin.generate_standin(handmade, tmp_path / "fresh", seed=0, limit=1,
                                     progress=False)
    assert _hashes(out) == _hashes(fresh)


def test_regenerating_warns_about_stale_fakes(handmade, tmp_path):
    out = standin.generate_standin(handmade, tmp_path / "d", seed=0, progress=False)
    (out / "train_aug.json").write_text(json.dumps({"samples": []}))
    standin.generate_standin(handmade, out, seed=0, progress=False)  # same images: silent
    with pytest.warns(UserWarning, match="train_aug.json.*augment"):
        standin.generate_standin(handmade, out, seed=1, progress=False)
    assert (out / "train_aug.json").exists()  # fakes are the user's, never deleted


def test_interrupted_run_does_not_look_complete(handmade, tmp_path, monkeypatch):
    out = standin.generate_standin(handmade, tmp_path / "d", progress=False)
    real = standin.draw_standin
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(standin, "draw_standin", failing)
    with pytest.raises(KeyboardInterrupt):
        standin.generate_standin(handmade, out, seed=1, progress=False)
    for name in ("train.json", "val.json", "test.json", "vocabulary.txt", "standin.json"):
        assert not (out / name).exists(), name
    assert not list((out / "images").rglob(".*.tmp"))


def test_bad_input(handmade, tmp_path, tiny_scenes):
    foreign = tmp_path / "foreign"
    shutil.copytree(tiny_scenes, foreign)
    before = _hashes(foreign)
    with pytest.raises(FileExistsError, match="not a stand-in"):
        standin.generate_standin(handmade, foreign, progress=False)
    assert _hashes(foreign) == before
    with pytest.raises(ValueError, match="annotation folder itself"):
        standin.generate_standin(handmade, handmade, progress=False)
    with pytest.raises(datasets.DatasetError, match="not found"):
        standin.generate_standin(tmp_path / "nowhere", tmp_path / "x", progress=False)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            standin.generate_standin(handmade, tmp_path / "x", seed=bad, progress=False)
    with pytest.raises(ValueError, match="limit"):
        standin.generate_standin(handmade, tmp_path / "x", limit=0, progress=False)

    obj = json.loads((handmade / "test.json").read_text())
    obj["samples"][0]["image_labels"] = ["unicorn"]
    (handmade / "test.json").write_text(json.dumps(obj))
    with pytest.raises(datasets.DatasetError, match=r"test\.json.*'unicorn'"):
        standin.generate_standin(handmade, tmp_path / "y", progress=False)
    obj["samples"][0] = {"image_name": "6.tiff", "image_labels": []}
    (handmade / "test.json").write_text(json.dumps(obj))
    with pytest.raises(ValueError, match=r"test\.json: image '6\.tiff'"):
        standin.generate_standin(handmade, tmp_path / "y", progress=False)
    assert not (tmp_path / "y").exists()  # checked before anything is written


def test_mark_table():
    corel_like = [f"label{i}" for i in range(219)] + ["f-16", "close-up", "white-tailed"]
    table = standin_draw.mark_table(corel_like)
    assert list(table) == corel_like
    marks = list(table.values())
    assert len(set(marks)) == len(marks)
    assert len({(m.colour, m.accent) for m in marks}) == len(marks)
    assert all(m.colour != m.accent for m in marks)
    assert standin_draw.mark_table(corel_like[::-1]) == table  # order does not matter
    # a label alone gets the mark its hash says; with others, collisions may move it
    alone = standin_draw.mark_table(["jet"])["jet"]
    assert alone == standin_draw.mark_table(["jet"])["jet"]
    assert alone.shape in standin_draw.SHAPES and alone.texture in standin_draw.TEXTURES
    too_many = len(standin_draw.PALETTE) * (len(standin_draw.PALETTE) - 1) + 1
    with pytest.raises(ValueError, match="distinct marks"):
        standin_draw.mark_table([f"x{i}" for i in range(too_many)])


def test_every_scene_object_draws():
    objects = sorted(set(standin_draw.SCENE_LABELS.values()))
    sets = [set()] + [{o} for o in objects] + [set(objects)]
    sets += [{"sky", "sea", "beach", "boat", "people"}, {"fish", "coral", "water"},
             {"building", "road", "car"}, {"moon", "stars", "house"}]
    for k, objs in enumerate(sets):
        rng = np.random.default_rng(k)
        img = standin_draw.render(rng, objs, [], (192, 128))
        assert img.size == (192, 128) and img.mode == "RGB"
    with pytest.raises(ValueError, match="unicorn"):
        standin_draw.render(np.random.default_rng(0), {"unicorn"}, [], (192, 128))


def test_marks_are_drawn(tmp_path):
    """An image of one mark label holds that mark's two colours; the plain backdrop alone
    (no labels) does not."""
    mark = standin_draw.Mark("square", (240, 20, 20), (20, 20, 240), "checker")

    def share(marks: list) -> tuple[float, float]:
        img = standin_draw.render(np.random.default_rng(7), set(), marks, (192, 128))
        a = np.asarray(img, dtype=float)
        red = ((a[..., 0] > 150) & (a[..., 1] < 90) & (a[..., 2] < 90)).mean()
        blue = ((a[..., 2] > 150) & (a[..., 0] < 90) & (a[..., 1] < 90)).mean()
        return red, blue

    red, blue = share([mark])
    assert red > 0.004 and blue > 0.004  # about 1 % of the image each
    assert share([]) == (0.0, 0.0)


def test_cli(handmade, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lib.data.drawn.standin", "ann", "cli", "--seed", "2"],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "wrote 4 train, 1 val, 2 test stand-in images" in proc.stdout
    assert "not Corel images" in proc.stdout
    api = standin.generate_standin(handmade, tmp_path / "api", seed=2, progress=False)
    cli_hashes, api_hashes = _hashes(tmp_path / "cli"), _hashes(api)
    meta = json.loads((tmp_path / "cli" / "standin.json").read_text())
    assert meta["source"] == "ann"  # recorded as given
    assert cli_hashes.pop("standin.json") != api_hashes.pop("standin.json")
    assert cli_hashes == api_hashes
    bad = subprocess.run([sys.executable, "-m", "lib.data.drawn.standin", "nowhere", "x"],
                         cwd=tmp_path,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert bad.returncode == 2 and "nowhere" in bad.stderr and "not found" in bad.stderr


def test_cli_command_is_registered(handmade, tmp_path):
    from lib import cli

    assert "standin" in cli.COMMANDS, "`standin` is missing from lib.cli.COMMANDS"
    assert cli.main(["standin", str(handmade), str(tmp_path / "o"), "--limit", "1"]) == 0
    assert standin.is_standin(tmp_path / "o")


# --------------------------------------------------------------------------- the whole folder


@pytest.fixture(scope="session")
def corel_standin(corel_annotations, tmp_path_factory) -> Path:
    """The whole Corel-5k stand-in (4,999 images, about 20 s on 2 cores), drawn once."""
    return standin.generate_standin(corel_annotations,
                                    tmp_path_factory.mktemp("standin") / "corel5k-standin",
                                    seed=0, progress=False)


@pytest.mark.slow
def test_whole_corel_folder(corel_standin, corel_annotations):
    out, src = corel_standin, corel_annotations
    for split in ("train", "test"):
        assert (out / f"{split}.json").read_bytes() == (src / f"{split}.json").read_bytes()
    assert not (out / "train_aug.json").exists()
    ds = datasets.load_dataset(out, check_images=True)
    with pytest.warns(UserWarning, match="carved into the validation split"):
        real = datasets.load_dataset(src, check_images=False)  # the source has train_aug.json
    assert ds.labels == real.labels and len(ds.labels) == 260
    assert {"f-16", "close-up", "white-tailed"} <= set(ds.labels)
    for split in ("train", "val", "test"):
        assert ds.splits[split].names == real.splits[split].names
        np.testing.assert_array_equal(ds.splits[split].targets, real.splits[split].targets)
    stats, real_stats = datasets.dataset_statistics(ds), datasets.dataset_statistics(real)
    assert real_stats.pop("n_augmented") == 13500 and "n_augmented" not in stats
    assert stats == real_stats
    assert stats["n_images"] == {"train": 4500, "test": 499}
    assert stats["images_without_labels_per_split"] == {"train": 7, "test": 0}
    assert stats["n_label_assignments"] == 16979

    files = {p.name for p in (out / "images").iterdir()}
    names = [s["image_name"] for sp in ("train", "test") for s in _samples(out, sp)]
    assert files == set(names) and len(names) == 4999
    sizes: Counter = Counter()
    for name in names:
        with Image.open(out / "images" / name) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            sizes[img.size] += 1
    assert set(sizes) == {(192, 128), (128, 192)}
    assert 0.2 < sizes[(128, 192)] / 4999 < 0.3
    meta = json.loads((out / "standin.json").read_text())
    assert meta["counts"]["portrait"] == sizes[(128, 192)] == len(meta["portrait_images"])
    assert meta["counts"]["unlabelled"] == {"train": 7, "test": 0}
    assert meta["counts"]["mark_labels"] == len(meta["marks"]) == 219
    assert standin.is_standin(out) and not standin.is_standin(src)


@pytest.mark.slow
def test_whole_folder_is_deterministic(corel_standin, corel_annotations, tmp_path):
    sample = [s["image_name"] for s in _samples(corel_annotations, "train")[:5]]
    again = standin.generate_standin(corel_annotations, tmp_path / "again", seed=0, limit=5,
                                     progress=False)
    other = standin.generate_standin(corel_annotations, tmp_path / "other", seed=1, limit=5,
                                     progress=False)
    for name in sample:
        full = (corel_standin / "images" / name).read_bytes()
        assert (again / "images" / name).read_bytes() == full
        assert (other / "images" / name).read_bytes() != full


def _colour_histograms(root: Path, names: list[str]) -> np.ndarray:
    """Square roots of 4 x 4 x 4 joint RGB histograms (fractions of the pixels)."""
    out = np.empty((len(names), 64))
    for i, name in enumerate(names):
        a = np.asarray(Image.open(root / "images" / name).convert("RGB")) // 64
        q = (a[..., 0].astype(np.int64) * 16 + a[..., 1] * 4 + a[..., 2]).ravel()
        out[i] = np.sqrt(np.bincount(q, minlength=64) / q.size)
    return out


@pytest.mark.slow
def test_content_depends_on_the_labels(corel_standin):
    """A linear classifier on colour histograms, trained on the stand-in training images,
    finds frequent labels on the held-out test images: the marks (labels the scenes engine
    cannot draw) and the drawn scene labels alike; with shuffled training labels it does
    not."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    train, test = _samples(corel_standin, "train"), _samples(corel_standin, "test")
    x_train = _colour_histograms(corel_standin, [s["image_name"] for s in train])
    x_test = _colour_histograms(corel_standin, [s["image_name"] for s in test])
    counts = Counter(x for s in train for x in s["image_labels"])
    marked = [x for x, _ in counts.most_common() if x not in standin_draw.SCENE_LABELS][:6]
    assert marked[:3] == ["stone", "street", "bear"]  # the most frequent mark labels
    shuffle = np.random.default_rng(0).permutation(len(train))
    for label in marked + ["sky", "water", "buildings"]:
        y_train = np.array([label in s["image_labels"] for s in train])
        y_test = np.array([label in s["image_labels"] for s in test])
        assert y_test.sum() >= 10, label
        clf = LogisticRegression(C=10, max_iter=2000).fit(x_train, y_train)
        auc = roc_auc_score(y_test, clf.predict_proba(x_test)[:, 1])
        assert auc > 0.85, (label, auc)
        if label in marked[:2]:
            null = LogisticRegression(C=10, max_iter=2000).fit(x_train, y_train[shuffle])
            null_auc = roc_auc_score(y_test, null.predict_proba(x_test)[:, 1])
            assert 0.25 < null_auc < 0.75, (label, null_auc)


# --------------------------------------------------------------------------- the benchmark


def test_corel_memory_benchmark_harness(corel_annotations, tmp_path, monkeypatch):
    """benchmarks/corel_memory.py on a few images: its placeholder fakes carry the names and
    labels of the real Corel train_aug.json, and the cache has the expected size."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))   # its helpers beside it
    spec = importlib.util.spec_from_file_location(
        "corel_memory", ROOT / "benchmarks" / "corel_memory.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setenv("AIA_BENCH_DIR", str(tmp_path / "bench"))
    work = tmp_path / "work"
    assert bench.main(["--annotations", str(corel_annotations), "--limit", "4", "--size", "32",
                       "--work", str(work), "--keep"]) == 0
    result = json.loads((tmp_path / "bench" / "corel_memory.json").read_text())
    assert result["n_train_real"] == 4 and result["n_train_aug"] == 12
    build = result["steps"]["train_cache_build"]
    assert build["images"] == 16
    header = 128  # .npy header of a small uint8 array
    assert build["cache_bytes"] == header + 16 * 32 * 32 * 3
    assert result["steps"]["epoch_read"]["batches"] == 1
    for step in result["steps"].values():
        assert 0 < step["peak_vmrss_gb"] and step["peak_anon_gb"] <= step["peak_vmrss_gb"]
    root = work / "corel5k-standin"
    fakes = json.loads((root / "train_aug.json").read_text())["samples"]
    real = json.loads((corel_annotations / "train_aug.json").read_text())["samples"]
    assert fakes == real[:12]
    for sample in fakes:
        with Image.open(root / "images" / sample["image_name"]) as img:
            rotated = sample["image_name"].endswith("_rot_90.jpeg")
            assert img.format == "JPEG" and img.size == ((128, 192) if rotated else (192, 128))
    assert standin.is_standin(root)
    assert list((work / "data" / "cache" / "images").glob("corel5k-standin-*-32px-*.npy"))
