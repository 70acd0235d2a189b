"""lib.core.fileio: atomic writes keep content and the usual file mode, and a killed write leaves a
temporary that clean_stale_temps recognises; file readers name the file; records round-trip."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lib.core import fileio, glue, paths, provenance
from lib.core.errors import CorruptFileError


def test_atomic_write_replaces_content_with_the_usual_mode(tmp_path):
    target = tmp_path / "sub" / "a.json"
    fileio.atomic_write_json(target, {"x": 1})
    fileio.atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]  # no temporary left


def test_atomic_save_keeps_the_suffix_and_cleans_up_on_failure(tmp_path):
    seen = []
    fileio.atomic_save(tmp_path / "f.png", lambda p: (seen.append(p.suffix), p.write_bytes(b"1")))
    assert seen == [".png"] and (tmp_path / "f.png").read_bytes() == b"1"

    def broken(p):
        p.write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        fileio.atomic_save(tmp_path / "f.png", broken)
    assert (tmp_path / "f.png").read_bytes() == b"1"  # the old file survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_records_round_trip_through_a_notebook_file(tmp_path):
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {glue.RECORD_MIMETYPE: {"f1": 0.5}}},
        {"output_type": "display_data", "data": {glue.RECORD_MIMETYPE: {"n": 3}}},
    ]}]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    assert glue.notebook_records(path) == {"f1": 0.5, "n": 3}


# --------------------------------------------------------------------------- stale temporaries

_KILLED_WRITER = """
import sys, time
from lib.core.fileio import atomic_save

def save(path):
    path.write_bytes(b"x" * 100_000)  # a full-size file...
    print(path.name, flush=True)
    time.sleep(60)                     # ...and the process is killed before the rename

atomic_save(sys.argv[1], save)
"""


def _killed_save(target) -> tuple[str, int]:
    """Run an atomic save in a child process and SIGKILL it mid-save; the temp's name."""
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)],
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(paths.ROOT)})
    try:
        name = child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert name, "the writer did not start"
    return name, child.pid


def test_a_killed_save_leaves_a_recognisable_temp_that_clean_stale_temps_removes(tmp_path):
    target = tmp_path / "best.pt"
    name, pid = _killed_save(target)
    temp = tmp_path / name
    assert not target.exists() and temp.stat().st_size == 100_000
    assert name.startswith(f".best.pt.{pid}.") and name.endswith(".tmp.pt")
    # a live writer's temp (this process) and other files are left alone
    live = fileio.temp_path_for(tmp_path / "history.csv")
    (tmp_path / "notes.tmp").write_text("mine")
    (tmp_path / ".hidden").write_text("mine")
    assert fileio.clean_stale_temps(tmp_path, "*.csv") == []  # pattern: the target's name
    assert fileio.clean_stale_temps(tmp_path) == [temp]
    assert not temp.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, "notes.tmp", ".hidden"])
    # an old temp goes even when its pid is alive (a reused pid, another machine)
    old = time.time() - 25 * 3600
    os.utime(live, (old, old))
    legacy = tmp_path / ".metrics.json.abcd1234.tmp"  # earlier versions: no pid, age only
    legacy.write_text("{")
    assert fileio.clean_stale_temps(tmp_path, max_age_hours=48) == []
    os.utime(legacy, (old, old))
    assert fileio.clean_stale_temps(tmp_path) == sorted([legacy, live])
    assert fileio.clean_stale_temps(tmp_path / "missing") == []


def test_atomic_temps_keep_the_suffix_for_savers_that_need_it(tmp_path):
    np_target = tmp_path / "v.npy"
    fileio.atomic_save(np_target, lambda p: np.save(p, np.arange(3)))  # np.save adds .npy else
    assert np.load(np_target).tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["v.npy"]


# --------------------------------------------------------------------------- reading files


def test_load_torch_names_a_truncated_or_missing_file(tmp_path):
    import torch

    path = tmp_path / "best.pt"
    torch.save({"w": torch.arange(1000.0)}, path)
    assert fileio.load_torch(path)["w"].sum().item() == sum(range(1000))
    full = path.read_bytes()
    for cut in (len(full) // 2, 10, 0):
        path.write_bytes(full[:cut])
        with pytest.raises(CorruptFileError, match=rf"best\.pt: truncated or not a torch file "
                                                   rf"\({cut} bytes;.*delete it"):
            fileio.load_torch(path)
    with pytest.raises(FileNotFoundError, match=r"file not found: .*gone\.pt"):
        fileio.load_torch(tmp_path / "gone.pt")
    with pytest.raises(CorruptFileError, match="is a folder"):
        fileio.load_torch(tmp_path)
    # a pickle of arbitrary objects is refused by weights_only loading, naming the file
    torch.save({"f": Path("x")}, path)
    with pytest.raises(CorruptFileError, match=r"best\.pt: refused: holds objects other than "
                                               r"tensors .*pathlib\.PosixPath") as info:
        fileio.load_torch(path)
    # never relays torch's hint to load it unsafely
    assert "weights_only" not in str(info.value) and "False" not in str(info.value)
    assert info.value.__suppress_context__ and info.value.__cause__ is None


def test_read_text_json_yaml_name_the_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'{"x":\n "caf\xe9"}')
    with pytest.raises(CorruptFileError, match=r"a\.json: not UTF-8 text \(byte 0xe9 at "
                                               r"position 11, line 2\)"):
        fileio.read_json(path)
    path.write_bytes(b"\xef\xbb\xbf" + '{"x": "café"}'.encode())
    assert fileio.read_json(path) == {"x": "café"}
    path.write_text('{"x": }')
    with pytest.raises(CorruptFileError, match=r"a\.json: malformed JSON \(Expecting value: "
                                               r"line 1 column 7"):
        fileio.read_json(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        fileio.read_json(tmp_path / "missing.json")
    yml = tmp_path / "p.yaml"
    yml.write_text("a: 1\nb: [2\nc: 3\n")
    with pytest.raises(CorruptFileError, match=r"p\.yaml: malformed YAML at line \d+, column "):
        fileio.read_yaml(yml)
    yml.write_text("a: 1\n")
    assert fileio.read_yaml(yml) == {"a": 1}


def test_git_commit_is_dirty_for_code_changes_not_for_regenerated_results(tmp_path,
                                                                          monkeypatch):
    """The commit stamp of tables and benchmarks: ``-dirty`` when tracked code or docs
    changed, clean when only the committed results under results/ were regenerated."""
    import subprocess


    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results" / "default").mkdir(parents=True)
    (tmp_path / "results" / "default" / "main.csv").write_text("a\n1\n")
    (tmp_path / "lib.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "one")
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    sha = provenance.git_commit()
    assert len(sha) == 12 and not sha.endswith("-dirty")
    (tmp_path / "results" / "default" / "main.csv").write_text("a\n2\n")
    (tmp_path / "new.txt").write_text("untracked")
    assert provenance.git_commit() == sha
    (tmp_path / "lib.py").write_text("x = 2\n")
    assert provenance.git_commit() == sha + "-dirty"
