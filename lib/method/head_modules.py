"""The GCN label heads as torch modules (ML-GCN's graph convolution and the heads built on it).

What each head is, and which of these modules it builds, is said once in :mod:`lib.method.heads`;
the formulas are in :mod:`lib.method.models`' docstring and docs/method.md, "Model".
"""

from __future__ import annotations

import math

import torch
from torch import nn


class GraphConvolution(nn.Module):
    """``H' = A H W`` without bias (ML-GCN's layer, same uniform(+-1/sqrt(out)) init)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        bound = 1.0 / math.sqrt(out_features)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return adjacency @ (h @ self.weight)


class GCNHead(nn.Module):
    """Label classifiers from a two-layer GCN over fixed label vectors and graph."""

    def __init__(self, label_vectors: torch.Tensor, adjacency: torch.Tensor, out_features: int,
                 hidden: int = 1024):
        super().__init__()
        self.register_buffer("label_vectors", label_vectors.float())
        self.register_buffer("adjacency", adjacency.float())
        self.gc1 = GraphConvolution(label_vectors.shape[1], hidden)
        self.act = nn.LeakyReLU(0.2)
        self.gc2 = GraphConvolution(hidden, out_features)

    def graph(self) -> torch.Tensor:
        """The adjacency the convolutions use (the fixed buffer here)."""
        return self.adjacency

    def classifiers(self) -> torch.Tensor:
        """The per-label classifiers ``W`` (C x D)."""
        graph = self.graph()
        h = self.act(self.gc1(self.label_vectors, graph))
        return self.gc2(h, graph)

    def graph_share(self) -> torch.Tensor:
        """Per label, 1: the GCN is the whole classifier."""
        return torch.ones(self.label_vectors.shape[0], device=self.label_vectors.device)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.classifiers().t()


class LearnedGraphGCN(GCNHead):
    """A :class:`GCNHead` whose adjacency is ``A_0 + Delta``: ``A_0`` (the ``adjacency``
    buffer, e.g. the co-occurrence graph) fixed, ``Delta`` (C x C) a parameter starting at
    zero, unconstrained (an edge can be strengthened, removed, made negative or added)."""

    def __init__(self, label_vectors: torch.Tensor, adjacency: torch.Tensor, out_features: int,
                 hidden: int = 1024):
        super().__init__(label_vectors, adjacency, out_features, hidden=hidden)
        self.adjacency_delta = nn.Parameter(torch.zeros_like(self.adjacency))

    def graph(self) -> torch.Tensor:
        return self.adjacency + self.adjacency_delta


class ResidualGCNHead(nn.Module):
    """The CNN-only linear head corrected by a GCN:
    ``logits = features @ (W_linear + W_gcn)^T + b``.

    The GCN's last layer starts at zero, so at initialisation ``W_gcn = 0`` and the logits
    are exactly the linear head's. Gradient flow: ``dL/dW2 = (A H)^T dL/dW_gcn`` is non-zero
    from the first step (``H``, the first layer's output, is not zero); the first layer and
    a learnt adjacency get gradient from the second step on, once ``W2 != 0``. Every update of
    ``W2`` moves each label's classifier by a graph-smoothed mixture of its neighbours'
    gradients (``A H H^T A^T`` applied to ``dL/dW``): that is the graph's whole influence."""

    def __init__(self, linear: nn.Linear, gcn: GCNHead):
        super().__init__()
        if linear.weight.shape[1] != gcn.gc2.weight.shape[1]:
            raise ValueError(f"linear head takes {linear.weight.shape[1]} features, the GCN "
                             f"makes {gcn.gc2.weight.shape[1]}-d classifiers")
        self.linear = linear
        self.gcn = gcn
        nn.init.zeros_(self.gcn.gc2.weight)

    def graph_part(self) -> torch.Tensor:
        """``W_gcn`` (C x D), the GCN's correction of the linear classifiers."""
        return self.gcn.classifiers()

    def classifiers(self) -> torch.Tensor:
        """The effective per-label classifiers ``W_linear + W_gcn`` (C x D)."""
        return self.linear.weight + self.graph_part()

    def graph_share(self) -> torch.Tensor:
        """Per label, ``|W_gcn| / (|W_linear| + |W_gcn|)`` (row norms): 0 = the linear
        classifier alone, 1 = the graph part alone, 0.5 = both as large."""
        lin = self.linear.weight.norm(dim=1)
        gcn = self.graph_part().norm(dim=1)
        total = lin + gcn
        return torch.where(total > 0, gcn / total.clamp(min=torch.finfo(total.dtype).tiny),
                           torch.zeros_like(total))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(features, self.classifiers(), self.linear.bias)
