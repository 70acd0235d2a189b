"""Independent oracles for contracts of docs/method.md that no other test pins down.

Each test computes the expected value by hand (or with scikit-learn) from the formula in
docs/method.md, never with the function under test: the WGAN-GP losses and updates on toy
networks, the MCC grid and its last value, the tie rules of top-k and of the shared fallback
threshold, the column order of predictions files and the label-order checks of the readers.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import matthews_corrcoef
from torch import nn

from lib.analysis import evaluation
from lib.core import paths
from lib.data import predictions
from lib.method import metrics, thresholds, wgan
from lib.training import runs
from lib.training.runs import RunError

# --------------------------------------------------------------------------- ML-WGAN
# docs/method.md, "ML-WGAN augmentation": L_D = D(fake) - D(real) + 10 (||grad D(x_hat)|| - 1)^2,
# x_hat = eps real + (1 - eps) fake, L_G = -D(G(z)), Adam per network.

H = W = 8
NZ = 3
C_QUAD = 0.05   # the toy critic's quadratic term, so that its gradient depends on x


class ToyGenerator(nn.Module):
    """K generators ``G_k(z) = tanh(W_k z)`` reshaped to 3 x H x W (one weight per model)."""

    def __init__(self, k: int, nz: int):
        super().__init__()
        self.k, self.nz = k, nz
        self.weight = nn.Parameter(torch.zeros(k, 3 * H * W, nz))
        self.history: list[torch.Tensor] = []

    def forward(self, z):
        self.history.append(self.weight.detach().clone())
        m = z.shape[0]
        out = torch.tanh(torch.einsum("kpn,mkn->mkp", self.weight, z.view(m, self.k, self.nz)))
        return out.reshape(m, self.k * 3, H, W)


class ToyCritic(nn.Module):
    """K critics ``D_k(x) = <w_k, x> + b_k + c ||x||^2``: the gradient ``w_k + 2 c x`` is
    known in closed form and depends on where it is taken."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.zeros(k, 3, H, W))
        self.bias = nn.Parameter(torch.zeros(k))
        self.history: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x):
        self.history.append((self.weight.detach().clone(), self.bias.detach().clone()))
        m = x.shape[0]
        x = x.view(m, self.k, 3, H, W)
        s = (x * self.weight).sum((2, 3, 4)) + self.bias + C_QUAD * (x ** 2).sum((2, 3, 4))
        return s.view(m, self.k, 1, 1)


def _d(w, b, x):
    return float((w * x).sum() + b + C_QUAD * (x ** 2).sum())


def _adam_first_step(before, grad, lr):
    """Adam's first update (bias-corrected moments m = g, v = g^2): -lr g / (|g| + 1e-8)."""
    return before - lr * grad / (np.abs(grad) + 1e-8)


@pytest.fixture()
def toy_wgan(monkeypatch):
    built = {}

    def generator(image_size, width, groups=1, noise_dim=wgan.NOISE_DIM, **_):
        built["gen"] = ToyGenerator(groups, noise_dim)
        return built["gen"]

    def critic(image_size, width, groups=1, **_):
        built["crit"] = ToyCritic(groups)
        return built["crit"]

    monkeypatch.setattr(wgan, "build_generator", generator)
    monkeypatch.setattr(wgan, "build_critic", critic)
    return built


def test_wgan_gp_losses_penalty_and_updates_by_hand(toy_wgan):
    k, steps, lr, gp = 2, 2, 1e-2, 10.0
    config = wgan.WGANConfig(iterations=3, image_size=(H, W), width=4, critic_steps=steps,
                             noise_dim=NZ, lr=lr, flip_prob=0.5, batch_images=k)
    rng = np.random.default_rng(0)
    real = torch.from_numpy(rng.uniform(-1, 1, (k, 3, H, W)))
    seeds = [11, 12]
    result = wgan.train_group(real, seeds, config, dtype=torch.float64)
    gen, crit = toy_wgan["gen"], toy_wgan["crit"]

    # replay every image's random numbers in the documented order
    rngs = [np.random.default_rng(s) for s in seeds]
    w0 = [r.normal(0, 0.02, (1, 3 * H * W, NZ))[0] for r in rngs]   # generator first
    c0 = [r.normal(0, 0.02, (1, 3, H, W))[0] for r in rngs]          # then the critic
    np.testing.assert_allclose(gen.history[0].numpy(), np.stack(w0))
    np.testing.assert_allclose(crit.history[0][0].numpy(), np.stack(c0))
    assert not crit.history[0][1].any()  # biases start at 0

    real_np = real.numpy()
    n_crit_calls = 3 * steps + 1   # fake, real, interpolate per critic step; one for G's step
    n_gen_calls = steps + 1
    n_flips = 0
    for it in range(config.iterations):
        draws = [(r.random(1 + steps), r.standard_normal((steps + 1, 1, NZ))) for r in rngs]
        for j in range(k):
            u, noise = draws[j]
            flip = u[0] < config.flip_prob
            n_flips += flip
            x_real = real_np[j][:, ::-1, :] if flip else real_np[j]   # upside down
            losses = []
            for step in range(steps):
                gw = gen.history[it * n_gen_calls + step][j].numpy()
                fake = np.tanh(gw @ noise[step, 0]).reshape(3, H, W)
                w, b = (t[j].numpy() for t in crit.history[it * n_crit_calls + 3 * step])
                x_hat = u[1 + step] * x_real + (1 - u[1 + step]) * fake
                g = w + 2 * C_QUAD * x_hat
                norm = np.linalg.norm(g)
                losses.append(_d(w, b, fake) - _d(w, b, x_real) + gp * (norm - 1) ** 2)
                if it == 0 and step == 0:
                    # the first critic step minimises L_D: Adam's first step against its gradient
                    grad_w = fake - x_real + 2 * gp * (norm - 1) * g / norm
                    after = crit.history[3][0][j].numpy()
                    np.testing.assert_allclose(after, _adam_first_step(w, grad_w, lr),
                                               rtol=0, atol=1e-9)
                if step == steps - 1 and it >= config.iterations - 3:
                    np.testing.assert_allclose(result.fakes[it - (config.iterations - 3), j]
                                               .numpy(), fake, rtol=0, atol=1e-12)
            assert result.critic_loss[it, j] == pytest.approx(np.mean(losses), rel=1e-10)

            # the generator step: L_G = -D(G(z)) with fresh noise and the updated critic
            gw = gen.history[it * n_gen_calls + steps][j].numpy()
            z = noise[steps, 0]
            f = np.tanh(gw @ z)
            w, b = (t[j].numpy() for t in crit.history[it * n_crit_calls + 3 * steps])
            assert result.generator_loss[it, j] == pytest.approx(
                -_d(w, b, f.reshape(3, H, W)), rel=1e-10)
            if it == 0:
                grad_g = np.outer(-(w.reshape(-1) + 2 * C_QUAD * f) * (1 - f ** 2), z)
                after = gen.history[n_gen_calls][j].numpy()
                np.testing.assert_allclose(after, _adam_first_step(gw, grad_g, lr),
                                           rtol=0, atol=1e-9)
    assert 0 < n_flips < k * config.iterations   # both branches of the flip were taken


def test_wgan_defaults_are_the_documented_recipe():
    c = wgan.WGANConfig()
    assert (c.iterations, c.critic_steps, c.batch_size, c.gp_weight, c.lr, c.betas,
            c.flip_prob, c.noise_dim, c.crop_border, c.image_size, c.width) == (
        1001, 5, 1, 10.0, 2e-4, (0.5, 0.999), 0.1, 100, 3, (128, 192), 64)
    assert wgan.AUG_SUFFIXES == ("_aug", "_aug_hor_flip", "_aug_rot_90")


# --------------------------------------------------------------------------- MCC grid

GRID = [0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70]


def test_mcc_grid_is_the_documented_list():
    assert len(metrics.MCC_GRID) == 14
    np.testing.assert_allclose(metrics.MCC_GRID, GRID, rtol=0, atol=1e-12)


def test_mcc_optimum_at_the_last_grid_value():
    # label 0 separates exactly between 0.66 and 0.70; label 1's best cut (0.72..0.95) is above
    # the grid, so its MCC still rises up to the last value
    y = np.array([[1, 1], [1, 0], [0, 0], [0, 1], [0, 0], [0, 0]])
    s = np.array([[0.72, 0.95], [0.70, 0.69], [0.66, 0.66], [0.10, 0.99], [0.30, 0.72],
                  [0.05, 0.05]])
    got = metrics.mcc_thresholds(y, s)
    for c in range(2):
        curve = [matthews_corrcoef(y[:, c], s[:, c] >= t) for t in GRID]
        assert got[c] == pytest.approx(GRID[int(np.argmax(curve))])
    assert got[0] == pytest.approx(0.70)
    assert got[1] == pytest.approx(0.70)   # best of the grid is its last value
    np.testing.assert_allclose(metrics.mcc_curves(y, s)[:, -1],
                               [matthews_corrcoef(y[:, c], s[:, c] >= 0.70) for c in range(2)])


def test_mcc_ties_go_to_the_smallest_threshold():
    # positives at 0.62, negatives at 0.33: every t in 0.35 .. 0.60 separates perfectly
    y = np.array([[1], [1], [0], [0], [0]])
    s = np.array([[0.62], [0.62], [0.33], [0.33], [0.01]])
    assert metrics.mcc_thresholds(y, s)[0] == pytest.approx(0.35)


def test_shared_fallback_threshold_ties_and_last_value():
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 0]])
    s = np.array([[0.62, 0.01], [0.61, 0.64], [0.33, 0.20], [0.12, 0.34]])
    # pooled: positives >= 0.61, negatives <= 0.34: MCC 1 for t in 0.35 .. 0.60
    assert thresholds.shared_threshold(y, s) == pytest.approx(0.35)
    pooled = [matthews_corrcoef(y.ravel(), s.ravel() >= t) for t in GRID]
    assert max(pooled) == pytest.approx(1.0) and pooled[GRID.index(0.35)] == pytest.approx(1.0)
    # and when the pooled optimum is the grid's last value
    s2 = np.array([[0.75, 0.01], [0.71, 0.72], [0.68, 0.20], [0.12, 0.69]])
    assert thresholds.shared_threshold(y, s2) == pytest.approx(0.70)
    # tune() gives that value to the labels with too few positives, not their own argmax
    y3 = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    s3 = np.array([[0.62, 0.01], [0.61, 0.64], [0.33, 0.62], [0.12, 0.34]])
    cut, info = thresholds.tune(y3, s3, min_positives=2, fallback="shared")
    pooled3 = [matthews_corrcoef(y3.ravel(), s3.ravel() >= t) for t in GRID]
    best = GRID[int(np.argmax(pooled3))]
    assert info["fallback_labels"] == [1] and info["fallback_threshold"] == pytest.approx(best)
    assert cut[1] == pytest.approx(best) and cut[0] == pytest.approx(0.35)
    cut, info = thresholds.tune(y3, s3, min_positives=2, fallback="0.5")
    assert cut[1] == 0.5 and info["n_fallback"] == 1


# --------------------------------------------------------------------------- top-k


def test_topk_ties_go_to_the_lower_label_index():
    s = np.array([[0.5, 0.5, 0.5, 0.5, 0.5],
                  [0.1, 0.7, 0.7, 0.7, 0.2],
                  [0.9, 0.3, 0.3, 0.8, 0.3]])
    expected = np.array([[1, 1, 1, 0, 0],
                         [0, 1, 1, 1, 0],
                         [1, 1, 0, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(metrics.topk_predictions(s, 3), expected)
    np.testing.assert_array_equal(metrics.topk_predictions(s, 1),
                                  [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    # the tie rule reaches the scores: only label 0 is right on a constant row
    y = np.array([[1, 0, 0, 0, 0]] * 3)
    got = metrics.topk_metrics(y, np.full((3, 5), 0.5), 1)
    assert got["per_image_precision"] == pytest.approx(1.0) and got["n_plus"] == 1


# --------------------------------------------------------------------------- predictions


LABELS = ["sky", "sea", "sun", "tree"]


def _dataset(root, rng):
    root.mkdir()
    truth = {}
    for split, n in (("train", 12), ("val", 6), ("test", 10)):
        y = (rng.uniform(size=(n, len(LABELS))) < 0.5).astype(np.uint8)
        y[0] = 1  # every label present
        names = [f"{split}{i}.jpeg" for i in range(n)]
        truth[split] = (names, y)
        samples = [{"image_name": a, "image_labels": [LABELS[c] for c in np.flatnonzero(r)]}
                   for a, r in zip(names, y, strict=True)]
        (root / f"{split}.json").write_text(json.dumps({"labels": LABELS, "samples": samples}))
    return truth


def _write_predictions(path, names, scores, order):
    frame = pd.DataFrame(scores[:, order], columns=[LABELS[i] for i in order])
    frame.insert(0, "image_name", names)
    frame.to_csv(path, index=False)


def test_predictions_with_columns_in_another_order_are_scored_aligned(tmp_path):
    rng = np.random.default_rng(3)
    truth = _dataset(tmp_path / "ds", rng)
    names, y = truth["test"]
    # label-specific score levels, so that a misaligned column changes every metric
    s = np.clip(y * 0.5 + rng.uniform(size=y.shape) * 0.5 * np.array([0.2, 0.6, 1.0, 1.4]),
                0, 1)
    order = [2, 0, 3, 1]
    _write_predictions(tmp_path / "p.csv", names, s, order)
    frame = predictions.read_predictions(tmp_path / "p.csv", LABELS)
    assert list(frame.columns) == LABELS
    np.testing.assert_allclose(frame.loc[names].to_numpy(), s)
    got = predictions.score_predictions(tmp_path / "p.csv", tmp_path / "ds")
    pred = s >= 0.5
    tp = (pred & (y == 1)).sum(0)
    p = np.mean(tp / (pred.sum(0) + 1e-7))
    r = np.mean(tp / (y.sum(0) + 1e-7))
    assert got["at_0.5"]["per_class_precision"] == pytest.approx(p)
    assert got["at_0.5"]["per_class_recall"] == pytest.approx(r)
    from sklearn.metrics import average_precision_score
    assert got["mean_average_precision"] == pytest.approx(
        np.mean([average_precision_score(y[:, c], s[:, c]) for c in range(4)]))


def _run_folder(tmp_path, labels_in_config, prediction_order):
    rng = np.random.default_rng(5)
    truth = _dataset(tmp_path / "ds", rng)
    names, y = truth["test"]
    s = np.clip(y * 0.4 + rng.uniform(size=y.shape) * 0.6, 0, 1)
    out = paths.run_dir("hand")
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(runs.make_config(
        labels_in_config, tmp_path / "ds", run_name="hand", seed=0, head="linear",
        embeddings="onehot")))
    _write_predictions(out / "predictions.csv", names, s, prediction_order)
    cut = [0.3, 0.4, 0.5, 0.6]
    (out / "thresholds.json").write_text(json.dumps(
        {"labels": [LABELS[i] for i in prediction_order],
         "thresholds": [cut[i] for i in prediction_order], "tuned_on": "val"}))
    return out, y, s, np.array(cut)


def test_load_results_aligns_columns_and_thresholds_by_label(tmp_path):
    out, y, s, cut = _run_folder(tmp_path, LABELS, [3, 1, 0, 2])
    res = evaluation.load_results("hand")
    assert res.labels == LABELS
    np.testing.assert_allclose(res.y_score, s)
    np.testing.assert_allclose(res.thresholds, cut)
    np.testing.assert_array_equal(res.y_true, y)
    # no metrics.json: computed from the aligned scores; check against the formula
    pred = s >= cut
    tp = (pred & (y == 1)).sum(0)
    assert res.metrics["mcc"]["per_image_precision"] == pytest.approx(tp.sum() / pred.sum())
    assert res.metrics["mcc"]["n_plus"] == int((tp > 0).sum())


def test_load_results_refuses_a_run_whose_label_order_differs(tmp_path):
    _run_folder(tmp_path, [LABELS[i] for i in (1, 0, 2, 3)], [0, 1, 2, 3])
    with pytest.raises(RunError, match="labels disagree with .*same labels in another order"):
        evaluation.load_results("hand")


def test_dataset_files_with_labels_in_another_order_are_refused(tmp_path):
    from lib.data.datasets import DatasetError, load_dataset

    _dataset(tmp_path / "ds", np.random.default_rng(0))
    test = json.loads((tmp_path / "ds" / "test.json").read_text())
    test["labels"] = LABELS[::-1]
    (tmp_path / "ds" / "test.json").write_text(json.dumps(test))
    with pytest.raises(DatasetError, match="test.json"):
        load_dataset(tmp_path / "ds", check_images=False)


def test_thresholds_file_in_another_order_is_read_by_label(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"labels": ["tree", "sky", "sun", "sea"],
                                "thresholds": [0.4, 0.1, 0.3, 0.2]}))
    np.testing.assert_allclose(predictions.read_thresholds(path, LABELS), [0.1, 0.2, 0.3, 0.4])


def test_cached_label_vectors_are_not_reused_for_another_label_order(tmp_path):
    from lib.method import embeddings as E

    labels = ["sky", "sea", "sun"]
    first = E.cached_label_vectors(tmp_path, labels, "random-8", seed=0)
    again = E.cached_label_vectors(tmp_path, labels[::-1], "random-8", seed=0)
    # each label keeps its own vector (random vectors depend on the seed and the label)
    np.testing.assert_allclose(again, first[::-1])
