"""Training configurations and the comparisons between them.

A **configuration** is one named entry of a parameter set's ``runs:`` (``gcn-asl``), trained
once per seed: its run folders ``runs/<name>/seed-<n>/`` (or a single ``runs/<name>/``),
read through :class:`lib.training.runs.RunFolder`. :func:`configurations` groups run folders by the
``run_name`` of their config.json.

A configuration is described by four **dimensions**: the head, the label vectors (GloVe or
not), WGAN augmentation and the adjacency recipe. The baseline of a head has GloVe vectors,
no augmentation and the ``seed`` adjacency. A **comparison** pairs a configuration with the
one that differs from it in exactly one dimension (everything else in :data:`MATCH_KEYS`
equal): the identity graph against the label graph, random vectors against GloVe, with and
without augmentation, the ml-gcn recipe against the seed one, and a head against the heads it
is measured against (``lib.method.heads.Head.baselines``: the GCN against the CNN-only head, a new
GCN variant such as ``gcn-residual`` against both). What each head is (its baselines, whether
it uses the graph and the label vectors, its name in the tables) is said in :mod:`lib.method.heads`;
a configuration of a head not registered there is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lib.core import paths
from lib.core.errors import AIAError
from lib.method import embeddings, graph, heads
from lib.training.runs import RunFolder

#: kinds of label-vector source (lib.method.embeddings.source_kind) that are not word embeddings
NON_GLOVE_EMBEDDINGS = ("random", "onehot")
GLOVE = "glove"
BASELINE_ADJACENCY = graph.RECIPES[0]
#: configuration keys two configurations must share to be compared
MATCH_KEYS = (
    "dataset_name", "num_labels", "standin", "protocol", "selection_split", "backbone",
    "image_size", "epochs", "schedule_epochs", "batch_size", "lr", "weight_decay", "loss",
    "select_metric", "patience", "schedule", "warmup", "ema", "grad_clip", "pretrained",
    "weights", "hidden", "normalization", "flips",
)


class ComparisonError(AIAError):
    """Run folders that cannot be grouped into configurations; names the folders."""


def embedding_kind(source: Any) -> str:
    """``glove`` for word vectors, else the ablation source (``random``, ``onehot``)."""
    kind = embeddings.source_kind(str(source or ""))
    return kind if kind in NON_GLOVE_EMBEDDINGS else GLOVE


def head_order() -> tuple[str, ...]:
    """The main table's heads come first, in this order (lib.method.heads ``table_rank``); other
    heads follow by name."""
    return heads.table_order()


def uses_graph(head: str) -> bool:
    """Whether ``head`` uses the label graph (else its adjacency setting is irrelevant)."""
    return heads.get(head).uses_graph


def uses_vectors(head: str) -> bool:
    """Whether ``head`` uses the label vectors (else its embeddings setting is irrelevant)."""
    return heads.get(head).uses_vectors


def head_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The head settings (lib.method.heads ``SETTINGS``) the configuration's head takes; the
    others are irrelevant to it, like the embeddings of a head without label vectors."""
    return {k: config.get(k) for k in heads.get(str(config.get("head", ""))).settings}


def _same_head_settings(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two configurations agree on every head setting both their heads take."""
    sa, sb = head_settings(a), head_settings(b)
    return all(sa[k] == sb[k] for k in sa.keys() & sb.keys())


def dims(config: dict[str, Any]) -> dict[str, Any]:
    """The comparison dimensions of a configuration (``None`` where irrelevant to its head)."""
    head = str(config.get("head", ""))
    source = config.get("embeddings")
    return {
        "head": head,
        "embeddings": str(source or "") if uses_vectors(head) else None,
        "augmented": bool(config.get("augmented", False)),
        "adjacency": str(config.get("adjacency") or BASELINE_ADJACENCY) if uses_graph(head)
        else None,
    }


@dataclass
class Configuration:
    """One training configuration: its run folders by seed."""

    name: str
    runs: dict[int, RunFolder] = field(default_factory=dict)

    @property
    def first(self) -> RunFolder:
        return self.runs[min(self.runs)]

    @property
    def config(self) -> dict[str, Any]:
        return self.first.config

    @property
    def seeds(self) -> list[int]:
        return sorted(self.runs)

    @property
    def evaluated(self) -> dict[int, RunFolder]:
        """The seeds whose run has metrics.json (finished)."""
        return {s: r for s, r in sorted(self.runs.items()) if r.finished}

    @property
    def leaky(self) -> bool:
        return any(r.leaky for r in self.runs.values())

    @property
    def standin(self) -> bool:
        return any(r.standin for r in self.runs.values())

    @property
    def dataset_name(self) -> str:
        return self.first.dataset_name

    @property
    def num_labels(self) -> int | None:
        labels = self.config.get("labels")
        return len(labels) if isinstance(labels, list) else self.config.get("num_labels")

    @property
    def dims(self) -> dict[str, Any]:
        return dims(self.config)

    @property
    def head(self) -> str:
        return str(self.config.get("head", ""))

    @property
    def loss(self) -> str:
        return str(self.config.get("loss", ""))

    def augmentation(self) -> str | None:
        """:func:`augmentation_text` of the configuration."""
        return augmentation_text(self.config)


def augmentation_text(config: dict[str, Any]) -> str | None:
    """``"16 of 1500 training images"`` for an augmented run (config.json ``augmentation``:
    how many source images have fakes, of how many), ``None`` when not augmented."""
    if not config.get("augmented"):
        return None
    info = config.get("augmentation")
    if not isinstance(info, dict) or "images" not in info:
        return "count of augmented images not recorded"
    return f"{info['images']} of {info.get('of', '?')} training images"


def configurations(runs: Iterable[RunFolder]) -> list[Configuration]:
    """Group run folders by ``run_name`` and seed; two folders with the same name and seed,
    or seeds of one name with different settings, are an error naming the folders."""
    groups: dict[str, Configuration] = {}
    for run in runs:
        seed = int(run.config.get("seed", 0))
        conf = groups.setdefault(run.name, Configuration(run.name))
        if seed in conf.runs:
            raise ComparisonError(
                f"run {run.name!r} seed {seed} is in two folders: "
                f"{paths.portable(conf.runs[seed].path)} and {paths.portable(run.path)}")
        if conf.runs:
            ref = conf.first
            keys = (*MATCH_KEYS, "head", "embeddings", "augmented", "adjacency",
                    *head_settings(ref.config))
            differ = [k for k in keys if ref.config.get(k) != run.config.get(k)]
            if differ:
                raise ComparisonError(
                    f"run {run.name!r}: {paths.portable(run.path)} and "
                    f"{paths.portable(ref.path)} differ in {differ}; the seeds of one "
                    "configuration must share every setting")
        conf.runs[seed] = run
    return sorted(groups.values(), key=lambda c: c.name)


def head_baselines(head: str) -> tuple[str, ...]:
    """The heads ``head`` is compared with (an unregistered head is an error)."""
    return heads.get(head).baselines


def at_baseline(d: dict[str, Any]) -> bool:
    """GloVe vectors (or none), no augmentation, the seed adjacency (or none)."""
    return (not d["augmented"]
            and (d["embeddings"] is None or embedding_kind(d["embeddings"]) == GLOVE)
            and d["adjacency"] in (None, BASELINE_ADJACENCY))


def is_main(conf: Configuration) -> bool:
    """A configuration of the main table: a candidate head on its baseline settings."""
    return not heads.get(conf.dims["head"]).ablation and at_baseline(conf.dims)


def head_name(head: str) -> str:
    """The head's name in the tables."""
    return heads.get(head).title


def _wanted_comparisons(d: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    """(description, the dimensions of the configuration to compare with, whether the
    comparison is kept without a baseline). Heads are compared on their baseline settings
    only, and only with heads the set trained; any other configuration along the one
    dimension in which it differs from its head's baseline, even when that baseline is
    missing (the table then says so)."""
    out: list[tuple[str, dict[str, Any], bool]] = []
    for base in head_baselines(d["head"]) if at_baseline(d) else ():
        wanted = {**d, "head": base,
                  "embeddings": (d["embeddings"] or GLOVE) if uses_vectors(base) else None,
                  "adjacency": (d["adjacency"] or BASELINE_ADJACENCY) if uses_graph(base)
                  else None}
        what = (heads.get(d["head"]).comparison
                or f"{head_name(d['head'])} head instead of {head_name(base)}")
        out.append((what, wanted, False))
    if d["embeddings"] is not None and embedding_kind(d["embeddings"]) != GLOVE:
        out.append((f"{embedding_kind(d['embeddings'])} label vectors instead of GloVe",
                    {**d, "embeddings": GLOVE}, True))
    if d["augmented"]:
        out.append(("with WGAN augmentation", {**d, "augmented": False}, True))
    if d["adjacency"] not in (None, BASELINE_ADJACENCY):
        out.append((f"adjacency {d['adjacency']} instead of {BASELINE_ADJACENCY}",
                    {**d, "adjacency": BASELINE_ADJACENCY}, True))
    return out


def _matches(have: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        if key == "embeddings" and value == GLOVE and have[key] is not None:
            if embedding_kind(have[key]) != GLOVE:
                return False
        elif have[key] != value:
            return False
    return True


@dataclass
class Comparison:
    """A configuration against the one it differs from in one dimension."""

    what: str                          #: e.g. "with WGAN augmentation"
    run: Configuration
    baseline: Configuration | None     #: None when the parameter set has no such run

    @property
    def paired_seeds(self) -> list[int]:
        """Seeds with a finished run on both sides."""
        if self.baseline is None:
            return []
        return sorted(set(self.run.evaluated) & set(self.baseline.evaluated))


def comparisons(confs: Sequence[Configuration]) -> list[Comparison]:
    """Every comparison among ``confs``, in their order."""
    out = []
    for conf in confs:
        for what, wanted, keep in _wanted_comparisons(conf.dims):
            base = next((o for o in confs if o is not conf
                         and all(o.config.get(k) == conf.config.get(k) for k in MATCH_KEYS)
                         and _same_head_settings(o.config, conf.config)
                         and _matches(o.dims, wanted)), None)
            if base is not None or keep:
                out.append(Comparison(what, conf, base))
    return out


def head_pairs(confs: Sequence[Configuration], head: str = "gcn",
               baseline: str = "linear") -> list[Comparison]:
    """The comparisons of configurations with head ``head`` against ``baseline`` (same loss,
    same settings), for which both sides exist."""
    return [c for c in comparisons(confs) if c.baseline is not None
            and c.run.head == head and c.baseline.head == baseline]
