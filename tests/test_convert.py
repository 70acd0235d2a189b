"""Converters (lib.data.convert): small fixtures of each source format written here, the real
Corel-5k files turned into a TagProp release and back, one tiny training run and the label
notebooks on converted data."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.data import convert
from lib.data.convert import ConvertError, read_vecs
from lib.data.datasets import load_dataset, stats_main
from lib.method import embeddings

#: the 80 MS-COCO 2014 category names in category-id order (instances_*2014.json)
COCO_NAMES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
]
COCO_IDS = [*range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70,
            *range(72, 83), *range(84, 91)]
COCO_MULTIWORD = [x for x in COCO_NAMES if " " in x]
VOC_READABLE = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa",
    "train", "tv monitor",
]


def _jpeg(path: Path, seed: int, size: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _write_hvecs(path: Path, rows: np.ndarray) -> None:
    """Each row as a uint16 dimension then uint16 values (little-endian)."""
    rows = np.asarray(rows, dtype="<u2")
    out = np.empty((len(rows), rows.shape[1] + 1), dtype="<u2")
    out[:, 0] = rows.shape[1]
    out[:, 1:] = rows
    path.write_bytes(out.tobytes())


def _samples(out: Path, split: str) -> dict[str, list[str]]:
    obj = json.loads((out / f"{split}.json").read_text())
    return {s["image_name"]: s["image_labels"] for s in obj["samples"]}


# --------------------------------------------------------------------------- vector files


def test_read_vecs_follows_the_lear_layout(tmp_path):
    # .hvecs: uint16 dimension, then uint16 values, for every vector
    hv = tmp_path / "a.hvecs"
    hv.write_bytes(struct.pack("<8H", 3, 1, 0, 1, 3, 0, 1, 0))
    got = read_vecs(hv)
    assert got.dtype == np.uint16 and got.tolist() == [[1, 0, 1], [0, 1, 0]]
    # .hvecs32: uint32 dimension, uint32 values
    h32 = tmp_path / "a.hvecs32"
    h32.write_bytes(struct.pack("<6I", 2, 7, 70000, 2, 0, 5))
    assert read_vecs(h32).tolist() == [[7, 70000], [0, 5]]
    # .fvecs: uint32 dimension, float32 values
    fv = tmp_path / "a.fvecs"
    fv.write_bytes(struct.pack("<I2f", 2, 0.5, -1.25))
    assert read_vecs(fv).tolist() == [[0.5, -1.25]]


@pytest.mark.parametrize("payload, message", [
    (b"", "empty vector file"),
    (struct.pack("<H", 0), "dimension 0"),
    (struct.pack("<5H", 3, 1, 0, 1, 3), "not a whole number"),
    (struct.pack("<8H", 3, 1, 0, 1, 2, 0, 1, 0), "vector #1 has dimension 2"),
])
def test_read_vecs_rejects_malformed_files(tmp_path, payload, message):
    path = tmp_path / "bad_annot.hvecs"
    path.write_bytes(payload)
    with pytest.raises(ConvertError, match=message) as err:
        read_vecs(path)
    assert str(path) in str(err.value)


def test_read_vecs_rejects_unknown_suffix(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"\x00" * 8)
    with pytest.raises(ConvertError, match="unknown vector file type"):
        read_vecs(path)


# --------------------------------------------------------------------------- tagprop


def _tagprop_release(root: Path, name: str, vocab: list[str],
                     splits: dict[str, list[tuple[str, list[str]]]]) -> Path:
    """Write ``<name>_dictionary.txt``, ``_<split>_list.txt`` and ``_<split>_annot.hvecs``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}_dictionary.txt").write_text("".join(f"{w}\n" for w in vocab))
    index = {w: j for j, w in enumerate(vocab)}
    for split, samples in splits.items():
        (root / f"{name}_{split}_list.txt").write_text("".join(f"{e}\n" for e, _ in samples))
        rows = np.zeros((len(samples), len(vocab)), dtype=np.uint16)
        for i, (_, labels) in enumerate(samples):
            rows[i, [index[w] for w in labels]] = 1
        _write_hvecs(root / f"{name}_{split}_annot.hvecs", rows)
    return root


def test_tagprop_round_trip_of_the_real_corel5k_files(corel_dir, tmp_path, capsys):
    """The real Corel-5k JSON files written as a TagProp release convert back exactly."""
    ref = load_dataset(corel_dir, check_images=False, val_fraction=0.0)
    splits = {}
    for split in ("train", "test"):
        part = ref.splits[split]
        splits[split] = [(Path(n).stem, [ref.labels[j] for j in np.flatnonzero(row)])
                         for n, row in zip(part.names, part.targets, strict=True)]
    src = _tagprop_release(tmp_path / "corel5k.20091111", "corel5k", ref.labels, splits)
    out = convert.convert("tagprop", src, tmp_path / "out", with_images=False, ext=".jpeg")
    assert (out / "vocabulary.txt").read_text().splitlines() == ref.labels
    assert not (out / "images").exists()
    got = load_dataset(out, check_images=False, val_fraction=0.0)
    assert got.labels == ref.labels
    for split in ("train", "test"):
        assert got.splits[split].names == ref.splits[split].names
        np.testing.assert_array_equal(got.splits[split].targets, ref.splits[split].targets)
    # the facts about Corel-5k hold on the converted folder (python -m lib stats)
    assert stats_main([str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["n_labels"] == 260 and stats["n_images"] == {"train": 4500, "test": 499}
    assert stats["n_label_assignments"] == 16979
    assert stats["images_without_labels_per_split"]["train"] == 7
    info = json.loads((out / "conversion.json").read_text())
    assert info["notes"] == {"name": "corel5k"} and info["images"] == "none"


def _iapr_like(tmp_path: Path) -> tuple[Path, dict]:
    """IAPR TC-12 layout: list entries ``00/25`` for ``images/00/25.jpg``; one ESP-like entry
    with a folder prefix that the flat image folder lacks (found by its last component)."""
    vocab = ["sky", "t-shirt", "man", "tree", "cloud"]
    splits = {
        "train": [("00/25", ["sky", "man"]), ("00/26", ["t-shirt"]), ("01/1003", []),
                  ("flat/777", ["tree", "cloud", "sky"])],
        "test": [("02/4", ["man", "cloud"]), ("02/5", ["sky"])],
    }
    src = _tagprop_release(tmp_path / "iaprtc12", "iaprtc12", vocab, splits)
    for k, entry in enumerate(["00/25", "00/26", "01/1003", "02/4", "02/5"]):
        _jpeg(src / "images" / f"{entry}.jpg", k)
    _jpeg(src / "images" / "777.jpg", 99)
    return src, {"vocab": vocab, "splits": splits}


def test_tagprop_links_images_relatively_and_keeps_labels(tmp_path):
    src, ref = _iapr_like(tmp_path)
    out = convert.convert("tagprop", src, tmp_path / "data" / "iapr")
    ds = load_dataset(out, check_images=True, val_fraction=0.0)
    assert ds.labels == ref["vocab"]
    assert _samples(out, "train") == {"00/25.jpg": ["sky", "man"], "00/26.jpg": ["t-shirt"],
                                      "01/1003.jpg": [], "777.jpg": ["sky", "tree", "cloud"]}
    assert _samples(out, "test") == {"02/4.jpg": ["man", "cloud"], "02/5.jpg": ["sky"]}
    link = out / "images" / "00" / "25.jpg"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == (src / "images" / "00" / "25.jpg").resolve()
    assert (out / "images" / "777.jpg").resolve() == (src / "images" / "777.jpg").resolve()
    # the relative links survive moving the source and the output together
    moved = tmp_path.rename(tmp_path.with_name(tmp_path.name + "-moved"))
    assert (moved / "data" / "iapr" / "images" / "02" / "4.jpg").read_bytes() == \
        (moved / "iaprtc12" / "images" / "02" / "4.jpg").read_bytes()


def test_tagprop_copy_flag_copies(tmp_path):
    src, _ = _iapr_like(tmp_path)
    out = convert.convert("tagprop", src, tmp_path / "copied", copy=True)
    image = out / "images" / "02" / "5.jpg"
    assert image.is_file() and not image.is_symlink()
    assert image.read_bytes() == (src / "images" / "02" / "5.jpg").read_bytes()
    assert json.loads((out / "conversion.json").read_text())["images"] == "copies"


def test_tagprop_errors_name_the_file(tmp_path):
    src, ref = _iapr_like(tmp_path)
    annot = src / "iaprtc12_test_annot.hvecs"
    good = annot.read_bytes()

    _write_hvecs(annot, np.zeros((3, 5)))  # three vectors for two list entries
    with pytest.raises(ConvertError, match="3 vectors for 2 images") as err:
        convert.read_tagprop(src)
    assert str(annot) in str(err.value)

    _write_hvecs(annot, np.zeros((2, 4)))  # dictionary has 5 words
    with pytest.raises(ConvertError, match="dimension 4, but .* has 5 words"):
        convert.read_tagprop(src)

    _write_hvecs(annot, np.array([[0, 2, 0, 0, 0], [1, 0, 0, 0, 0]]))
    with pytest.raises(ConvertError, match=r"vector #0 \(02/4\) holds values other than 0"):
        convert.read_tagprop(src)
    annot.write_bytes(good)

    (src / "images" / "02" / "5.jpg").unlink()
    with pytest.raises(ConvertError, match="iaprtc12_test_list.txt not found") as err:
        convert.read_tagprop(src)
    assert str(src / "images" / "02" / "5") in str(err.value)
    conv = convert.read_tagprop(src, skip_missing=True)
    assert conv.left_out == {"test: image file missing": ["02/5"]}
    assert [s.name for s in conv.splits["test"]] == ["02/4.jpg"]

    (src / "espgame_dictionary.txt").write_text("a\n")
    with pytest.raises(ConvertError, match="several dictionaries .*--name"):
        convert.read_tagprop(src)
    assert convert.read_tagprop(src, name="iaprtc12", skip_missing=True).labels == ref["vocab"]

    (src / "iaprtc12_dictionary.txt").write_text("sky\nman\nsky\n")
    with pytest.raises(ConvertError, match=r"repeats \['sky'\]"):
        convert.read_tagprop(src, name="iaprtc12")

    with pytest.raises(ConvertError, match="no <name>_dictionary.txt"):
        convert.read_tagprop(tmp_path / "iaprtc12" / "images")


# --------------------------------------------------------------------------- voc

VOC_TRAINVAL = {
    "000001": [("dog", 0), ("person", 0), ("person", 1)],
    "000002": [("pottedplant", 0), ("diningtable", 1)],
    "000003": [("tvmonitor", 1)],
    "000004": [("chair", 0), ("chair", 0), ("sofa", 0)],
}
VOC_TEST = {"000005": [("aeroplane", 0)], "000006": [("bus", 0), ("car", 0), ("tvmonitor", 0)]}


def _voc_xml(image_id: str, objects: list[tuple[str, int]]) -> str:
    objs = "".join(
        f"<object><name>{c}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{d}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>"
        f"<ymax>9</ymax></bndbox></object>" for c, d in objects)
    return (f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>"
            f"<size><width>24</width><height>24</height><depth>3</depth></size>"
            f"<segmented>0</segmented>{objs}</annotation>")


def _voc(root: Path, trainval: dict, test: dict) -> Path:
    """``VOCdevkit/VOC2007`` with Annotations, ImageSets/Main and JPEGImages."""
    voc = root / "VOCdevkit" / "VOC2007"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    for k, (image_id, objects) in enumerate({**trainval, **test}.items()):
        (voc / "Annotations" / f"{image_id}.xml").write_text(_voc_xml(image_id, objects))
        _jpeg(voc / "JPEGImages" / f"{image_id}.jpg", k)
    for name, ids in (("trainval", trainval), ("test", test)):
        (voc / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return voc


def test_voc_labels_splits_and_readable_vocabulary(tmp_path):
    voc = _voc(tmp_path, VOC_TRAINVAL, VOC_TEST)
    out = convert.convert("voc", tmp_path / "VOCdevkit", tmp_path / "voc2007")  # devkit root
    assert (out / "vocabulary.txt").read_text().splitlines() == VOC_READABLE
    assert _samples(out, "train") == {
        "000001.jpg": ["dog", "person"],
        "000002.jpg": ["dining table", "potted plant"],  # difficult table kept
        "000003.jpg": ["tv monitor"],                     # difficult-only: still positive
        "000004.jpg": ["chair", "sofa"],
    }
    assert _samples(out, "test") == {"000005.jpg": ["aeroplane"],
                                     "000006.jpg": ["bus", "car", "tv monitor"]}
    ds = load_dataset(out, check_images=True, val_fraction=0.0)
    assert [len(p) for p in ds.splits.values()] == [4, 0, 2]
    assert (out / "images" / "000006.jpg").resolve() == \
        (voc / "JPEGImages" / "000006.jpg").resolve()
    notes = json.loads((out / "conversion.json").read_text())["notes"]
    assert notes["difficult_objects"] == 3 and notes["drop_difficult"] is False


def test_voc_drop_difficult(tmp_path):
    voc = _voc(tmp_path, VOC_TRAINVAL, VOC_TEST)
    out = convert.convert("voc", voc, tmp_path / "out", drop_difficult=True,
                          with_images=False)
    train = _samples(out, "train")
    assert train["000001.jpg"] == ["dog", "person"]  # a non-difficult person remains
    assert train["000002.jpg"] == ["potted plant"]
    assert train["000003.jpg"] == []  # kept, without labels
    ds = load_dataset(out, check_images=False, val_fraction=0.0)
    assert ds.splits["train"].targets.sum() == 5


@pytest.mark.parametrize("damage, message", [
    (lambda v: (v / "Annotations" / "000002.xml").write_text("<annotation><object>"),
     "000002.xml: malformed XML"),
    (lambda v: (v / "Annotations" / "000002.xml").write_text(_voc_xml("2", [("unicorn", 0)])),
     r"000002.xml: unknown class\(es\) \['unicorn'\]"),
    (lambda v: (v / "Annotations" / "000002.xml").write_text(_voc_xml("2", [("dog", 2)])),
     "000002.xml: <object> #0 .* <difficult>2"),
    (lambda v: (v / "Annotations" / "000004.xml").unlink(), "000004.xml: annotation file not"),
    (lambda v: (v / "JPEGImages" / "000005.jpg").unlink(), "000005.jpg: image of .*000005.xml"),
    (lambda v: (v / "ImageSets" / "Main" / "test.txt").unlink(), "test.txt: image set not"),
])
def test_voc_errors_name_the_file(tmp_path, damage, message):
    voc = _voc(tmp_path, VOC_TRAINVAL, VOC_TEST)
    damage(voc)
    with pytest.raises(ConvertError, match=message):
        convert.read_voc(voc)


def test_voc_rejects_a_folder_that_is_not_voc(tmp_path):
    with pytest.raises(ConvertError, match="not a VOC folder"):
        convert.read_voc(tmp_path)


# --------------------------------------------------------------------------- coco


def _coco(root: Path, *, categories: list[tuple[int, str]], train: dict, val: dict,
          with_images: bool = True) -> Path:
    """``annotations/instances_{train,val}2014.json`` plus ``train2014/``, ``val2014/``.
    ``train``/``val``: file name -> list of category ids (one annotation each)."""
    (root / "annotations").mkdir(parents=True)
    ann_id = 1
    for k, (split, images) in enumerate((("train", train), ("val", val))):
        image_entries, annotations = [], []
        for i, (file_name, cats) in enumerate(images.items()):
            image_id = 1000 * (k + 1) + i
            image_entries.append({"id": image_id, "file_name": file_name, "width": 24,
                                  "height": 24})
            for c in cats:
                annotations.append({"id": ann_id, "image_id": image_id, "category_id": c,
                                    "iscrowd": int(ann_id % 5 == 0), "bbox": [0, 0, 4, 4],
                                    "area": 16})
                ann_id += 1
            if with_images:
                _jpeg(root / f"{split}2014" / file_name, image_id)
        obj = {"info": {}, "images": image_entries, "annotations": annotations,
               "categories": [{"id": c, "name": n, "supercategory": "x"}
                              for c, n in categories]}
        (root / "annotations" / f"instances_{split}2014.json").write_text(json.dumps(obj))
    return root


COCO_SMALL = dict(
    categories=[(10, "traffic light"), (1, "person"), (89, "hair drier"), (3, "car")],
    train={"COCO_train2014_000000000009.jpg": [1, 1, 3],
           "COCO_train2014_000000000025.jpg": [10, 1],
           "COCO_train2014_000000000030.jpg": [],
           "COCO_train2014_000000000034.jpg": [89, 89, 89, 10]},
    val={"COCO_val2014_000000000042.jpg": [3],
         "COCO_val2014_000000000073.jpg": [],
         "COCO_val2014_000000000074.jpg": [89, 1]},
)


def test_coco_labels_splits_and_unlabeled_images(tmp_path):
    src = _coco(tmp_path / "coco", **COCO_SMALL)
    out = convert.convert("coco", src, tmp_path / "coco2014")
    # category-id order, names as they are
    assert (out / "vocabulary.txt").read_text().splitlines() == \
        ["person", "car", "traffic light", "hair drier"]
    assert _samples(out, "train") == {
        "COCO_train2014_000000000009.jpg": ["person", "car"],
        "COCO_train2014_000000000025.jpg": ["person", "traffic light"],
        "COCO_train2014_000000000034.jpg": ["traffic light", "hair drier"],
    }
    assert _samples(out, "test") == {"COCO_val2014_000000000042.jpg": ["car"],
                                     "COCO_val2014_000000000074.jpg": ["person", "hair drier"]}
    info = json.loads((out / "conversion.json").read_text())
    assert info["left_out"] == {
        "train: no annotation (train2014)": ["COCO_train2014_000000000030.jpg"],
        "test: no annotation (val2014)": ["COCO_val2014_000000000073.jpg"]}
    assert info["n_images"] == {"train": 3, "test": 2}
    ds = load_dataset(out, check_images=True, val_fraction=0.0)
    assert ds.splits["test"].targets.tolist() == [[0, 1, 0, 0], [1, 0, 0, 1]]
    link = out / "images" / "COCO_val2014_000000000042.jpg"
    assert link.resolve() == (src / "val2014" / "COCO_val2014_000000000042.jpg").resolve()


def test_coco_keep_unlabeled(tmp_path):
    src = _coco(tmp_path / "coco", **COCO_SMALL, with_images=False)
    out = convert.convert("coco", src, tmp_path / "out", keep_unlabeled=True,
                          with_images=False)
    assert _samples(out, "train")["COCO_train2014_000000000030.jpg"] == []
    assert len(_samples(out, "train")) == 4 and len(_samples(out, "test")) == 3
    assert json.loads((out / "conversion.json").read_text())["left_out"] == {}


def _edit_json(path: Path, edit) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


@pytest.mark.parametrize("split, edit, message", [
    ("val", lambda o: o["annotations"][0].update(category_id=77), "unknown category_id 77"),
    ("train", lambda o: o["annotations"][0].update(image_id=5), "unknown image_id 5"),
    ("train", lambda o: o.pop("annotations"), "missing or non-list 'annotations'"),
    ("val", lambda o: o["categories"][0].update(name="stoplight"),
     "categories differ from those of .*instances_train2014.json"),
    ("train", lambda o: o["images"][0].pop("file_name"), "lacks 'id', 'name' or 'file_name'"),
])
def test_coco_errors_name_the_file(tmp_path, split, edit, message):
    src = _coco(tmp_path / "coco", **COCO_SMALL, with_images=False)
    path = src / "annotations" / f"instances_{split}2014.json"
    _edit_json(path, edit)
    with pytest.raises(ConvertError, match=message) as err:
        convert.read_coco(src, with_images=False)
    assert str(path) in str(err.value)


def test_coco_missing_files_and_malformed_json(tmp_path):
    src = _coco(tmp_path / "coco", **COCO_SMALL)
    (src / "val2014" / "COCO_val2014_000000000074.jpg").unlink()
    with pytest.raises(ConvertError, match="000074.jpg: image listed in .*instances_val2014"):
        convert.read_coco(src)
    (src / "annotations" / "instances_val2014.json").write_text("{")
    with pytest.raises(ConvertError, match="instances_val2014.json: malformed JSON"):
        convert.read_coco(src)
    (src / "annotations" / "instances_val2014.json").unlink()
    with pytest.raises(ConvertError, match="instances_val2014.json: COCO instances file not"):
        convert.read_coco(src)


# --------------------------------------------------------------------------- CLI


def test_cli_converts_and_refuses_a_non_empty_folder(tmp_path, capsys):
    src = _coco(tmp_path / "coco", **COCO_SMALL)
    out = tmp_path / "converted"
    assert convert.convert_main(["coco", str(src), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "converted coco" in printed and "train 3, test 2" in printed
    assert "left out (train: no annotation (train2014)): 1" in printed
    assert stats_main([str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == {"train": 3, "test": 2}
    with pytest.raises(SystemExit) as exit_:
        convert.convert_main(["coco", str(src), str(out)])
    assert exit_.value.code == 1
    assert f"{out}: output folder exists and is not empty" in capsys.readouterr().err


def test_cli_bare_name_goes_under_the_data_root(tmp_path):
    from lib.core import paths

    src = _voc(tmp_path, VOC_TRAINVAL, VOC_TEST)
    assert convert.convert_main(["voc", str(src), "voc-tiny", "--no-images",
                                 "--drop-difficult"]) == 0
    out = paths.data_root() / "voc-tiny"
    assert _samples(out, "train")["000003.jpg"] == []
    assert paths.dataset_dir("voc-tiny") == out  # where `python -m lib stats voc-tiny` looks


# --------------------------------------------------------------------------- label vectors


def test_glove_covers_the_coco_and_voc_labels_and_reports_how():
    """Multi-word labels get the mean of their parts; every label has a vector."""
    assert len(COCO_NAMES) == len(COCO_IDS) == 80
    res = embeddings.resolve(COCO_NAMES, embeddings.WHEEL_SOURCE)
    assert res.counts() == {"token": 65, "parts mean": 15, "missing": 0}
    assert [x for x in COCO_NAMES if res.how[x] == "parts mean"] == COCO_MULTIWORD
    assert res.parts["hair drier"] == ["hair", "drier"] and not res.parts_missing
    kv = embeddings.load_glove_wheel()
    np.testing.assert_allclose(res.vectors[COCO_NAMES.index("traffic light")],
                               (kv["traffic"] + kv["light"]) / 2, rtol=1e-6)
    voc = embeddings.resolve(VOC_READABLE, embeddings.WHEEL_SOURCE)
    assert voc.counts() == {"token": 17, "parts mean": 3, "missing": 0}
    # a label without any vector is an error that names it; a missing part is reported
    with pytest.raises(embeddings.EmbeddingError, match=r"'hairdrierx'"):
        embeddings.label_vectors(["hair drier", "hairdrierx"], embeddings.WHEEL_SOURCE)
    partial = embeddings.resolve(["hair qzxvw"], embeddings.WHEEL_SOURCE)
    assert partial.parts_missing == {"hair qzxvw": ["qzxvw"]}
    assert partial.table()["parts without vector"].tolist() == ["qzxvw"]


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_converted_voc_trains_one_tiny_epoch(tmp_path):
    from lib.training.launch import train
    from lib.training.settings import TrainConfig

    classes = list(convert.VOC_LABELS)
    trainval = {f"{i:06d}": [(classes[i % 20], 0), (classes[(i * 7) % 20], int(i % 3 == 0))]
                for i in range(1, 49)}  # 43 train + 5 carved val: 6 steps of 8
    test = {f"{i:06d}": [(classes[i % 20], 0)] for i in range(49, 61)}
    _voc(tmp_path / "src", trainval, test)
    data = convert.convert("voc", tmp_path / "src", tmp_path / "voc")
    run = train(TrainConfig(data=str(data), out=str(tmp_path / "run"), epochs=1, image_size=32,
                            batch_size=8, embeddings="glove-6b-50d", seed=0))
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["labels"] == VOC_READABLE
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["mean_average_precision"] <= 1.0
    header = (run / "predictions.csv").read_text().splitlines()[0]
    assert header.split(",") == ["image_name", *VOC_READABLE]


@pytest.mark.slow
def test_label_notebooks_run_on_a_converted_coco(tmp_path):
    """Notebooks 01 and 02, unchanged, on 80 COCO labels (15 of them multi-word)."""
    from conftest import run_notebook

    from lib.core.glue import notebook_records

    rng = np.random.default_rng(0)

    def draw(prefix: str, n: int) -> dict:
        return {f"{prefix}_{i:012d}.jpg": [int(c) for c in rng.choice(COCO_IDS, 3, replace=False)]
                for i in range(n)}

    categories = list(zip(COCO_IDS, COCO_NAMES, strict=True))
    src = _coco(tmp_path / "src", categories=categories, train=draw("COCO_train2014", 120),
                val=draw("COCO_val2014", 40), with_images=False)
    out = convert.convert("coco", src, tmp_path / "coco2014", with_images=False)
    records = notebook_records(run_notebook("01_dataset_statistics",
                                            {"dataset": str(out), "n_examples": 4}, tmp_path))
    assert records["n_labels"] == 80 and records["n_images"] == {"train": 120, "test": 40}
    assert records["multiword_labels"] == COCO_MULTIWORD
    assert records["n_example_images"] == 0
    records = notebook_records(run_notebook("02_label_embeddings",
                                            {"dataset": str(out), "source": "glove-6b-50d"},
                                            tmp_path))
    assert records["n_labels"] == 80 and records["dimension"] == 50
    assert (records["coverage_token"], records["coverage_parts_mean"],
            records["coverage_missing"]) == (65, 15, 0)


# --------------------------------------------------------------------------- parameter sets


@pytest.mark.parametrize("name, dataset", [("voc2007", "voc2007"), ("coco2014", "coco2014"),
                                           ("iaprtc12", "iaprtc12"), ("espgame", "espgame")])
def test_parameter_sets_of_the_converted_benchmarks(name, dataset, tmp_path):
    """Every run of the set is a valid configuration with the published recipe's settings."""
    import timm

    from lib.pipeline import params
    from lib.training import settings

    pset = params.load_param_set(name)
    assert pset.data_name == dataset and pset.synth is None
    configs = {}
    for run, own in pset.runs.items():  # the training job's values (workflow/rules/plan.smk)
        values = {**pset.section("04_training"),
                  **{k: v for k, v in own.items() if k not in ("seeds", "gpus")}}
        configs[run] = settings.build_config(values.pop("preset", "default"),
                                             {**values.pop("overrides", {}), **values})
    assert set(configs) == set(pset.runs)
    for run, config in configs.items():
        assert timm.is_model(config.backbone)
        assert (config.image_size, config.batch_size, config.pretrained) == (448, 32, True)
        assert config.mean is None  # never Corel's normalisation
        assert config.embeddings == pset.runs[run].get("embeddings", "glove-wiki-gigaword-300")
    recipe = pset.runs[pset.evaluate_run]
    chosen = configs[pset.evaluate_run]
    if name in ("voc2007", "coco2014"):  # ML-GCN: BCE, GCN, t = 0.4 / p = 0.25 adjacency
        assert recipe == {"loss": "bce", "head": "gcn", "adjacency": "ml-gcn"}
        assert chosen.select_metric == "mean_average_precision"
    else:
        assert recipe == {"loss": "asl", "head": "gcn"}
        assert chosen.select_metric == "per_class_f1"


def test_a_failed_conversion_leaves_nothing_behind(tmp_path):
    conv = convert.Conversion("voc", ["dog"], {
        "train": [convert.Sample("a.jpg", ["dog"], _jpeg(tmp_path / "src" / "a.jpg", 0))],
        "test": [convert.Sample("b.jpg", [], tmp_path / "src" / "b.jpg")],  # no such file
    })
    with pytest.raises(ConvertError, match="b.jpg: cannot copy the image"):
        convert.write_dataset(conv, tmp_path / "out", copy=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    conv.splits["test"] = [convert.Sample("b.jpg", [], _jpeg(tmp_path / "src" / "b.jpg", 1))]
    assert convert.write_dataset(conv, tmp_path / "out", copy=True) == tmp_path / "out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]
    dup = convert.Conversion("voc", ["dog"], {"train": [convert.Sample("a.jpg", [])],
                                             "test": [convert.Sample("a.jpg", [])]})
    with pytest.raises(ConvertError, match="'a.jpg' occurs in train and test"):
        convert.write_dataset(dup, tmp_path / "other")
