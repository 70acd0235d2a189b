"""The label heads: the one place that says what a head is (docs/extending.md, "Add a head").

A head maps the encoder's pooled features (N x D) to logits (N x C). Each is a :class:`Head`
registered with :func:`register_head`: how to build it, whether it uses the label vectors
and the label graph, how the tables name it, what it is compared with. Everything else
follows from here: the ``head`` setting's choices (``lib.training.settings.TrainConfig``),
:func:`lib.method.models.build_model`, which inputs the trainer prepares, and the comparisons and
tables (:mod:`lib.analysis.comparisons`).

This module imports no torch (the tables read it); the built-in builders import
:mod:`lib.method.head_modules` when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lib.core.errors import SettingsError

#: what a head not saying otherwise is compared with: the CNN-only and the GCN head
DEFAULT_BASELINES = ("linear", "gcn")


class UnknownHeadError(SettingsError):
    """A head name that is not registered."""


@dataclass(frozen=True)
class Head:
    """What a label head is.

    ``build(dim, num_labels, *, label_vectors, adjacency, hidden)`` returns the head as an
    ``nn.Module`` mapping features (N x ``dim``) to logits (N x ``num_labels``). It gets
    ``label_vectors`` (a float tensor C x d) only when ``uses_vectors`` and ``adjacency``
    (C x C) only when ``uses_graph``, ``None`` otherwise. A module with a ``classifiers()``
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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a head's name must be a non-empty string, got {self.name!r}")
        if not callable(self.build):
            raise TypeError(f"head {self.name!r}: build must be callable")
        object.__setattr__(self, "baselines", tuple(self.baselines))

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
):
    register_head(_head)
del _head
