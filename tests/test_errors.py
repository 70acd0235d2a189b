"""One error path for every command: `error: <file>: <problem>` on one line, exit code 2;
--debug / AIA_DEBUG=1 add the traceback; Ctrl-C is `interrupted`, 130; bugs keep their
traceback. Plus the settings checks everyone validates with."""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lib import cli
from lib.core import errors, paths
from lib.core.config import check_probability, check_value_range
from lib.core.errors import AIAError, CorruptFileError, SettingsError
from lib.data import datasets


def lib_command(*args: str, env: dict | None = None, timeout: int = 120):
    """``python -m lib ARGS`` in a fresh interpreter (this checkout's lib)."""
    return subprocess.run([sys.executable, "-m", "lib", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(paths.ROOT), **(env or {})})


def latin1_dataset(root: Path) -> Path:
    root.mkdir(parents=True)
    labels = ["café", "sky"]
    train = {"labels": labels, "samples": [{"image_name": "a.jpeg", "image_labels": ["café"]}]}
    (root / "train.json").write_bytes(json.dumps(train, ensure_ascii=False).encode("latin-1"))
    test = {"labels": labels, "samples": [{"image_name": "b.jpeg", "image_labels": ["sky"]}]}
    (root / "test.json").write_text(json.dumps(test))
    return root


# --------------------------------------------------------------------------- the command line


def test_stats_on_a_latin1_train_json_is_one_line_and_exit_2(tmp_path):
    root = latin1_dataset(tmp_path / "ds")
    position = (root / "train.json").read_bytes().index(b"\xe9")
    run = lib_command("stats", root)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == (f"error: {root / 'train.json'}: not UTF-8 text (byte 0xe9 at "
                          f"position {position}, line 1); save the file as UTF-8\n")


def test_score_on_an_empty_file_is_one_line_and_exit_2(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    for split in ("train", "test"):
        (root / f"{split}.json").write_text(json.dumps({"labels": ["sky"], "samples": [
            {"image_name": f"{split}{i}.jpeg", "image_labels": ["sky"]} for i in range(3)]}))
    empty = tmp_path / "predictions.csv"
    empty.write_bytes(b"")
    run = lib_command("score", empty, "--data", root)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == [f"error: {empty}: the file is empty (expected a header "
                                       "'image_name,<label>,...' and one row per image)"]


def test_debug_flag_anywhere_or_env_shows_the_traceback(tmp_path):
    root = latin1_dataset(tmp_path / "ds")
    last = f"error: {root / 'train.json'}: not UTF-8 text"
    for args, env in [(["--debug", "stats", root], None), (["stats", root, "--debug"], None),
                      (["stats", root], {"AIA_DEBUG": "1"})]:
        run = lib_command(*args, env=env)
        lines = run.stderr.splitlines()
        assert run.returncode == 2, run.stderr
        assert lines[0] == "Traceback (most recent call last):"
        assert "UnicodeDecodeError" in run.stderr and "DatasetError: " in run.stderr
        assert lines[-1].startswith(last)
    # AIA_DEBUG=0 is off
    run = lib_command("stats", root, env={"AIA_DEBUG": "0"})
    assert len(run.stderr.splitlines()) == 1


def test_usage_errors_keep_argparse_exit_code(tmp_path):
    run = lib_command("score", "--data")
    assert run.returncode == 2 and run.stderr.startswith("usage: python -m lib score")
    run = lib_command("nonsense")
    assert run.returncode == 2 and "unknown command 'nonsense'" in run.stderr


_SLOW_COMMAND = """
import signal, sys, time
# a process started in the background inherits SIGINT ignored; a terminal's Ctrl-C is not
signal.signal(signal.SIGINT, signal.default_int_handler)
import lib.data.datasets
from lib.cli import main

def slow(argv):
    print("ready", flush=True)
    time.sleep(60)

lib.data.datasets.stats_main = slow
raise SystemExit(main(["stats", "x"]))
"""


def test_ctrl_c_prints_interrupted_and_exits_130():
    child = subprocess.Popen([sys.executable, "-c", _SLOW_COMMAND], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(paths.ROOT)})
    try:
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130 and err == "interrupted\n"


def test_bugs_keep_their_traceback_and_errors_are_one_line(monkeypatch, capsys):
    def bug(argv):
        return {}["missing key"]  # a KeyError: a bug, not bad input

    monkeypatch.setattr(datasets, "stats_main", bug)
    with pytest.raises(KeyError):
        cli.main(["stats", "x"])

    def bad_input(argv):
        raise datasets.DatasetError("ds/train.json: line one\n  and line two")

    monkeypatch.setattr(datasets, "stats_main", bad_input)
    assert cli.main(["stats", "x"]) == 2
    assert capsys.readouterr().err == "error: ds/train.json: line one; and line two\n"

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "stats_main", interrupted)
    assert cli.main(["stats", "x"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_a_closed_stdout_is_not_an_error(tmp_path):
    # ``python -m lib stats ... | head -1``: the reader leaves before the writer is done
    child = subprocess.Popen(
        [sys.executable, "-c", "import lib.data.datasets, sys\n"
         "from lib.cli import main\n"
         "def chatty(argv):\n"
         "    for i in range(10**6):\n"
         "        print('line', i)\n"
         "lib.data.datasets.stats_main = chatty\n"
         "raise SystemExit(main(['stats', 'x']))\n"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(paths.ROOT)})
    assert child.stdout.readline() == b"line 0\n"
    child.stdout.close()
    err = child.stderr.read()
    child.wait(timeout=60)
    child.stderr.close()
    assert (child.returncode, err) == (141, b"")


def test_debug_flag_is_removed_before_the_command_sees_it(monkeypatch):
    seen = []
    monkeypatch.setattr(datasets, "stats_main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["--debug", "stats", "x", "--debug", "--", "--debug"]) == 0
    assert seen == [["x", "--", "--debug"]]
    assert errors.debug_requested(["a", "--debug"])
    assert not errors.debug_requested(["--", "--debug"])


# --------------------------------------------------------------------------- describe()


def _raised(func) -> BaseException:
    try:
        func()
    except BaseException as exc:  # noqa: BLE001 - the point is to capture it
        return exc
    raise AssertionError("nothing was raised")


def test_foreign_errors_become_one_line_naming_what_they_can(tmp_path):
    missing = tmp_path / "nope.json"
    (tmp_path / "text.png").write_text("not an image")
    cases = [
        (lambda: missing.read_text(), f"{missing}: No such file or directory"),
        (lambda: json.loads('{"a": }'), "malformed JSON (Expecting value: line 1 column 7 "
                                        "(char 6))"),
        (lambda: b"caf\xe9".decode("utf-8"), "not UTF-8 text (byte 0xe9 at position 3); save "
                                             "the file as UTF-8"),
        (lambda: Image.open(tmp_path / "text.png"), f"{tmp_path / 'text.png'}: not an image "
                                                    "PIL can read"),
        (lambda: yaml.safe_load("a: [1\nb: 2"), "malformed YAML (while parsing a flow sequence"),
        (lambda: pickle.loads(b"\x80\x04garbage"), "truncated or corrupt file ("),
        (lambda: os.rename(tmp_path / "a", tmp_path / "b"),
         f"{tmp_path / 'a'} -> {tmp_path / 'b'}: No such file or directory"),
    ]
    for func, expected in cases:
        exc = _raised(func)
        assert errors.is_user_error(exc), exc
        text = errors.describe(exc)
        assert text.startswith(expected) and "\n" not in text, (text, expected)
    bomb = Image.DecompressionBombError("Image size (400000000 pixels) exceeds limit")
    assert errors.is_user_error(bomb)
    assert errors.describe(bomb).startswith("image too large to decode safely")
    assert not errors.is_user_error(KeyError("x")) and not errors.is_user_error(TypeError())
    assert not errors.is_user_error(RuntimeError("a bug"))


def test_an_error_from_a_dataloader_worker_keeps_its_own_line():
    from torch._utils import ExceptionWrapper

    try:
        raise datasets.DatasetError("ds/images/a.png: unreadable image (truncated)")
    except datasets.DatasetError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    exc = _raised(wrapped.reraise)
    assert isinstance(exc, datasets.DatasetError) and "Original Traceback" in str(exc)
    assert errors.describe(exc) == ("ds/images/a.png: unreadable image (truncated) (raised in "
                                    "a data-loader worker)")


def test_report_returns_exit_codes_and_reraises_bugs(capsys):
    assert errors.report(CorruptFileError("x.pt: truncated")) == 2
    assert capsys.readouterr().err == "error: x.pt: truncated\n"
    assert errors.report(KeyboardInterrupt()) == 130
    with pytest.raises(ZeroDivisionError):
        errors.report(_raised(lambda: 1 / 0))


def test_project_errors_share_the_base_class():
    from lib.data.predictions import PredictionsError

    for cls in (datasets.DatasetError, CorruptFileError, SettingsError, PredictionsError):
        assert issubclass(cls, AIAError) and issubclass(cls, ValueError)


# --------------------------------------------------------------------------- settings checks


@pytest.mark.parametrize("args, kwargs, message", [
    (("lr", math.nan, 0), {}, "lr must be a finite number, got nan"),
    (("lr", "0.1", 0), {}, "lr must be a number, got '0.1'"),
    (("lr", True, 0), {}, "lr must be a number, got True"),
    (("scale", math.inf), {}, "scale must be a finite number, got inf"),
    (("t", 0.0, 0.0, 1.0), {"low_open": True}, "t must be in (0, 1], got 0.0"),
    (("t", 1.0, 0.0, 1.0), {"high_open": True}, "t must be in [0, 1), got 1.0"),
    (("w", -1, 0), {}, "w must be in [0, inf), got -1"),
])
def test_value_checks_refuse_bad_values(args, kwargs, message):
    with pytest.raises(SettingsError) as info:
        check_value_range(*args, **kwargs)
    assert str(info.value) == message


def test_value_checks_pass_good_values_through_and_name_where():
    assert check_value_range("batch_size", np.int64(8), 1) == 8
    assert check_probability("p", 0) == 0 and check_probability("p", 1.0) == 1.0
    assert check_value_range("t", 5, low=0) == 5
    with pytest.raises(SettingsError, match=r"^dropout must be in \[0, 1\], got 1\.5$"):
        check_probability("dropout", 1.5)
    with pytest.raises(SettingsError,
                       match=r"^thresholds\.json: p must be in \[0, 1\], got -0\.1$"):
        check_probability("p", -0.1, where="thresholds.json")
