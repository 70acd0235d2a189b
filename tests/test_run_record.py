"""The run folder cannot be misread (issue 23): config.json validated by every reader, the
checkpoint's record checked against it and against the dataset scored, a full disk reported
on one line naming the file and the space needed, label vectors checked when read, and
``annotate`` keeping going past a bad image.

Every command here is run through ``lib.cli.main`` (what ``python -m lib`` runs): an error
is one ``error: <file>: <problem>`` line on stderr and exit code 2, never a traceback, and
never exit 0 with numbers computed against the wrong labels."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lib import cli
from lib.core import fileio
from lib.core.errors import DiskFullError, OutputError
from lib.data import datasets
from lib.method import embeddings
from lib.training import inference
from lib.training.runs import RunError, RunFolder, make_config, validate_config

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tiny_run")]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error(err: str) -> str:
    """The single ``error:`` line of stderr (no traceback)."""
    assert "Traceback" not in err
    lines = [line[line.index("error: "):] for line in err.splitlines() if "error: " in line]
    assert len(lines) == 1, err  # (a progress bar may precede it on its line)
    return lines[0]


@pytest.fixture()
def run_copy(tiny_run, tiny_scenes, tmp_path):
    """A writable copy of the tiny run and of its dataset, config.json pointing at the copy."""
    root = tmp_path / "scenes"
    shutil.copytree(tiny_scenes, root)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["dataset"] = cfg["data"] = str(root)
    (run / "config.json").write_text(json.dumps(cfg))
    return run, root


def write_vocabulary(root: Path, labels: list[str]) -> None:
    """A re-converted release: every file of the dataset lists ``labels`` (in that order)."""
    (root / "vocabulary.txt").write_text("\n".join(labels) + "\n")
    for split in ("train", "val", "test"):
        path = root / f"{split}.json"
        if path.exists():
            content = json.loads(path.read_text())
            content["labels"] = labels
            path.write_text(json.dumps(content))


def edit_config(run: Path, **changes) -> None:
    cfg = json.loads((run / "config.json").read_text())
    cfg.update(changes)
    (run / "config.json").write_text(json.dumps(cfg))


# --------------------------------------------------------------------------- 1. dataset labels


def test_evaluate_refuses_a_dataset_with_the_labels_in_another_order(run_copy, capsys):
    run, root = run_copy
    vocab = root / "vocabulary.txt"
    labels = vocab.read_text().split("\n")
    labels = [x for x in labels if x]
    before = (run / "metrics.json").read_bytes()
    swapped = [labels[1], labels[0], *labels[2:]]
    write_vocabulary(root, swapped)
    assert datasets.load_dataset(root, check_images=False).labels == swapped  # the premise
    rc, out, err = run_cli(["evaluate", run, "--device", "cpu"], capsys)
    line = one_error(err)
    assert rc == 2 and out == ""
    assert "vocabulary.txt: labels disagree with" in line and "config.json" in line
    assert f"position 0: {labels[1]!r} instead of {labels[0]!r}" in line
    assert (run / "metrics.json").read_bytes() == before  # no wrong numbers written


def test_evaluate_refuses_a_dataset_with_an_extra_label(run_copy, capsys):
    run, root = run_copy
    vocab = root / "vocabulary.txt"
    labels = [x for x in vocab.read_text().split("\n") if x]
    write_vocabulary(root, [*labels, "zebra"])
    rc, _, err = run_cli(["evaluate", run, "--device", "cpu"], capsys)
    line = one_error(err)
    assert rc == 2
    assert f"{len(labels) + 1} labels instead of {len(labels)}" in line
    assert "1 extra ('zebra')" in line and "vocabulary.txt" in line


# --------------------------------------------------------------------------- 2. config.json


def test_reversed_labels_in_config_json_stop_evaluate_and_annotate(run_copy, capsys):
    run, root = run_copy
    labels = json.loads((run / "config.json").read_text())["labels"]
    edit_config(run, labels=labels[::-1])
    before = (run / "metrics.json").read_bytes()
    rc, out, err = run_cli(["evaluate", run, "--device", "cpu"], capsys)
    line = one_error(err)
    assert rc == 2 and out == ""
    assert "best.pt: labels disagree with" in line and "config.json" in line
    assert (run / "metrics.json").read_bytes() == before
    image = datasets.load_dataset(root, check_images=False)
    rc, out, err = run_cli(["annotate", run, image.image_path(image.splits["test"].names[0]),
                            "--device", "cpu"], capsys)
    assert rc == 2 and out == "" and "best.pt: labels disagree with" in one_error(err)


@pytest.mark.parametrize(("change", "expected"), [
    ({"image_size": "big"}, "'image_size' must be an integer, got 'big'"),
    ({"hidden": -5}, "hidden"),
    ({"lr": float("nan")}, "'lr'"),
    ({"head": "transformer"}, "head"),
    ({"labels": "sky sea"}, "'labels' must be a non-empty list"),
    ({"num_labels": 3}, "'num_labels' is 3 but 'labels' lists"),
    ({"normalization_std": [0.2, 0.0, 0.2]}, "'normalization_std' must be a list of 3"),
    ({"colour": "blue"}, "unknown key 'colour'"),
])
def test_config_json_is_validated_by_every_reader(run_copy, capsys, change, expected):
    run, _ = run_copy
    edit_config(run, **change)
    for argv in (["evaluate", run, "--device", "cpu"],
                 ["annotate", run, run / "nothing.png", "--device", "cpu"]):
        rc, out, err = run_cli(argv, capsys)
        line = one_error(err)
        assert rc == 2 and out == ""
        assert "config.json" in line and expected in line, line
    with pytest.raises(RunError, match="config.json"):
        _ = RunFolder(run).config  # the notebooks and tables read it the same way


def test_a_missing_setting_is_an_error_naming_it(run_copy):
    run, _ = run_copy
    cfg = json.loads((run / "config.json").read_text())
    del cfg["hidden"]
    with pytest.raises(RunError, match=r"config\.json: no 'hidden' entry"):
        validate_config(cfg, run / "config.json")


def test_checkpoint_settings_must_agree_with_config_json(run_copy, capsys):
    """A setting recorded in both files (here the head) that differs stops the command,
    naming best.pt and config.json; so does a label-vector size that does not fit."""
    run, _ = run_copy
    edit_config(run, head="gcn-identity")
    rc, _, err = run_cli(["evaluate", run, "--device", "cpu"], capsys)
    line = one_error(err)
    assert rc == 2 and "best.pt: disagrees with" in line and "'head'" in line
    edit_config(run, head="gcn")
    state = torch.load(run / "best.pt", weights_only=True)
    state["labels"] = state["labels"][:-1]
    torch.save(state, run / "best.pt")
    rc, _, err = run_cli(["evaluate", run, "--device", "cpu"], capsys)
    line = one_error(err)
    assert rc == 2 and "best.pt: labels disagree with" in line and "1 missing" in line


def test_weights_of_another_shape_are_an_error_naming_both_files(run_copy, capsys):
    run, _ = run_copy
    state = torch.load(run / "best.pt", weights_only=True)
    key = next(k for k in state["model"] if k.endswith("label_vectors"))
    state["model"][key] = torch.zeros(state["model"][key].shape[0], 7)
    torch.save(state, run / "best.pt")
    rc, _, err = run_cli(["evaluate", run, "--device", "cpu"], capsys)
    line = one_error(err)
    assert rc == 2 and "best.pt" in line and "config.json" in line and "shape" in line


def test_make_config_is_what_a_training_run_writes(tiny_run):
    """The template tools and tests use has exactly the keys a real run records."""
    real = json.loads((tiny_run / "config.json").read_text())
    assert validate_config(real, tiny_run / "config.json") == real
    assert set(make_config(real["labels"], real["dataset"])) == set(real)


# --------------------------------------------------------------------------- 3. full disk


class _FullFile:
    """A real file that accepts ``room`` bytes, then raises ENOSPC (as a full disk does)."""

    def __init__(self, path, mode, room):
        self.f = builtins.open(path, mode)
        self.room = room

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, b):
        n = memoryview(b).nbytes
        if n > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= n
        return self.f.write(b)

    def flush(self):
        self.f.flush()


def full_disk(monkeypatch, room: int = 1000) -> None:
    """Every atomic write of lib.core.fileio finds a disk with ``room`` bytes free."""
    monkeypatch.setattr(fileio, "open", lambda p, m="r": _FullFile(p, m, room), raising=False)

    def write_bytes(self, data):
        with _FullFile(self, "wb", room) as f:
            return f.write(data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def test_full_disk_while_saving_a_checkpoint_is_one_line(tmp_path, monkeypatch):
    target = tmp_path / "best.pt"
    target.write_bytes(b"old")
    obj = {"w": torch.arange(10000.0)}
    full_disk(monkeypatch)
    with pytest.raises(DiskFullError) as info:
        fileio.atomic_save_torch(target, obj)
    monkeypatch.undo()
    sink = io.BytesIO()
    torch.save(obj, sink)
    message = str(info.value)
    assert message.startswith(f"{target}: no space left on device: writing it needs ")
    assert f"({len(sink.getvalue())} bytes)" in message and "\n" not in message
    assert target.read_bytes() == b"old"                # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]  # no temporary left


def test_full_disk_while_writing_json_names_the_file_and_the_size(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    obj = {"x": list(range(1000))}
    full_disk(monkeypatch)
    with pytest.raises(DiskFullError) as info:
        fileio.atomic_write_json(target, obj)
    monkeypatch.undo()
    size = len((json.dumps(obj, indent=2) + "\n").encode())
    assert str(info.value).startswith(f"{target}: no space left on device: writing it needs")
    assert f"({size} bytes)" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_full_disk_during_training_is_one_line_and_leaves_nothing_to_trust(
        tiny_scenes, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    full_disk(monkeypatch, room=100_000)          # config.json fits, the checkpoint does not
    rc, _, err = run_cli(["train", "--data", tiny_scenes, "--out", out, "--epochs", "1",
                          "--image-size", "16", "--batch-size", "16", "--device", "cpu"],
                         capsys)
    monkeypatch.undo()
    line = one_error(err)
    assert rc == 2
    assert "best.pt: no space left on device: writing it needs" in line and "bytes" in line
    assert not (out / "best.pt").exists() and not (out / "checkpoint.pt").exists()
    assert not list(out.glob(".*.tmp*"))
    assert not RunFolder(out).finished


def test_full_disk_on_a_real_small_filesystem(tmp_path):
    """The same on a 64 kB tmpfs (needs root to mount; the monkeypatched tests above cover
    the logic everywhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                                            str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        with pytest.raises(DiskFullError, match=r"big\.pt: no space left on device: writing "
                                                r"it needs 4\d\d\.\d kB"):
            fileio.atomic_save_torch(mnt / "big.pt", {"w": torch.zeros(100_000)})
        with pytest.raises(DiskFullError, match=r"big\.json: no space left on device"):
            fileio.atomic_write_json(mnt / "big.json", list(range(100_000)))
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# --------------------------------------------------------------------------- 4. label vectors


def glove(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vectors.txt"
    path.write_text(text)
    return path


GOOD = "sky 0.1 0.2 0.3\nsea 0.4 0.5 0.6\n"


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD + "sun nan 0.1 0.2\n", "line 3: word 'sun': value nan at position 1 is NaN"),
    (GOOD + "sun 0.1 inf 0.2\n", "line 3: word 'sun': value inf at position 2"),
    (GOOD + "sun 0.1 0.2 1e39\n", "line 3: word 'sun': value 1e39 at position 3"),
    (GOOD + "sun 0.1 0.2\n", "line 3: word 'sun' has 2 values, line 1 has 3"),
    (GOOD + "sun 0.1 x 0.2\n", "line 3: word 'sun': 'x' is not a number"),
    (GOOD + "sky 0.9 0.2 0.3\n", "line 3: word 'sky' is listed again with another vector "
                                 "(first at line 1)"),
    ("2 50\n" + GOOD, "line 2: word 'sky' has 3 values, the header (line 1) says 50"),
    ("5 3\n" + GOOD, "line 1: the header says 5 vectors but the file has 2"),
])
def test_bad_vector_files_are_refused_when_read(tmp_path, text, expected):
    path = glove(tmp_path, text)
    with pytest.raises(embeddings.EmbeddingError) as info:
        embeddings.label_vectors(["sky", "sea"], str(path))
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)


def test_embed_does_not_cache_bad_vectors(tiny_scenes, tmp_path, capsys):
    labels = datasets.load_dataset(tiny_scenes, check_images=False).labels
    rows = [f"{w} " + " ".join(["0.1"] * 4) for w in labels]
    rows[3] = f"{labels[3]} 0.1 nan 0.1 0.1"
    path = glove(tmp_path, "\n".join(rows) + "\n")
    rc, out, err = run_cli(["embed", tiny_scenes, "--source", path], capsys)
    line = one_error(err)
    assert rc == 2 and f"line 4: word {labels[3]!r}" in line
    npy, sidecar = embeddings.cache_paths(tiny_scenes, str(path))
    assert not npy.exists() and not sidecar.exists()


def test_a_cache_of_bad_vectors_is_not_trusted(tiny_scenes, tmp_path):
    """A cache written before the vectors were checked (NaN inside) is recomputed."""
    labels = datasets.load_dataset(tiny_scenes, check_images=False).labels
    path = glove(tmp_path, "".join(f"{w} 0.1 0.2\n" for w in labels))
    good = embeddings.cached_label_vectors(tiny_scenes, labels, str(path))
    npy, _ = embeddings.cache_paths(tiny_scenes, str(path))
    bad = good.copy()
    bad[0, 0] = np.nan
    np.save(npy, bad)
    again = embeddings.cached_label_vectors(tiny_scenes, labels, str(path))
    np.testing.assert_array_equal(again, good)


def test_identical_repeated_lines_are_read_once(tmp_path):
    path = glove(tmp_path, GOOD + "sky 0.1 0.2 0.3\n")
    np.testing.assert_allclose(embeddings.label_vectors(["sky", "sea"], str(path)),
                               [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], rtol=1e-6)


def test_missing_vectors_of_many_labels_name_the_first_few_and_the_count(tmp_path):
    path = glove(tmp_path, GOOD)
    labels = ["sky", *[f"qq{i:05d}" for i in range(10_000)]]
    with pytest.raises(embeddings.EmbeddingError) as info:
        embeddings.label_vectors(labels, str(path))
    message = str(info.value)
    assert len(message) < 1000
    assert message.startswith("10000 label(s) have no vector")
    assert "'qq00000'" in message and "'qq00009'" in message and "qq00010" not in message
    assert "and 9990 more" in message


# --------------------------------------------------------------------------- 5. annotate


def test_annotations_csv_is_unambiguous_for_multi_word_labels():
    rows = [{"image": "a.jpg", "labels": ["palm tree", "sky"], "scores": {"palm tree": 0.9,
                                                                           "palm": 0.1,
                                                                           "tree": 0.2,
                                                                           "sky": 0.8}},
            {"image": "b.jpg", "labels": ["palm", "tree"], "scores": {"palm tree": 0.1,
                                                                       "palm": 0.9,
                                                                       "tree": 0.8,
                                                                       "sky": 0.0}}]
    table = pd.read_csv(io.StringIO(inference.annotations_csv(rows)))
    assert [json.loads(x) for x in table["labels"]] == [["palm tree", "sky"], ["palm", "tree"]]


@pytest.fixture()
def image_folder(tiny_scenes, tmp_path):
    ds = datasets.load_dataset(tiny_scenes, check_images=False)
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    names = ds.splits["test"].names[:4]
    for n in names[:3]:
        shutil.copy(ds.image_path(n), folder / n)
    shutil.copy(ds.image_path(names[3]), folder / "sub" / names[3])
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    Image.new("RGB", (8, 8)).save(folder / "truncated.png")
    (folder / "truncated.png").write_bytes((folder / "truncated.png").read_bytes()[:30])
    return folder, names


def test_annotate_reports_each_bad_image_and_annotates_the_rest(tiny_run, image_folder,
                                                                 tmp_path, capsys):
    folder, names = image_folder
    out = tmp_path / "labels.csv"
    rc, _, err = run_cli(["annotate", tiny_run, folder, "--top-k", "2", "--output", out,
                          "--device", "cpu"], capsys)
    assert rc == 2 and "Traceback" not in err
    errors = [line[line.index("error: "):] for line in err.splitlines() if "error: " in line]
    assert len(errors) == 3
    assert any("broken.jpg" in e for e in errors) and any("truncated.png" in e for e in errors)
    assert "2 of 6 images could not be read; the others are annotated" in errors[-1]
    table = pd.read_csv(out)
    assert sorted(Path(p).name for p in table["image"]) == sorted(names)  # sub/ scanned
    pred = RunFolder(tiny_run).predictions()
    for _, row in table.iterrows():
        best2 = pred.loc[Path(row["image"]).name].astype(float).nlargest(2).index
        assert json.loads(row["labels"]) == list(best2)


def test_annotate_no_recursive_leaves_subfolders_out(tiny_run, image_folder, capsys):
    folder, names = image_folder
    (folder / "broken.jpg").unlink()
    (folder / "truncated.png").unlink()
    rc, out, _ = run_cli(["annotate", tiny_run, folder, "--no-recursive", "--format", "json",
                          "--device", "cpu"], capsys)
    assert rc == 0
    assert sorted(Path(r["image"]).name for r in json.loads(out)) == sorted(names[:3])


# --------------------------------------------------------------------------- 6. smaller


def test_train_out_problems_are_reported_before_the_set_up(tiny_scenes, tmp_path,
                                                           monkeypatch, capsys):
    def no_set_up(*args, **kwargs):
        raise AssertionError("the set-up started")

    monkeypatch.setattr(datasets, "load_dataset", no_set_up)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out, expected in ((a_file, "is a file"), (a_file / "run", "is a file")):
        rc, _, err = run_cli(["train", "--data", tiny_scenes, "--out", out], capsys)
        line = one_error(err)
        assert rc == 2 and str(a_file) in line and expected in line
    # a folder that refuses files (read-only: root ignores permissions, so simulated)
    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fileio, "temp_path_for", refuse)
    rc, _, err = run_cli(["train", "--data", tiny_scenes, "--out", tmp_path / "ro"], capsys)
    assert rc == 2 and "cannot write in" in one_error(err) and "Permission denied" in err


def test_annotate_output_problems_are_reported_before_loading_the_model(
        tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(inference, "load_model", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("model loaded")))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for output, expected in ((tmp_path, "is a folder"), (a_file / "x.csv", "is a file")):
        rc, _, err = run_cli(["annotate", tiny_run, tmp_path, "--output", output], capsys)
        assert rc == 2 and expected in one_error(err)
    with pytest.raises(OutputError):
        fileio.check_output_file(a_file / "x.csv")


def test_best_pt_stores_the_adjacency_once(tiny_run):
    state = torch.load(tiny_run / "best.pt", weights_only=True)
    assert "adjacency" not in state and "label_vectors" not in state
    held = [k for k in state["model"] if k.endswith("adjacency")]
    assert len(held) == 1
    n = len(state["labels"])
    assert tuple(state["model"][held[0]].shape) == (n, n)


def test_adjacency_once_saves_its_bytes_on_a_large_vocabulary(tmp_path):
    """A synthetic 2,000-label GCN checkpoint: storing the graph and vectors once saves
    C*C*4 + C*d*4 bytes (the 10,000-label claim: 400 MB + 12 MB of an 847 MB best.pt)."""
    from lib.method.models import build_model

    c, d = 2000, 300
    vectors = torch.randn(c, d)
    adjacency = torch.rand(c, c)
    model = build_model(c, head="gcn", backbone="resnet10t", label_vectors=vectors,
                        adjacency=adjacency, hidden=64)
    new = {"model": model.state_dict(), "labels": [f"l{i}" for i in range(c)]}
    old = {**new, "label_vectors": vectors, "adjacency": adjacency}
    fileio.atomic_save_torch(tmp_path / "new.pt", new)
    fileio.atomic_save_torch(tmp_path / "old.pt", old)
    saved = (tmp_path / "old.pt").stat().st_size - (tmp_path / "new.pt").stat().st_size
    assert saved == pytest.approx(c * c * 4 + c * d * 4, rel=0.001)


def test_an_old_best_pt_with_its_own_copies_still_loads(run_copy, tiny_scenes):
    run, root = run_copy
    model, cfg = inference.load_model(run)
    state = torch.load(run / "best.pt", weights_only=True)
    key = next(k for k in state["model"] if k.endswith("adjacency"))
    vec = next(k for k in state["model"] if k.endswith("label_vectors"))
    state["adjacency"], state["label_vectors"] = state["model"][key], state["model"][vec]
    torch.save(state, run / "best.pt")                      # the format before this change
    old, _ = inference.load_model(run)
    ds = datasets.load_dataset(root)
    a = inference.predict(model, ds, "test", config=cfg, device="cpu")
    b = inference.predict(old, ds, "test", config=cfg, device="cpu")
    np.testing.assert_array_equal(a, b)


def test_an_unsafe_checkpoint_is_refused_without_suggesting_unsafe_loading(run_copy, capsys):
    run, _ = run_copy

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > pwned.txt",))

    torch.save({"model": Evil()}, run / "best.pt")
    rc, _, err = run_cli(["evaluate", run, "--device", "cpu"], capsys)
    line = one_error(err)
    assert rc == 2 and "best.pt: refused" in line
    assert "weights_only" not in err and "False" not in err
    assert not Path("pwned.txt").exists()
