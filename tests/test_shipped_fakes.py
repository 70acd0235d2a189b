"""The fakes shipped with a dataset (the Kaggle release of Corel-5k: the reference's 13,500
`<stem>_aug*.jpeg` in images/ and its train_aug.json, without augment_logs/): an augmented
run trains on them; a named set of this project's fakes (``WGANConfig.fakes``) is written
beside them, byte for byte leaving them as they are, and training selects it with
``TrainConfig.aug_list``; nothing (``overwrite`` included) writes the shipped files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.core.config import ConfigError, given
from lib.data import augment_records, augmentation
from lib.data.datasets import DatasetError, aug_source_stem
from lib.data.drawn import standin
from lib.method.wgan import WGANConfig
from lib.training import launch, settings
from lib.training.runs import RunFolder
from lib.training.trainer import Trainer

#: 4 training images carry few of the 260 labels: the graph warns, rightly
pytestmark = pytest.mark.filterwarnings("ignore:.*never occur in the training targets")
#: training (and test) images of the stand-in release
N_TRAIN = 4
#: tiny WGAN settings of this project's fakes
TINY = {"iterations": 3, "image_size": "16x24", "width": 2, "crop_border": 0,
        "progress": False}


def _hashes(root: Path) -> dict[str, str]:
    """Every file of the folder (the records and locks of augment_logs/ aside): its hash."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()
            and p.relative_to(root).parts[0] != augment_records.LOG_DIR}


@pytest.fixture(scope="module")
def release(corel_dir, tmp_path_factory) -> Path:
    """A stand-in laid out like the Kaggle release: the real names and labels of the first
    training and test images, three shipped fakes per training image in images/ (noise
    JPEGs at 128x192, the WGAN's size), the real train_aug.json's entries of those images,
    and no augment_logs/."""
    root = standin.generate_standin(corel_dir, tmp_path_factory.mktemp("kaggle") / "corel5k",
                                    seed=0, progress=False, limit=N_TRAIN)
    stems = {Path(s["image_name"]).stem
             for s in json.loads((root / "train.json").read_text())["samples"]}
    shipped = [s for s in json.loads((corel_dir / "train_aug.json").read_text())["samples"]
               if aug_source_stem(s["image_name"]) in stems]
    rng = np.random.default_rng(0)
    for s in shipped:
        noise = rng.integers(0, 256, (128, 192, 3), dtype=np.uint8)
        Image.fromarray(noise).save(root / "images" / s["image_name"], format="JPEG")
    (root / "train_aug.json").write_text(json.dumps({"samples": shipped}))
    assert len(shipped) == 3 * N_TRAIN and not (root / augment_records.LOG_DIR).exists()
    return root


def _copy(release: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(release, tmp_path / "corel5k"))


def _trainer(root: Path, tmp_path: Path, corel_dir: Path, **kw) -> Trainer:
    """An augmented run (reference protocol: no carve, every training image trains)."""
    return Trainer(settings.TrainConfig(
        data=str(root), out=str(tmp_path / "run"), protocol="reference", augmented=True,
        epochs=1, image_size=16, batch_size=4, eval_batch_size=4, hidden=8, seed=0,
        embeddings=str(corel_dir / "glove300_corel5k.txt"), device="cpu", **kw))


def _shipped(root: Path) -> list[str]:
    return [s["image_name"] for s in json.loads((root / "train_aug.json").read_text())["samples"]]


def test_an_augmented_run_trains_on_the_shipped_fakes(release, tmp_path, corel_dir):
    root = _copy(release, tmp_path)
    trainer = _trainer(root, tmp_path, corel_dir)
    assert trainer.cfg["aug_list"] == "train_aug.json"
    assert trainer.dataset.splits["train_aug"].names == _shipped(root)
    assert trainer.augmentation == {"images": N_TRAIN, "of": N_TRAIN, "fakes": 3 * N_TRAIN,
                                    "select": None}  # no record of ours: made elsewhere
    assert len(trainer.train_images) == 4 * N_TRAIN


@pytest.mark.slow
def test_a_named_set_is_written_beside_the_shipped_fakes_and_trained_on(release, tmp_path,
                                                                        corel_dir):
    root = _copy(release, tmp_path)
    before = _hashes(root)
    # the unnamed set is the shipped one: refused, overwrite or not, naming the new setting
    for overwrite in (False, True):
        with pytest.raises(augment_records.SettingsMismatch, match="--fakes NAME"):
            augmentation.augment(root, limit=2, overwrite=overwrite, **TINY)
    assert _hashes(root) == before
    summary = augmentation.augment(root, fakes="ours", limit=2, **TINY)
    assert summary["trained"] == 2 and summary["train_aug"].endswith("/train_aug_ours.json")
    after = _hashes(root)
    assert {k: after[k] for k in before} == before            # every shipped file as it was
    new = sorted(set(after) - set(before))
    ours = [f"images/{a}" for s in _shipped(root)[:6:3]
            for a in augment_records.aug_names(aug_source_stem(s) + ".jpeg", "ours")]
    assert new == sorted([*ours, "train_aug_ours.json"])
    assert (root / "augment_logs" / "ours" / "config.json").is_file()
    assert not (root / "augment_logs" / "config.json").exists()
    listed = json.loads((root / "train_aug_ours.json").read_text())["samples"]
    assert [s["image_name"] for s in listed] == [n.removeprefix("images/") for n in ours]
    # training selects the named set's list, and records which one
    trainer = _trainer(root, tmp_path, corel_dir, aug_list="train_aug_ours.json")
    assert trainer.dataset.splits["train_aug"].names == [s["image_name"] for s in listed]
    assert trainer.augmentation["select"] == "first"           # our record of the set
    run = RunFolder(trainer.run())
    assert run.config["aug_list"] == "train_aug_ours.json"
    assert run.config["n_train"] == N_TRAIN + 6
    assert _hashes(root) == after


@pytest.mark.slow
def test_overwrite_of_a_named_set_redoes_that_set_only(release, tmp_path):
    root = _copy(release, tmp_path)
    augmentation.augment(root, fakes="a", limit=2, **TINY)
    augmentation.augment(root, fakes="b", limit=2, **TINY)
    before = _hashes(root)
    with pytest.raises(augment_records.SettingsMismatch, match="other settings"):
        augmentation.augment(root, fakes="a", limit=2, seed=1, **TINY)
    assert augmentation.augment(root, fakes="a", limit=2, seed=1, overwrite=True,
                                **TINY)["trained"] == 2
    after = _hashes(root)
    changed = sorted(k for k in before if after[k] != before[k])
    assert changed == sorted(k for k in before if k.startswith("images/a/"))
    assert len(changed) == 6
    # the other set keeps its own record: a plain rerun with its settings does no work
    assert augmentation.augment(root, fakes="b", limit=2, **TINY)["trained"] == 0
    assert augment_records.read_config(root, "a")["settings"]["seed"] == 1
    assert augment_records.read_config(root, "b")["settings"]["seed"] == 0


def test_a_shipped_list_without_fakes_is_never_rewritten(release, tmp_path):
    """train_aug.json without our record is someone else's even when its images are absent
    (e.g. not downloaded yet): the unnamed set is refused, overwrite or not."""
    root = _copy(release, tmp_path)
    for name in _shipped(root):
        (root / "images" / name).unlink()
    before = (root / "train_aug.json").read_bytes()
    for overwrite in (False, True):
        with pytest.raises(augment_records.SettingsMismatch, match="train_aug.json exists"):
            augmentation.augment(root, limit=1, overwrite=overwrite, **TINY)
    assert (root / "train_aug.json").read_bytes() == before
    assert not list((root / "images").glob("*_aug*.jpeg"))


def test_the_settings_name_a_file_of_the_dataset(release, tmp_path, corel_dir):
    args = augmentation.build_parser().parse_args(["data", "--fakes", "ours"])
    assert augmentation.config_from_args(args).fakes == "ours"
    assert WGANConfig().fakes == "" and settings.TrainConfig().aug_list == "train_aug.json"
    args = launch.train_parser().parse_args(["--aug-list", "train_aug_ours.json"])
    assert settings.build_config("default", given(args, settings.TrainConfig)).aug_list == \
        "train_aug_ours.json"
    with pytest.raises(ConfigError, match="TrainConfig.aug_list"):
        settings.TrainConfig(aug_list="../train_aug.json")
    with pytest.raises(ConfigError, match="WGANConfig.fakes"):
        WGANConfig(fakes="a/b")
    root = _copy(release, tmp_path)
    with pytest.raises(DatasetError, match=r"train_aug_mine\.json: .*--fakes mine"):
        _trainer(root, tmp_path, corel_dir, aug_list="train_aug_mine.json")


def test_a_named_set_never_shares_a_folder_with_training_images(release, tmp_path):
    """Training image ``ours/1000.jpeg`` ships ``images/ours/1000_aug.jpeg``, the name set
    ``ours`` would give the fakes of ``1000.jpeg``: that name is refused."""
    root = _copy(release, tmp_path)
    train = json.loads((root / "train.json").read_text())
    old = train["samples"][1]["image_name"]
    train["samples"][1]["image_name"] = "ours/1000.jpeg"
    (root / "train.json").write_text(json.dumps(train))
    (root / "images" / "ours").mkdir()
    (root / "images" / old).rename(root / "images" / "ours" / "1000.jpeg")
    aug = json.loads((root / "train_aug.json").read_text())
    for s in aug["samples"]:
        if aug_source_stem(s["image_name"]) == Path(old).stem:
            new = "ours/1000" + s["image_name"].removeprefix(Path(old).stem)
            (root / "images" / s["image_name"]).rename(root / "images" / new)
            s["image_name"] = new
    (root / "train_aug.json").write_text(json.dumps(aug))
    before = _hashes(root)
    with pytest.raises(ConfigError, match="choose another fakes name"):
        augmentation.augment(root, fakes="ours", limit=1, overwrite=True, **TINY)
    assert _hashes(root) == before
