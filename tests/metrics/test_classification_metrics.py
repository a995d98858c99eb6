"""AUROC/bootstrap against scikit-learn, accuracy beside the all-negative baseline, F1, localisation."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from medgen.metrics.classification import (
    all_negative_baseline,
    auroc_per_class,
    bootstrap_auroc,
    classification_report,
    f1_per_class,
    multilabel_accuracy,
)
from medgen.metrics.localization import attention_mass_share, localization_report, pointing_game_hit


def _data(seed=0, n=200, c=4):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.2).astype(float)
    s = np.round(y * 0.6 + rng.random((n, c)), 1)  # rounding makes ties
    return y, s


def test_auroc_matches_sklearn_with_ties():
    y, s = _data()
    ref = [roc_auc_score(y[:, i], s[:, i]) for i in range(y.shape[1])]
    assert np.allclose(auroc_per_class(y, s), ref)


def test_auroc_nan_when_class_has_one_label_value():
    y, s = _data()
    y[:, 1] = 0
    assert np.isnan(auroc_per_class(y, s)[1])


def test_bootstrap_ci_brackets_point_estimate_and_matches_sklearn_resamples():
    y, s = _data(1)
    b = bootstrap_auroc(y, s, n_boot=200, seed=3)
    assert (b["lo"] <= b["auroc"]).all() and (b["auroc"] <= b["hi"]).all()
    assert b["mean_lo"] <= b["mean_auroc"] <= b["mean_hi"]
    # same resamples recomputed with sklearn give the same quantiles
    rng = np.random.default_rng(3)
    vals = []
    for _ in range(200):
        idx = rng.integers(0, len(y), len(y))
        vals.append(roc_auc_score(y[idx, 0], s[idx, 0]))
    assert np.isclose(b["lo"][0], np.quantile(vals, 0.025)) and np.isclose(
        b["hi"][0], np.quantile(vals, 0.975)
    )


def test_patient_level_bootstrap_is_wider_for_duplicated_patients():
    y, s = _data(2, n=100)
    y2, s2 = np.repeat(y, 4, 0), np.repeat(s, 4, 0)
    groups = np.repeat(np.arange(100), 4)
    image = bootstrap_auroc(y2, s2, n_boot=300, seed=0)
    patient = bootstrap_auroc(y2, s2, n_boot=300, seed=0, groups=groups)
    assert (patient["mean_hi"] - patient["mean_lo"]) > 1.5 * (image["mean_hi"] - image["mean_lo"])


def test_accuracy_all_negative_baseline_and_f1():
    y, s = _data(4)
    pred = (s >= 0.5).astype(float)
    acc = multilabel_accuracy(y, pred)
    assert np.isclose(acc["elementwise"], (y == pred).mean())
    base = all_negative_baseline(y)
    assert np.isclose(base["elementwise"], 1 - y.mean())
    assert np.isclose(base["exact_match"], (y.sum(1) == 0).mean())
    assert np.allclose(f1_per_class(y, pred), f1_score(y, pred, average=None, zero_division=0))
    rep = classification_report(y, s, ["a", "b", "c", "d"], n_boot=50)
    assert rep["all_negative_accuracy"]["elementwise"] == pytest.approx(base["elementwise"])
    assert set(rep["per_class"]) == {"a", "b", "c", "d"}


def test_localization_pointing_game_and_mass_share():
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True
    hot = np.zeros((10, 10))
    hot[3, 3] = 1.0
    off = np.zeros((10, 10))
    off[8, 8] = 1.0
    assert pointing_game_hit(hot, mask) and not pointing_game_hit(off, mask)
    assert pointing_game_hit(_peak(4, 4), mask, tolerance=1.5) and not pointing_game_hit(
        _peak(4, 4), mask, tolerance=1
    )
    assert attention_mass_share(hot, mask) == 1.0
    assert attention_mass_share(np.ones((10, 10)), mask) == pytest.approx(0.04)
    rep = localization_report(
        [hot, off], [{"Mass": mask, "Nodule": np.zeros((10, 10), bool)}, {"Mass": mask}]
    )
    assert rep["overall"]["n"] == 2 and rep["overall"]["pointing_game"] == 0.5
    assert rep["overall"]["uniform_baseline"] == pytest.approx(0.04)


def _peak(y, x):
    a = np.zeros((10, 10))
    a[y, x] = 1.0
    return a


def test_region_quality_whole_image_psnr_inflated_by_area_share():
    import torch

    from medgen.metrics.classification import region_image_quality

    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 64, 64, generator=g)
    pred = (target + 0.05 * torch.randn(2, 1, 64, 64, generator=g)).clamp(0, 1)
    boxes = [torch.tensor([[8, 8, 24, 24]]), torch.zeros((0, 4), dtype=torch.long)]
    q = region_image_quality(pred, target, boxes, shave=0)
    assert len(q["region_psnr"]) == 1 and len(q["image_psnr"]) == 1  # the box-less image is left out
    area = 16 * 16 / 64**2
    assert q["image_psnr"][0] == pytest.approx(q["region_psnr"][0] + 10 * np.log10(1 / area), abs=0.01)
