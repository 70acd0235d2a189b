"""The label heads: the one place that says what a head is (docs/extending.md, "Add a head").

A head maps the encoder's pooled features (N x D) to logits (N x C), or, a ``spatial`` head,
the encoder's unpooled feature map (N x D x H x W). Each is a :class:`Head` registered with
:func:`register_head`: how to build it, whether it uses the label vectors and the label
graph, which head settings (:data:`SETTINGS`) it takes, how the tables name it, what it is
compared with. Everything else
follows from here: the ``head`` setting's choices (``lib.training.settings.TrainConfig``),
:func:`lib.method.models.build_model`, which inputs the trainer prepares, and the comparisons and
tables (:mod:`lib.analysis.comparisons`).

This module imports no torch (the tables read it); the built-in builders import
:mod:`lib.method.head_modules` when a model is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lib.core.errors import SettingsError

#: what a head not saying otherwise is compared with: the CNN-only and the GCN head
DEFAULT_BASELINES = ("linear", "gcn")


class UnknownHeadError(SettingsError):
    """A head name that is not registered."""


class HeadSettingError(ValueError):
    """A head setting that is unknown, not one of the head's, or out of its range."""


@dataclass(frozen=True)
class HeadSetting:
    """A hyper-parameter of one or more heads: its default (the only place it is written;
    ``lib.training.settings.TrainConfig`` has a field of the same name with this default) and its
    range, ``[low, high]`` with open ends where said (``None``: unbounded; ``optional``:
    ``None`` is a valid value, with the meaning ``help`` gives)."""

    name: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting (None when it is valid)."""
        if value is None:
            return None if self.optional else "may not be None"
        kind = type(self.default)
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                (kind is int and not float(value).is_integer()):
            return f"must be {'an integer' if kind is int else 'a number'}, got {value!r}"
        if not math.isfinite(value):
            return f"must be finite, got {value!r}"
        low_bad = self.low is not None and (value <= self.low if self.low_open
                                            else value < self.low)
        high_bad = self.high is not None and (value >= self.high if self.high_open
                                              else value > self.high)
        if low_bad or high_bad:
            lo, hi = ("(" if self.low_open else "["), (")" if self.high_open else "]")
            return (f"must be in {lo}{'-inf' if self.low is None else self.low}, "
                    f"{'inf' if self.high is None else self.high}{hi}, got {value!r}")
        return None


#: the head settings (docs/method.md, "Attention heads"): one default each, here
SETTINGS: dict[str, HeadSetting] = {s.name: s for s in (
    HeadSetting("csra_temperature", 1.0, "CSRA softmax temperature T over the positions "
                "(none: T = inf, max pooling)", low=0, low_open=True, optional=True),
    HeadSetting("csra_lambda", 0.1, "CSRA weight of the attention logit", low=0),
    HeadSetting("decoder_dim", 128, "ML-Decoder width d_model", low=1),
    HeadSetting("decoder_heads", 4, "ML-Decoder attention heads (divide decoder_dim)", low=1),
    HeadSetting("decoder_layers", 1, "ML-Decoder layers (cross-attention + FFN)", low=1),
    HeadSetting("decoder_ffn", 512, "ML-Decoder feed-forward hidden size", low=1),
    HeadSetting("decoder_groups", 0, "ML-Decoder learnt queries K (group decoding; 0: one "
                "per label)", low=0),
    HeadSetting("decoder_dropout", 0.1, "ML-Decoder dropout", low=0, high=1, high_open=True),
)}


def check_settings(head: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings head ``head`` takes: its :data:`SETTINGS` defaults, then ``values``
    (each a setting of that head, in range); :class:`HeadSettingError` otherwise."""
    spec = get(head)
    unknown = sorted(k for k in values if k not in SETTINGS)
    if unknown:
        raise HeadSettingError(f"unknown head setting {unknown[0]!r}; head settings: "
                               f"{', '.join(SETTINGS)}")
    foreign = sorted(k for k in values if k not in spec.settings)
    if foreign:
        raise HeadSettingError(f"head {head!r} takes no setting {foreign[0]!r} (its settings: "
                               f"{', '.join(spec.settings) or 'none'})")
    out = {k: SETTINGS[k].default for k in spec.settings}
    out.update(values)
    for key, value in out.items():
        problem = SETTINGS[key].problem(value)
        if problem:
            raise HeadSettingError(f"head {head!r}: {key} {problem}")
    if "decoder_heads" in out and out["decoder_dim"] % out["decoder_heads"]:
        raise HeadSettingError(f"head {head!r}: decoder_dim ({out['decoder_dim']}) must "
                               f"divide by decoder_heads ({out['decoder_heads']})")
    return out


@dataclass(frozen=True)
class Head:
    """What a label head is.

    ``build(dim, num_labels, *, label_vectors, adjacency, hidden, **settings)`` returns the
    head as an ``nn.Module`` mapping features (N x ``dim``) to logits (N x ``num_labels``);
    a ``spatial`` head maps the unpooled feature map (N x ``dim`` x H x W) instead. It gets
    ``label_vectors`` (a float tensor C x d) only when ``uses_vectors`` and ``adjacency``
    (C x C) only when ``uses_graph``, ``None`` otherwise, and as keyword arguments exactly
    the head settings named in ``settings`` (keys of :data:`SETTINGS`; a head without
    settings gets none). A module with a ``classifiers()``
    method (C x D) and a ``graph_share()`` method (C,) is seen by
    ``AnnotationModel.label_classifiers()`` and ``.graph_share()``."""

    name: str
    build: Callable[..., Any]
    #: needs the label vectors (C x d); else the embeddings setting is irrelevant to it
    uses_vectors: bool = True
    #: needs the label graph (C x C); else the adjacency setting is irrelevant to it
    uses_graph: bool = True
    #: a linear head plus a zero-initialised GCN part (``models.RESIDUAL_HEADS``)
    residual: bool = False
    #: its name in the tables (default: ``name``)
    label: str | None = None
    #: the heads it is compared with (same loss and settings)
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    #: how that comparison is described (default "<label> head instead of <its label>")
    comparison: str | None = None
    #: an ablation, not a candidate of the main table
    ablation: bool = False
    #: its place in the main table (unranked heads follow the ranked ones, by name)
    table_rank: int | None = None
    #: takes the backbone's unpooled feature map (N x D x H x W), not pooled features
    spatial: bool = False
    #: the head settings (keys of :data:`SETTINGS`) its builder takes as keyword arguments
    settings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a head's name must be a non-empty string, got {self.name!r}")
        if not callable(self.build):
            raise TypeError(f"head {self.name!r}: build must be callable")
        object.__setattr__(self, "baselines", tuple(self.baselines))
        object.__setattr__(self, "settings", tuple(self.settings))
        unknown = [k for k in self.settings if k not in SETTINGS]
        if unknown:
            raise ValueError(f"head {self.name!r}: unknown head setting {unknown[0]!r} "
                             f"(lib.method.heads.SETTINGS: {', '.join(SETTINGS)})")

    @property
    def title(self) -> str:
        return self.label or self.name


_REGISTRY: dict[str, Head] = {}


def register_head(head: Head, *, replace: bool = False) -> Head:
    """Add ``head`` to the registry (a name already taken is an error unless ``replace``);
    returns it. Its name is a valid ``head`` setting from then on."""
    if not isinstance(head, Head):
        raise TypeError(f"register_head takes a lib.method.heads.Head, got {type(head).__name__}")
    if head.name in _REGISTRY and not replace:
        raise ValueError(f"head {head.name!r} is already registered (replace=True to "
                         "replace it)")
    _REGISTRY[head.name] = head
    return head


def unregister_head(name: str) -> None:
    """Remove a registered head (tests)."""
    get(name)
    del _REGISTRY[name]


def get(name: str) -> Head:
    """The registered head ``name``; :class:`UnknownHeadError` otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownHeadError(f"unknown head {name!r}; registered heads: "
                               f"{', '.join(_REGISTRY)} (add one with "
                               "lib.method.heads.register_head, docs/extending.md)") from None


def names() -> tuple[str, ...]:
    """The registered heads, in registration order (the order reports list them)."""
    return tuple(_REGISTRY)


def residual_names() -> tuple[str, ...]:
    return tuple(n for n, h in _REGISTRY.items() if h.residual)


def table_order() -> tuple[str, ...]:
    """The heads of the main table with a rank, in that order (others follow by name)."""
    ranked = [h for h in _REGISTRY.values() if h.table_rank is not None]
    return tuple(h.name for h in sorted(ranked, key=lambda h: h.table_rank))


# --------------------------------------------------------------------------- built-in heads
# the modules import torch: imported here only when a model is built


def _linear(dim, num_labels, *, label_vectors, adjacency, hidden):
    from torch import nn  # lazy import (torch)

    return nn.Linear(dim, num_labels)


def _gcn(dim, num_labels, *, label_vectors, adjacency, hidden):
    from lib.method.head_modules import GCNHead  # lazy import (torch)

    return GCNHead(label_vectors, adjacency, dim, hidden=hidden)


def _gcn_identity(dim, num_labels, *, label_vectors, adjacency, hidden):
    import torch  # lazy import (torch)

    from lib.method.head_modules import GCNHead  # lazy import (torch)

    return GCNHead(label_vectors, torch.eye(num_labels), dim, hidden=hidden)


def _residual(gcn_class: str):
    def build(dim, num_labels, *, label_vectors, adjacency, hidden):
        from torch import nn  # lazy import (torch)

        from lib.method import head_modules  # lazy import (torch)

        linear = nn.Linear(dim, num_labels)  # drawn first: the "linear" head's init
        gcn = getattr(head_modules, gcn_class)(label_vectors, adjacency, dim, hidden=hidden)
        return head_modules.ResidualGCNHead(linear, gcn)

    return build


def _csra(dim, num_labels, *, label_vectors, adjacency, hidden, csra_temperature,
          csra_lambda):
    from lib.method.head_modules import CSRAHead  # lazy import (torch)

    temperature = math.inf if csra_temperature is None else csra_temperature
    return CSRAHead(dim, num_labels, temperature=temperature, lam=csra_lambda)


def _mldecoder(dim, num_labels, *, label_vectors, adjacency, hidden, decoder_dim,
               decoder_heads, decoder_layers, decoder_ffn, decoder_groups=0,
               decoder_dropout):
    from lib.method.head_modules import MLDecoderHead  # lazy import (torch)

    return MLDecoderHead(dim, num_labels, d_model=decoder_dim, heads=decoder_heads,
                         layers=decoder_layers, ffn=decoder_ffn, dropout=decoder_dropout,
                         groups=decoder_groups, label_vectors=label_vectors)


_DECODER = ("decoder_dim", "decoder_heads", "decoder_layers", "decoder_ffn",
            "decoder_dropout")

for _head in (
    Head("gcn", _gcn, label="GCN", baselines=("linear",), table_rank=1),
    Head("linear", _linear, uses_vectors=False, uses_graph=False, label="CNN only (linear)",
         baselines=(), table_rank=0),
    Head("gcn-identity", _gcn_identity, uses_graph=False, label="GCN, A = I",
         baselines=("gcn",), comparison="identity graph (A = I) instead of the label graph",
         ablation=True),
    Head("gcn-residual", _residual("GCNHead"), residual=True, label="linear + GCN correction",
         table_rank=2),
    Head("gcn-learned", _residual("LearnedGraphGCN"), residual=True,
         label="linear + GCN correction, learnt graph", table_rank=3),
    # attention heads over the feature map (docs/method.md, "Attention heads")
    Head("csra", _csra, uses_vectors=False, uses_graph=False, spatial=True,
         label="CSRA (class-specific residual attention)", baselines=("linear",),
         settings=("csra_temperature", "csra_lambda")),
    Head("mldecoder", _mldecoder, uses_vectors=False, uses_graph=False, spatial=True,
         label="ML-Decoder, learnt queries", baselines=("linear",),
         settings=(*_DECODER, "decoder_groups")),
    Head("mldecoder-words", _mldecoder, uses_graph=False, spatial=True,
         label="ML-Decoder, queries from the label vectors", baselines=("linear", "mldecoder"),
         settings=_DECODER),
):
    register_head(_head)
del _head
