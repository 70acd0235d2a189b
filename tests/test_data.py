"""lib.data.datasets: the Corel-5k JSON format, its errors, the real Corel-5k statistics, the
CLI."""

from __future__ import annotations

import json
import struct
import warnings
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lib import cli
from lib.core import paths
from lib.data import datasets
from lib.data.datasets import DatasetError

VOCAB = ["sky", "sea", "tree", "sun"]
TRAIN = [("t1.png", ["sky", "sea"]), ("t2.png", ["tree"]), ("t3.png", []),
         ("t4.png", ["sky", "sun", "tree"]), ("t5.png", ["sea"]), ("t6.png", ["sky"]),
         ("t7.png", ["sky", "tree"]), ("t8.png", ["sun"]), ("t9.png", ["sea", "sky"]),
         ("t10.png", ["tree", "sky"])]
TEST = [("s1.png", ["sky"]), ("s2.png", ["tree", "sea"])]


def write_split(path: Path, samples, labels=VOCAB) -> None:
    obj = {"samples": [{"image_name": n, "image_labels": list(ls)} for n, ls in samples]}
    if labels is not None:
        obj["labels"] = list(labels)
    path.write_text(json.dumps(obj))


def make_dataset(root: Path, train=TRAIN, test=TEST, val=None, aug=None, images=True,
                 labels=VOCAB) -> Path:
    """A small dataset folder; images are non-square PNGs of a few pixels."""
    root.mkdir(parents=True, exist_ok=True)
    write_split(root / "train.json", train, labels)
    write_split(root / "test.json", test, labels)
    if val is not None:
        write_split(root / "val.json", val, labels)
    if aug is not None:
        write_split(root / "train_aug.json", aug, labels=None)
    if images:
        (root / "images").mkdir(exist_ok=True)
        for k, (name, _) in enumerate([*train, *test, *(val or []), *(aug or [])]):
            Image.new("RGB", (7, 5), (k * 20 % 255, 10, 200)).save(root / "images" / name)
    return root


# --------------------------------------------------------------------------- loading


def test_load_targets_vocabulary_and_carved_val(tmp_path):
    root = make_dataset(tmp_path / "ds")
    ds = datasets.load_dataset(root, val_fraction=0.2, seed=3)
    assert ds.labels == VOCAB and ds.val_carved and ds.image_dir == root / "images"
    assert list(ds.splits) == ["train", "val", "test"]
    assert len(ds.splits["val"]) == 2 and len(ds.splits["train"]) == 8
    # the carve partitions train.json and keeps file order in both parts
    names = [n for n, _ in TRAIN]
    assert sorted(ds.splits["train"].names + ds.splits["val"].names) == sorted(names)
    for split in ("train", "val"):
        got = ds.splits[split].names
        assert got == sorted(got, key=names.index)
    # every row matches its JSON labels; an image without labels is kept as a zero row
    truth = dict(TRAIN + TEST)
    for split in ("train", "val", "test"):
        part = ds.splits[split]
        assert part.targets.dtype == np.uint8 and part.targets.shape == (len(part), 4)
        for name, row in zip(part.names, part.targets, strict=True):
            assert [VOCAB[j] for j in np.flatnonzero(row)] == [
                x for x in VOCAB if x in truth[name]]
    # deterministic in the seed
    again = datasets.load_dataset(root, val_fraction=0.2, seed=3)
    assert again.splits["val"].names == ds.splits["val"].names
    others = {tuple(datasets.load_dataset(root, val_fraction=0.2, seed=s).splits["val"].names)
              for s in range(6)}
    assert len(others) > 1
    assert ds.image_path("t1.png") == root / "images" / "t1.png"


def test_val_json_and_vocabulary_file(tmp_path):
    val = [("v1.png", ["sun"])]
    root = make_dataset(tmp_path / "ds", val=val, labels=None)
    (root / "vocabulary.txt").write_text("\n".join(VOCAB) + "\n")
    ds = datasets.load_dataset(root)
    assert not ds.val_carved and ds.labels == VOCAB
    assert ds.splits["val"].names == ["v1.png"] and len(ds.splits["train"]) == len(TRAIN)
    assert ds.splits["val"].targets.tolist() == [[0, 0, 0, 1]]


def test_annotation_only_without_images(tmp_path):
    root = make_dataset(tmp_path / "ds", images=False)
    ds = datasets.load_dataset(root, check_images=False)
    assert sum(len(s) for s in ds.splits.values()) == len(TRAIN) + len(TEST)
    stats = datasets.dataset_statistics(ds)
    assert stats["n_images"] == {"train": len(TRAIN), "test": len(TEST)}
    assert stats["images_without_labels"] == 1
    assert datasets.example_images(ds, 4) == ([], [])
    with pytest.raises(DatasetError, match="images folder is missing"):
        datasets.load_dataset(root)


def test_train_aug_and_statistics(tmp_path):
    aug = [("t1_aug.png", ["sky", "sea"]), ("t1_aug_hor_flip.png", ["sky", "sea"]),
           ("t2_aug_rot_90.png", ["tree"]), ("t3_aug.png", [])]
    root = make_dataset(tmp_path / "ds", aug=aug)
    full = datasets.load_dataset(root, val_fraction=0.0)
    assert len(full.splits["val"]) == 0 and full.splits["train_aug"].names == [n for n, _ in aug]
    stats = datasets.dataset_statistics(full)
    # train_aug is counted separately and in no statistic
    assert stats["n_images"] == {"train": 10, "test": 2} and stats["n_augmented"] == 4
    assert stats["n_label_assignments"] == 15 + 3
    assert stats["mean_labels_per_image"] == pytest.approx(18 / 12)
    assert stats["max_labels_per_image"] == 3 and stats["images_without_labels"] == 1
    assert stats["label_counts"] == {"sky": 7, "sea": 4, "tree": 5, "sun": 2}
    assert stats["labels_absent"] == {"train": [], "test": ["sun"]}
    # carving val: fakes of carved images leave train_aug (with a warning), stats unchanged
    with pytest.warns(UserWarning, match="carved into the validation split"):
        ds = datasets.load_dataset(root, val_fraction=0.5, seed=0)
    val_stems = {Path(n).stem for n in ds.splits["val"].names}
    held = [n for n, _ in aug if datasets.aug_source_stem(n) in val_stems]
    assert held and ds.aug_held_out == held
    assert ds.splits["train_aug"].names == [n for n, _ in aug if n not in held]
    assert datasets.dataset_statistics(ds) == stats
    table = datasets.label_table(ds)
    assert table["label"].tolist() == ["sky", "tree", "sea", "sun"]
    assert table["train"].tolist() == [6, 4, 3, 2] and table["test"].tolist() == [1, 1, 1, 0]
    assert datasets.aug_source_stem("1000_aug_rot_90.jpeg") == "1000"
    assert datasets.aug_source_stem("1000.jpeg") is None


# --------------------------------------------------------------------------- bad input


def _rewrite(path: Path, edit) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


@pytest.mark.parametrize("case, pattern", [
    ("no_folder", r"nowhere: dataset folder not found"),
    ("no_train", r"train\.json: required train file is missing"),
    ("no_test", r"test\.json: required test file is missing"),
    ("bad_json", r"train\.json: malformed JSON"),
    ("not_object", r"test\.json: expected a JSON object"),
    ("no_samples", r"test\.json: missing the 'samples' key"),
    ("no_image_name", r"train\.json: sample #1 has no 'image_name' key"),
    ("no_labels_key", r"train\.json: sample #0 has no 'image_labels' key"),
    ("unknown_label", r"test\.json: image 's2\.png' has label 'dog', which is not in the voc"),
    ("duplicate", r"train\.json: duplicate image name 't2\.png' \(samples #1 and #3\)"),
    ("overlap", r"train\.json and .*test\.json share 1 image\(s\), e\.g\. \['t5\.png'\]"),
    ("val_overlap", r"val\.json and .*test\.json share 1 image"),
    ("vocab_disagree", r"test\.json: its 'labels' disagree .*train\.json: missing \['sun'\]"),
    ("vocab_order", r"test\.json: its 'labels' disagree .*different order"),
    ("vocab_file_disagree", r"train\.json: its 'labels' disagree .*vocabulary\.txt.*extra"),
    ("no_vocabulary", r"no vocabulary"),
    ("repeated_label", r"train\.json: image 't1\.png' lists a label twice"),
    ("missing_image", r"images/t4\.png: image listed in .*train\.json is missing"),
    ("corrupt_image", r"images/s1\.png: unreadable image listed in .*test\.json"),
])
def test_bad_input_names_file_and_problem(tmp_path, case, pattern):
    root = make_dataset(tmp_path / "ds", val=[("v1.png", ["sun"])])
    if case == "no_folder":
        root = tmp_path / "nowhere"
    elif case == "no_train":
        (root / "train.json").unlink()
    elif case == "no_test":
        (root / "test.json").unlink()
    elif case == "bad_json":
        (root / "train.json").write_text('{"samples": [')
    elif case == "not_object":
        (root / "test.json").write_text("[1, 2]")
    elif case == "no_samples":
        _rewrite(root / "test.json", lambda o: o.pop("samples"))
    elif case == "no_image_name":
        _rewrite(root / "train.json", lambda o: o["samples"][1].pop("image_name"))
    elif case == "no_labels_key":
        _rewrite(root / "train.json", lambda o: o["samples"][0].pop("image_labels"))
    elif case == "unknown_label":
        _rewrite(root / "test.json", lambda o: o["samples"][1]["image_labels"].append("dog"))
    elif case == "duplicate":
        _rewrite(root / "train.json", lambda o: o["samples"][3].update(image_name="t2.png"))
    elif case == "overlap":
        _rewrite(root / "test.json", lambda o: o["samples"][0].update(image_name="t5.png"))
    elif case == "val_overlap":
        _rewrite(root / "val.json", lambda o: o["samples"][0].update(image_name="s2.png"))
    elif case == "vocab_disagree":
        _rewrite(root / "test.json", lambda o: o["labels"].remove("sun"))
    elif case == "vocab_order":
        _rewrite(root / "test.json", lambda o: o["labels"].reverse())
    elif case == "vocab_file_disagree":
        (root / "vocabulary.txt").write_text("sky\nsea\ntree\n")
    elif case == "no_vocabulary":
        for name in ("train.json", "test.json", "val.json"):
            _rewrite(root / name, lambda o: o.pop("labels"))
    elif case == "repeated_label":
        _rewrite(root / "train.json", lambda o: o["samples"][0]["image_labels"].append("sky"))
    elif case == "missing_image":
        (root / "images" / "t4.png").unlink()
    elif case == "corrupt_image":
        (root / "images" / "s1.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DatasetError, match=pattern):
        datasets.load_dataset(root)


def test_image_checks_cover_train_aug_and_can_be_skipped(tmp_path):
    root = make_dataset(tmp_path / "ds", aug=[("t1_aug.png", ["sky"])])
    (root / "images" / "t1_aug.png").unlink()
    with pytest.raises(DatasetError, match=r"t1_aug\.png: image listed in .*train_aug\.json"):
        datasets.load_dataset(root)
    assert len(datasets.load_dataset(root, check_images=False).splits["train_aug"]) == 1


def test_train_aug_overlapping_test_is_an_error(tmp_path):
    root = make_dataset(tmp_path / "ds", aug=[("s1.png", ["sky"])], images=False)
    with pytest.raises(DatasetError, match=r"test\.json and .*train_aug\.json share"):
        datasets.load_dataset(root, check_images=False)


def test_image_names_are_normalised_before_overlap_and_duplicate_checks(tmp_path):
    # './t5.png' in test.json is train.json's t5.png: a training image scored as a test image
    root = make_dataset(tmp_path / "ds")
    _rewrite(root / "test.json", lambda o: o["samples"][0].update(image_name="./t5.png"))
    with pytest.raises(DatasetError, match=r"train\.json and .*test\.json share 1 image\(s\), "
                                           r"e\.g\. \['t5\.png'\]"):
        datasets.load_dataset(root)
    # 'x.png' and './x.png' in one file are the same image
    root = make_dataset(tmp_path / "ds2")
    _rewrite(root / "train.json", lambda o: o["samples"][3].update(image_name="./t2.png"))
    with pytest.raises(DatasetError, match=r"train\.json: duplicate image name 't2\.png' "
                                           r"\(samples #1 and #3, written 't2\.png' and "
                                           r"'\./t2\.png'\)"):
        datasets.load_dataset(root)
    # names are kept normalised: the image is found and the name is the canonical one
    root = make_dataset(tmp_path / "ds3")
    (root / "images" / "sub").mkdir()
    (root / "images" / "t1.png").rename(root / "images" / "sub" / "t1.png")
    _rewrite(root / "train.json", lambda o: o["samples"][0].update(image_name="sub//./t1.png"))
    ds = datasets.load_dataset(root, val_fraction=0.0)
    assert ds.splits["train"].names[0] == "sub/t1.png"
    assert datasets.normalise_image_name("./a/../b.png") == "b.png"


@pytest.mark.parametrize("name", ["../t1.png", "/etc/passwd", "sub/../../t1.png", ".", "./",
                                  "C:\\images\\t1.png"])
def test_image_names_outside_images_are_refused(tmp_path, name):
    root = make_dataset(tmp_path / "ds", images=False)
    _rewrite(root / "train.json", lambda o: o["samples"][2].update(image_name=name))
    with pytest.raises(DatasetError, match=r"train\.json: sample #2: image_name .* must be a "
                                           r"file inside images/"):
        datasets.load_dataset(root, check_images=False)


@pytest.mark.parametrize("split", ["train", "test", "val"])
def test_empty_split_files_are_refused(tmp_path, split):
    root = make_dataset(tmp_path / "ds", val=[("v1.png", ["sun"])], images=False)
    _rewrite(root / f"{split}.json", lambda o: o.update(samples=[]))
    with pytest.raises(DatasetError, match=rf"{split}\.json: no samples: the {split} split is "
                                           "empty"):
        datasets.load_dataset(root, check_images=False)


def test_a_carved_validation_split_must_not_be_empty(tmp_path):
    root = make_dataset(tmp_path / "ds", train=TRAIN[:1], images=False)
    with pytest.raises(DatasetError, match=r"train\.json: a validation split of 0\.1 cannot be "
                                           r"carved out of 1 image"):
        datasets.load_dataset(root, check_images=False)
    # val_fraction=0 asks for no validation split (statistics, augmentation)
    ds = datasets.load_dataset(root, check_images=False, val_fraction=0.0)
    assert len(ds.splits["train"]) == 1 and len(ds.splits["val"]) == 0


def test_sample_labels_are_stripped_like_the_vocabulary(tmp_path):
    root = make_dataset(tmp_path / "ds", images=False, labels=[" sky", "sea ", "tree", "sun"])
    _rewrite(root / "train.json", lambda o: o["samples"][0].update(image_labels=["sky ", " sea"]))
    ds = datasets.load_dataset(root, check_images=False, val_fraction=0.0)
    assert ds.labels == VOCAB and ds.splits["train"].targets[0].tolist() == [1, 1, 0, 0]
    _rewrite(root / "train.json", lambda o: o["samples"][0].update(image_labels=["sky", "sky "]))
    with pytest.raises(DatasetError, match=r"image 't1\.png' lists a label twice"):
        datasets.load_dataset(root, check_images=False)
    _rewrite(root / "train.json", lambda o: o["samples"][0].update(image_labels=["  "]))
    with pytest.raises(DatasetError, match=r"train\.json: image 't1\.png' has an empty label"):
        datasets.load_dataset(root, check_images=False)


def test_encodings_of_the_annotation_files(tmp_path):
    labels = [*VOCAB, "café"]
    root = make_dataset(tmp_path / "ds", images=False, labels=labels)
    obj = json.loads((root / "train.json").read_text())
    # a UTF-8 byte-order mark (Windows editors) is accepted
    (root / "train.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(obj).encode())
    assert datasets.load_dataset(root, check_images=False).labels[-1] == "café"
    # Latin-1 is refused with the file, the byte, its position and line
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    line = next(i for i, x in enumerate(text.splitlines(), 1) if "é" in x)
    (root / "train.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(DatasetError, match=rf"train\.json: not UTF-8 text \(byte 0xe9 at position "
                                           rf"{text.index('é')}, line {line}\); save the file as "
                                           "UTF-8"):
        datasets.load_dataset(root, check_images=False)
    (root / "train.json").write_text(json.dumps(obj))
    (root / "vocabulary.txt").write_bytes("\n".join(labels).encode("latin-1"))
    with pytest.raises(DatasetError, match=r"vocabulary\.txt: not UTF-8 text"):
        datasets.load_dataset(root, check_images=False)


# --------------------------------------------------------------------------- images


def test_read_image_and_image_dataset(tmp_path):
    import torch
    from torchvision.transforms import ToTensor

    Image.new("L", (9, 4), 128).save(tmp_path / "grey.png")
    Image.new("RGBA", (3, 6), (1, 2, 3, 4)).save(tmp_path / "alpha.png")
    (tmp_path / "bad.jpeg").write_bytes(b"\xff\xd8\xff garbage")
    img = datasets.read_image(tmp_path / "grey.png")
    assert img.mode == "RGB" and img.size == (9, 4) and img.getpixel((0, 0)) == (128,) * 3
    with pytest.raises(DatasetError, match=r"bad\.jpeg: unreadable image"):
        datasets.read_image(tmp_path / "bad.jpeg")
    with pytest.raises(DatasetError, match=r"gone\.png: image file is missing"):
        datasets.read_image(tmp_path / "gone.png")

    targets = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.uint8)
    dset = datasets.ImageDataset(tmp_path, ["grey.png", "alpha.png"], targets, ToTensor())
    assert len(dset) == 2
    x, y = dset[1]
    assert x.shape == (3, 6, 3) and y.dtype == torch.float32 and y.tolist() == [0, 1, 0]
    x, y = datasets.ImageDataset(tmp_path, ["grey.png"], None, num_labels=3)[0]
    assert isinstance(x, Image.Image) and y.tolist() == [0, 0, 0]
    with pytest.raises(DatasetError, match=r"bad\.jpeg"):
        datasets.ImageDataset(tmp_path, ["bad.jpeg"])[0]
    with pytest.raises(ValueError, match="targets must be"):
        datasets.ImageDataset(tmp_path, ["grey.png"], targets)


def png_bytes(array: np.ndarray, bit_depth: int, color_type: int,
              size: tuple[int, int] | None = None) -> bytes:
    """A PNG written by hand (not by PIL): ``color_type`` 0 grey, 2 RGB, 4 grey+alpha;
    ``size`` overrides the width and height the header claims."""
    h, w = array.shape[:2]
    w, h = size or (w, h)
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + np.ascontiguousarray(row, dtype=dtype).tobytes() for row in array)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body)))

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


#: a 16-bit grey gradient over the whole range, 0 and 65535 included
GRADIENT16 = np.round(np.linspace(0, 65535, 48)).astype(np.uint16).reshape(6, 8)


def test_16bit_png_is_scaled_not_white(tmp_path):
    (tmp_path / "g16.png").write_bytes(png_bytes(GRADIENT16, 16, 0))
    assert Image.open(tmp_path / "g16.png").mode == "I;16"  # what PIL hands us
    got = np.asarray(datasets.read_image(tmp_path / "g16.png"))
    expected = np.round(GRADIENT16 / 257.0).astype(np.uint8)  # 65535 / 255 = 257
    assert got.shape == (6, 8, 3) and got.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], expected)
    assert got.min() == 0 and got.max() == 255 and len(np.unique(got)) == 48
    # the same through the torch dataset training and evaluation use
    from torchvision.transforms import PILToTensor
    x, _ = datasets.ImageDataset(tmp_path, ["g16.png"], None, PILToTensor(), num_labels=1)[0]
    np.testing.assert_array_equal(x[0].numpy(), expected)


def test_16bit_colour_grey_alpha_pgm_and_tiff(tmp_path):
    expected = np.round(GRADIENT16 / 257.0)
    rgb = np.stack([GRADIENT16, GRADIENT16[::-1], 65535 - GRADIENT16], axis=-1)
    (tmp_path / "rgb16.png").write_bytes(png_bytes(rgb, 16, 2))
    got = np.asarray(datasets.read_image(tmp_path / "rgb16.png")).astype(int)
    assert np.abs(got - np.round(rgb / 257.0)).max() <= 1  # PIL keeps the high byte
    ga = np.stack([GRADIENT16, np.full_like(GRADIENT16, 65535)], axis=-1)
    (tmp_path / "ga16.png").write_bytes(png_bytes(ga, 16, 4))
    got = np.asarray(datasets.read_image(tmp_path / "ga16.png")).astype(int)
    assert np.abs(got[..., 0] - expected).max() <= 1
    # 16-bit PGM, and a 12-bit one (maxval 4095): scaled from their own depth
    header = b"P5\n8 6\n65535\n"
    (tmp_path / "g16.pgm").write_bytes(header + GRADIENT16.astype(">u2").tobytes())
    np.testing.assert_array_equal(np.asarray(datasets.read_image(tmp_path / "g16.pgm"))[..., 0],
                                  expected)
    g12 = GRADIENT16 >> 4
    (tmp_path / "g12.pgm").write_bytes(b"P5\n8 6\n4095\n" + g12.astype(">u2").tobytes())
    got = np.asarray(datasets.read_image(tmp_path / "g12.pgm"))[..., 0].astype(int)
    assert np.abs(got - np.round(g12.astype(np.float64) * 255 / 4095)).max() <= 1
    # TIFF: 16-bit integer, 32-bit float in [0, 1]
    Image.fromarray(GRADIENT16).save(tmp_path / "g16.tiff")
    np.testing.assert_array_equal(np.asarray(datasets.read_image(tmp_path / "g16.tiff"))[..., 0],
                                  expected)
    floats = (GRADIENT16 / 65535.0).astype(np.float32)
    Image.fromarray(floats).save(tmp_path / "f.tiff")
    np.testing.assert_array_equal(np.asarray(datasets.read_image(tmp_path / "f.tiff"))[..., 0],
                                  np.round(floats.astype(np.float64) * 255))


def test_modes_without_an_8bit_meaning_are_refused(tmp_path):
    Image.fromarray(np.array([[0.0, 2.5]], dtype=np.float32)).save(tmp_path / "hdr.tiff")
    with pytest.raises(DatasetError, match=r"hdr\.tiff: 32-bit float image \(mode F\) with "
                                           r"values 0\.\.2\.5: only floats in \[0, 1\]"):
        datasets.read_image(tmp_path / "hdr.tiff")
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "i32.tiff")
    with pytest.raises(DatasetError, match=r"i32\.tiff: 32-bit integer image .*only 8- and "
                                           "16-bit images are read"):
        datasets.read_image(tmp_path / "i32.tiff")


def test_transparency_cmyk_bilevel_and_orientation(tmp_path):
    # alpha is composited over white: round(c * a + 255 * (1 - a))
    rgba = np.array([[[200, 100, 0, 255], [200, 100, 0, 0], [200, 100, 0, 128]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    got = np.asarray(datasets.read_image(tmp_path / "rgba.png")).astype(int)
    a = rgba[..., 3:] / 255
    assert np.abs(got - np.round(rgba[..., :3] * a + 255 * (1 - a))).max() <= 1
    assert got[0, 1].tolist() == [255, 255, 255]
    la = np.array([[[40, 0], [40, 255]]], np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert np.asarray(datasets.read_image(tmp_path / "la.png"))[0].tolist() == [[255] * 3, [40] * 3]
    # a palette with a transparent entry
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255])
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png", transparency=1)
    img = datasets.read_image(tmp_path / "p.png")
    assert [img.getpixel((0, 0)), img.getpixel((1, 0))] == [(255, 0, 0), (255, 255, 255)]
    # CMYK (lossless TIFF): cyan 0, magenta 255, yellow 255, black 0 is red
    Image.new("CMYK", (2, 2), (0, 255, 255, 0)).save(tmp_path / "c.tiff")
    assert datasets.read_image(tmp_path / "c.tiff").getpixel((1, 1)) == (255, 0, 0)
    # 1-bit
    Image.fromarray(np.array([[0, 1]], bool)).save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    assert np.asarray(datasets.read_image(tmp_path / "b.png"))[0, :, 0].tolist() == [0, 255]
    # a camera photo stored sideways (EXIF orientation 6) comes out upright
    photo = Image.new("RGB", (40, 20), (255, 0, 0))
    photo.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.save(tmp_path / "o.jpg", exif=exif, quality=95)
    upright = datasets.read_image(tmp_path / "o.jpg")
    assert upright.size == (20, 40)
    top, bottom = upright.getpixel((10, 5)), upright.getpixel((10, 35))
    assert top[2] > 200 > top[0] and bottom[0] > 200 > bottom[2]  # rotated 90 degrees cw


@pytest.mark.parametrize("size", [(20000, 20000), (10000, 9000)])
def test_decompression_bombs_are_refused_naming_the_file(tmp_path, size):
    # the header claims a huge image (400 or 90 million pixels); the data is one pixel
    (tmp_path / "bomb.png").write_bytes(png_bytes(np.zeros((1, 1), np.uint8), 8, 0, size))
    n = size[0] * size[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no DecompressionBombWarning on the way
        with pytest.raises(DatasetError, match=rf"bomb\.png: image too large to decode safely: "
                                               rf".*{n:,} pixels, above PIL's limit of "
                                               rf"{Image.MAX_IMAGE_PIXELS:,}"):
            datasets.read_image(tmp_path / "bomb.png")
    root = make_dataset(tmp_path / "ds")
    (root / "images" / "s2.png").write_bytes((tmp_path / "bomb.png").read_bytes())
    with pytest.raises(DatasetError, match=r"s2\.png: image listed in .*test\.json too large"):
        datasets.load_dataset(root)


def test_example_images_only_existing_files(tmp_path):
    root = make_dataset(tmp_path / "ds")
    ds = datasets.load_dataset(root, val_fraction=0.0)
    (root / "images" / "t1.png").unlink()
    paths_, captions = datasets.example_images(ds, 20, seed=1)
    assert len(paths_) == len(TRAIN) - 1 and all(p.is_file() for p in paths_)
    assert "t3.png: (no labels)" in captions
    assert datasets.example_images(ds, 3, seed=1) == datasets.example_images(ds, 3, seed=1)


# --------------------------------------------------------------------------- real Corel-5k

COREL_TOP = {"water": 1120, "sky": 988, "tree": 947, "people": 744, "grass": 497}


def _check_corel_stats(stats: dict) -> None:
    assert stats["n_labels"] == 260
    assert stats["n_images"] == {"train": 4500, "test": 499}
    assert stats["n_label_assignments"] == 16979
    assert round(stats["mean_labels_per_image"], 2) == 3.40
    assert stats["mean_labels_per_image"] == pytest.approx(16979 / 4999)
    assert stats["max_labels_per_image"] == 5
    assert stats["images_without_labels"] == 7
    assert stats["images_without_labels_per_split"] == {"train": 7, "test": 0}
    assert stats["n_augmented"] == 13500
    counts = stats["label_counts"]
    assert sorted(counts.items(), key=lambda kv: -kv[1])[:5] == list(COREL_TOP.items())
    assert min(counts.values()) == 2
    assert sorted(k for k, v in counts.items() if v == 2) == ["cougar", "orchid", "sails"]
    assert stats["labels_absent"] == {"train": [], "test": []}
    assert [k for k in counts if "-" in k] == ["f-16", "close-up", "white-tailed"]


def test_corel5k_facts(corel_dir):
    ds = datasets.load_dataset(corel_dir, check_images=False, val_fraction=0.0)
    stats = datasets.dataset_statistics(ds)
    _check_corel_stats(stats)
    # independent count straight from the JSON files
    raw = Counter()
    for name in ("train.json", "test.json"):
        for sample in json.loads((corel_dir / name).read_text())["samples"]:
            raw.update(sample["image_labels"])
    assert set(raw) == set(ds.labels)
    assert stats["label_counts"] == {k: raw[k] for k in ds.labels}
    assert ds.labels == (corel_dir / "corel5k_vocabulary.txt").read_text().split()


def test_corel5k_default_carve(corel_dir):
    with pytest.warns(UserWarning, match="1350 generated image"):
        ds = datasets.load_dataset(corel_dir, check_images=False)
    assert ds.val_carved and len(ds.splits["val"]) == 450 and len(ds.splits["train"]) == 4050
    assert len(ds.splits["train_aug"]) + len(ds.aug_held_out) == 13500
    assert len(ds.aug_held_out) == 3 * 450
    _check_corel_stats(datasets.dataset_statistics(ds))


def test_stats_cli_json(corel_dir, capsys):
    assert cli.main(["stats", str(corel_dir), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    _check_corel_stats(printed)
    assert printed["images_checked"] is None  # annotations only: no images/ folder
    assert datasets.stats_main(["corel5k-annotations", "--json"]) == 0
    _check_corel_stats(json.loads(capsys.readouterr().out))


def test_stats_cli_tables(corel_dir, tmp_path, capsys):
    # without --out nothing is written (no results/ tables from a check)
    assert datasets.stats_main([str(corel_dir)]) == 0
    out = capsys.readouterr().out
    assert "4999" in out and "water" in out and "3.3965" in out
    assert "tables written" not in out and not paths.results_root().exists()
    assert "images: not opened: no images folder" in out
    folder = tmp_path / "tables"
    assert datasets.stats_main([str(corel_dir), "--out", str(folder)]) == 0
    assert "tables written" in capsys.readouterr().out
    counts = pd.read_csv(folder / "label_counts.csv")
    assert counts.iloc[0].tolist()[:4] == ["water", 1004, 116, 1120]
    assert counts["total"].sum() == 16979
    cooc = pd.read_csv(folder / "cooccurrence_train.csv", index_col="label")
    assert cooc.shape == (260, 260)
    train_counts = counts.set_index("label")["train"]
    assert (np.diag(cooc.to_numpy()) == train_counts[cooc.index].to_numpy()).all()
    assert (cooc.to_numpy() == cooc.to_numpy().T).all()


def test_stats_cli_bad_folder(tmp_path, capsys):
    assert cli.main(["stats", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "missing: dataset folder not found" in err
    with pytest.raises(DatasetError, match="dataset folder not found"):
        datasets.stats_main([str(tmp_path / "missing")])


def test_stats_opens_every_image_unless_fast(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", aug=[("t1_aug.png", ["sky"])])
    assert cli.main(["stats", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images_checked"] == len(TRAIN) + len(TEST) + 1
    # truncated and missing images pass the annotation checks but not stats
    full = (root / "images" / "t2.png").read_bytes()
    (root / "images" / "t2.png").write_bytes(full[: len(full) // 2])
    (root / "images" / "t1_aug.png").unlink()
    assert datasets.load_dataset(root, check_images=False)
    assert cli.main(["stats", str(root)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()[-1]
    assert err.startswith(f"error: {root / 'images'}: 2 of 13 image(s) cannot be used")
    assert "t2.png: unreadable image" in err and "[train.json]" in err
    assert "t1_aug.png: image file is missing" in err and "[train_aug.json]" in err
    # --fast reads the annotation files only
    assert cli.main(["stats", str(root), "--fast"]) == 0
    assert "images: not opened (--fast)" in capsys.readouterr().out


def test_corel_validation_carve_leaves_labels_without_positives(corel_dir):
    """docs/configurations.md: on Corel-5k's 450 validation images (val_fraction 0.1, seeds
    0-2) 46 to 57 of the 260 labels have no positive, and take the fallback threshold."""
    counts = []
    for seed in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")           # fakes of carved images left out
            ds = datasets.load_dataset(corel_dir, check_images=False, val_fraction=0.1,
                                       seed=seed)
        val = ds.splits["val"]
        assert len(val.names) == 450 and len(ds.labels) == 260
        counts.append(int((val.targets.sum(axis=0) == 0).sum()))
    assert counts == [46, 57, 55]
