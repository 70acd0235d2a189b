"""lib.method.graph: co-occurrence statistics and both adjacency recipes (docs/method.md,
"Label graph")."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from lib.data import datasets
from lib.method import graph

# labels a, b, c, d; d never occurs
#   img1: a b   img2: a b c   img3: a   img4: a c   img5: b
Y = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0]],
             dtype=np.uint8)
LABELS = ["a", "b", "c", "d"]


def test_counts_cooccurrence_conditional_by_hand():
    assert graph.label_counts(Y).tolist() == [4, 3, 2, 0]
    assert graph.cooccurrence(Y).tolist() == [[4, 2, 2, 0], [2, 3, 1, 0], [2, 1, 2, 0],
                                              [0, 0, 0, 0]]
    # P[i, j] = P(j | i) = M_ij / N_i
    expected = [[1, 2 / 4, 2 / 4, 0], [2 / 3, 1, 1 / 3, 0], [2 / 2, 1 / 2, 1, 0], [0, 0, 0, 0]]
    np.testing.assert_allclose(graph.conditional_probability(Y), expected)


def test_seed_recipe_by_hand():
    # t = 0.5: P(b|a) = P(c|a) = 0.5 are kept (A >= t), P(c|b) = 1/3 is not.
    #   binarised rows  a: [0 1 1 0]  b: [1 0 0 0]  c: [1 1 0 0]  d: 0
    #   column sums 2, 2, 1, 0 -> entries p/2 = 0.1, 0.1, p/1 = 0.2; diagonal 1 - p = 0.8
    expected = [[0.8, 0.1, 0.2, 0], [0.1, 0.8, 0, 0], [0.1, 0.1, 0.8, 0], [0, 0, 0, 0.8]]
    with pytest.warns(UserWarning, match=r"never occur.*\['d'\]"):
        adj = graph.adjacency(Y, "seed", t=0.5, p=0.2, labels=LABELS)
    assert adj.dtype == np.float32 and adj.shape == (4, 4)
    np.testing.assert_allclose(adj, expected, rtol=1e-6)
    # t just above 0.5 drops a's two neighbours; the defaults are t = 0.1, p = 0.2
    with pytest.warns(UserWarning):
        sparse = graph.adjacency(Y, "seed", t=0.51, p=0.2)
    np.testing.assert_allclose(sparse[0], [0.8, 0, 0, 0])
    with pytest.warns(UserWarning):
        np.testing.assert_allclose(graph.adjacency(Y), graph.adjacency(Y, "seed", 0.1, 0.2))


def test_ml_gcn_recipe_by_hand():
    # t = 0.6: only P(a|b) = 2/3 and P(a|c) = 1 survive -> column a has sum 2
    #   A = 0.25 * B / 2 + I: rows a: [1 0 0 0], b: [.125 1 0 0], c: [.125 0 1 0], d: e_d
    #   rowsum = 1, 1.125, 1.125, 1; result[i, j] = A[j, i] / sqrt(r_i r_j)
    s = 0.125 / math.sqrt(1.125)
    expected = [[1, s, s, 0], [0, 1 / 1.125, 0, 0], [0, 0, 1 / 1.125, 0], [0, 0, 0, 1]]
    with pytest.warns(UserWarning, match=r"never occur.*\[3\]"):
        adj = graph.adjacency(Y, "ml-gcn", t=0.6)
    np.testing.assert_allclose(adj, expected, rtol=1e-5)
    # the transpose matters: D A D would put the 0.118 below the diagonal instead
    assert adj[0, 1] > 0.1 and adj[1, 0] == 0
    # default t = 0.4, p = 0.25
    with pytest.warns(UserWarning):
        np.testing.assert_allclose(graph.adjacency(Y, "ml-gcn"),
                                   graph.adjacency(Y, "ml-gcn", t=0.4, p=0.25))


@pytest.mark.parametrize("recipe, diagonal", [("seed", 0.8), ("ml-gcn", 1.0)])
def test_never_occurring_label_no_nan(recipe, diagonal):
    y = np.zeros((6, 3), dtype=np.uint8)
    y[:, 0] = 1
    y[:3, 1] = 1
    with pytest.warns(UserWarning, match=r"1 label\(s\) never occur.*\['z'\]"):
        adj = graph.adjacency(y, recipe, labels=["x", "y", "z"])
    assert np.isfinite(adj).all()
    np.testing.assert_allclose(adj[2], [0, 0, diagonal], rtol=1e-6)
    np.testing.assert_allclose(adj[:, 2], [0, 0, diagonal], rtol=1e-6)
    # no warning when every label occurs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph.adjacency(Y[:, :3], recipe)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown adjacency recipe 'gcn'"):
        graph.adjacency(Y, "gcn")
    with pytest.raises(ValueError, match="N x C matrix"):
        graph.adjacency(np.ones(4))
    with pytest.raises(ValueError, match="multi-hot"):
        graph.cooccurrence(Y * 2)
    with pytest.raises(ValueError, match=r"threshold t must be in \(0, 1\]"):
        graph.adjacency(Y, t=0.0)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        graph.adjacency(Y, p=1.5)
    with pytest.raises(ValueError, match="3 label names for 4"):
        graph.adjacency(Y, labels=["a", "b", "c"])


def _loop_adjacency(samples, labels, recipe, t, p):
    """Independent reference: plain Python loops over the JSON samples (docs/method.md,
    "Label graph")."""
    c = len(labels)
    index = {label: i for i, label in enumerate(labels)}
    n = [0] * c
    m = [[0] * c for _ in range(c)]
    for sample in samples:
        ids = [index[x] for x in sample["image_labels"]]
        for i in ids:
            n[i] += 1
            for j in ids:
                if j != i:
                    m[i][j] += 1
    b = [[1.0 if i != j and n[i] and m[i][j] / n[i] >= t else 0.0 for j in range(c)]
         for i in range(c)]
    col = [sum(b[i][j] for i in range(c)) for j in range(c)]
    eps, self_loop = (1e-7, 1 - p) if recipe == "seed" else (1e-6, 1.0)
    a = [[b[i][j] * p / (col[j] + eps) + (self_loop if i == j else 0.0) for j in range(c)]
         for i in range(c)]
    if recipe == "seed":
        return np.array(a)
    r = [sum(row) for row in a]
    return np.array([[a[j][i] / math.sqrt(r[i] * r[j]) for j in range(c)] for i in range(c)])


@pytest.mark.parametrize("recipe, t, p", [("seed", 0.1, 0.2), ("ml-gcn", 0.4, 0.25)])
def test_corel5k_against_loops(corel_dir, recipe, t, p):
    samples = json.loads((corel_dir / "train.json").read_text())["samples"]
    ds = datasets.load_dataset(corel_dir, check_images=False, val_fraction=0.0)
    adj = graph.adjacency(ds.splits["train"].targets, recipe, t=t, p=p)
    ref = _loop_adjacency(samples, ds.labels, recipe, t, p)
    np.testing.assert_allclose(adj, ref, rtol=1e-5, atol=1e-7)
    off = ~np.eye(len(ds.labels), dtype=bool)
    assert 0.005 < (adj[off] != 0).mean() < 0.05
    if recipe == "seed":                 # docs/method.md: 1,829 entries, about 7 per label
        assert (adj[off] != 0).sum() == 1829
    density = graph.adjacency_density(ds.splits["train"].targets, [t])
    assert density["density"][0] == pytest.approx((ref[off] != 0).mean())


def test_density_and_asymmetric_pairs():
    curve = graph.adjacency_density(Y, [0.3, 0.5, 0.51, 0.7, 1.0])
    # off-diagonal P values: .5 .5 | .667 .333 | 1 .5 -> counts >= t: 6, 5, 2, 1, 1 of 12
    np.testing.assert_allclose(curve["density"], np.array([6, 5, 2, 1, 1]) / 12)
    np.testing.assert_allclose(curve["mean_neighbours"], np.array([6, 5, 2, 1, 1]) / 4)
    pairs = graph.asymmetric_pairs(Y, LABELS, k=5, min_count=1)
    # (c, a): P(a|c) = 1 vs P(c|a) = 0.5 is the largest gap; then two of 1/6
    assert (pairs["a"][0], pairs["b"][0]) == ("c", "a")
    assert pairs["P(b|a)"][0] == 1.0 and pairs["P(a|b)"][0] == 0.5
    np.testing.assert_allclose(pairs["difference"], [0.5, 1 / 6, 1 / 6])
    assert set(zip(pairs["a"][1:], pairs["b"][1:], strict=True)) == {("b", "a"), ("c", "b")}
    assert len(graph.asymmetric_pairs(Y, LABELS, min_count=2)) == 2


def test_heatmap_shows_conditional_probability():
    import matplotlib

    matplotlib.use("Agg")
    from lib.plots import dataset as plots

    fig = plots.cooccurrence_heatmap(Y, LABELS, top_k=3)
    shown = np.asarray(fig.axes[0].collections[0].get_array()).reshape(3, 3)
    np.testing.assert_allclose(shown, graph.conditional_probability(Y)[:3, :3])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b", "c"]


def test_default_thresholds_and_weights_of_both_recipes_by_hand():
    """20 images, all with label a; P(b|a) = 0.1, P(c|a) = 0.4, P(e|a) = 0.3, P(f|a) = 0.05
    and P(a|x) = 1: the defaults (seed t = 0.1, p = 0.2; ml-gcn t = 0.4, p = 0.25) keep
    exactly the pairs written out below."""
    assert graph.DEFAULTS == {"seed": {"t": 0.1, "p": 0.2}, "ml-gcn": {"t": 0.4, "p": 0.25}}
    y = np.zeros((20, 5))
    y[:, 0] = 1
    y[0:2, 1], y[2:10, 2], y[10:16, 3], y[16, 4] = 1, 1, 1, 1         # a b c e f
    a, b, c, e, f = range(5)
    seed = np.diag([0.8] * 5)
    for j in (b, c, e):                                  # a -> b, c, e (not f: 0.05 < 0.1)
        seed[a, j] = 0.2 / (1 + 1e-7)                    # column j has one entry
    for i in (b, c, e, f):                               # b, c, e, f -> a: column a has four
        seed[i, a] = 0.2 / (4 + 1e-7)
    np.testing.assert_allclose(graph.adjacency(y), seed, rtol=1e-6)
    kept = np.zeros((5, 5))                              # ml-gcn: a -> c only (0.3 < 0.4)
    kept[a, c] = 0.25 / (1 + 1e-6)
    for i in (b, c, e, f):
        kept[i, a] = 0.25 / (4 + 1e-6)
    kept += np.eye(5)
    d = np.diag(kept.sum(axis=1) ** -0.5)
    np.testing.assert_allclose(graph.adjacency(y, "ml-gcn"), d @ kept.T @ d, rtol=1e-6)


def test_the_epsilons_of_the_recipes():
    """seed divides by colsum + 1e-7, ml-gcn by colsum + 1e-6 (p = 1, two labels always
    together): the float32 results tell the two apart."""
    y = np.ones((3, 2))
    seed = graph.adjacency(y, "seed", p=1.0)
    assert seed[0, 1] == np.float32(1 / (1 + 1e-7)) != np.float32(1 / (1 + 1e-6))
    q = 1 / (1 + 1e-6)
    expected = np.array([[1, q], [q, 1]]) / (1 + q)      # D A^T D with D = (1 + q)^-1/2
    np.testing.assert_allclose(graph.adjacency(y, "ml-gcn", p=1.0), expected, rtol=1e-7)
    q7 = 1 / (1 + 1e-7)
    assert not np.allclose(np.array([[1, q7], [q7, 1]]) / (1 + q7), expected, rtol=1e-7, atol=0)
