import itertools
import math

import numpy as np
import pytest
import torch
from monai.metrics import FIDMetric

from medgen.metrics.generation import (
    frechet_distance,
    kernel_inception_distance,
    memorisation_summary,
    ms_ssim_diversity,
    ms_ssim_min_size,
    nearest_neighbour_distances,
)


def exact_moments(rng, n, mean, cov_root):
    """n samples whose sample mean is exactly ``mean`` and sample covariance exactly ``cov_root.T @ cov_root``."""
    z = rng.standard_normal((n, len(mean)))
    z -= z.mean(0)
    whitener = np.linalg.cholesky(np.cov(z, rowvar=False))
    z = z @ np.linalg.inv(whitener).T
    return z @ cov_root + mean


# --- FID ------------------------------------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).standard_normal((200, 16))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(x[:10], x[:10]) == pytest.approx(0.0, abs=1e-8)  # N < D: singular covariances


@pytest.mark.parametrize("shift", [0.5, 1.0, 3.0])
def test_fid_identity_covariances_equals_squared_mean_shift(shift):
    rng = np.random.default_rng(1)
    d = 8
    delta = rng.standard_normal(d)
    delta *= shift / np.linalg.norm(delta)
    real = exact_moments(rng, 300, np.zeros(d), np.eye(d))
    fake = exact_moments(rng, 400, delta, np.eye(d))
    assert frechet_distance(real, fake) == pytest.approx(shift**2, rel=1e-9)


def test_fid_closed_form_with_different_covariances():
    rng = np.random.default_rng(2)
    d = 6
    a, b = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)  # diagonal covariances
    mu = rng.standard_normal(d)
    real = exact_moments(rng, 500, np.zeros(d), np.diag(np.sqrt(a)))
    fake = exact_moments(rng, 500, mu, np.diag(np.sqrt(b)))
    expected = (mu**2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-9)


def test_fid_grows_with_shift():
    rng = np.random.default_rng(3)
    real = rng.standard_normal((500, 10))
    noise = rng.standard_normal((500, 10))
    values = [frechet_distance(real, noise + s) for s in (0.0, 0.2, 0.5, 1.0, 2.0)]
    assert all(b > a for a, b in itertools.pairwise(values))


def test_fid_agrees_with_monai_and_accepts_torch():
    rng = np.random.default_rng(4)
    mix = rng.standard_normal((32, 32)) / 6
    real = rng.standard_normal((400, 32)) @ mix
    fake = rng.standard_normal((300, 32)) @ mix + 0.3
    monai_value = float(FIDMetric()(torch.from_numpy(fake), torch.from_numpy(real)))
    ours = frechet_distance(torch.from_numpy(real).float(), torch.from_numpy(fake).float())
    assert isinstance(ours, float)
    assert ours == pytest.approx(monai_value, rel=1e-5)


def test_fid_one_dimensional_features():
    real = np.array([[0.0], [2.0]])  # mean 1, var 2
    fake = np.array([[3.0], [5.0]])  # mean 4, var 2
    assert frechet_distance(real, fake) == pytest.approx(9.0)


@pytest.mark.parametrize(
    "real, fake, match",
    [
        (np.zeros((10, 4)), np.zeros((10, 5)), "different feature sizes"),
        (np.zeros((10,)), np.zeros((10, 4)), r"shape \(N, D\), got \(10,\)"),
        (np.zeros((1, 4)), np.zeros((10, 4)), "at least 2"),
        (np.full((5, 2), np.nan), np.zeros((5, 2)), "NaN"),
    ],
)
def test_fid_rejects_bad_shapes(real, fake, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(real, fake)


# --- KID ------------------------------------------------------------------------------------------------------


def reference_kid(x, y, degree=3, gamma=None, coef0=1.0):
    """Unbiased MMD^2 with the polynomial kernel, written out with loops (Binkowski et al., 2018, eq. 3)."""
    m, d = len(x), x.shape[1]
    gamma = 1.0 / d if gamma is None else gamma

    def k(a, b):
        return (gamma * sum(ai * bi for ai, bi in zip(a, b)) + coef0) ** degree

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("degree, gamma, coef0", [(3, None, 1.0), (2, 0.5, 0.0), (1, None, 2.0)])
def test_kid_matches_loop_reference(degree, gamma, coef0):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 4))
    y = rng.standard_normal((9, 4)) + 0.7
    # subset_size = N: every subset is a permutation of the full sets, so KID is exactly the reference value
    out = kernel_inception_distance(x, y, subsets=3, subset_size=9, degree=degree, gamma=gamma, coef0=coef0)
    assert out["mean"] == pytest.approx(reference_kid(x, y, degree, gamma, coef0), rel=1e-10)
    assert out["std"] == pytest.approx(0.0, abs=1e-12)
    assert out["subsets"] == 3 and out["subset_size"] == 9


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(6)
    real = rng.standard_normal((600, 16))
    same = rng.standard_normal((600, 16))
    shifted = rng.standard_normal((600, 16)) + 0.3
    null = kernel_inception_distance(real, same, subsets=20, subset_size=200)
    alt = kernel_inception_distance(real, shifted, subsets=20, subset_size=200)
    assert abs(null["mean"]) < 3 * null["std"]
    assert alt["mean"] > 10 * max(null["std"], abs(null["mean"]))
    assert alt["mean"] - 3 * alt["std"] > 0


def test_kid_defaults_and_seed():
    rng = np.random.default_rng(7)
    real, fake = rng.standard_normal((50, 3)), torch.randn(40, 3)
    out = kernel_inception_distance(real, fake)
    assert out["subset_size"] == 40 and out["subsets"] == 10
    assert all(isinstance(out[k], float) for k in ("mean", "std"))
    again = kernel_inception_distance(real, fake)
    assert again == out
    other = kernel_inception_distance(real, fake, subset_size=20, seed=1)
    assert other["mean"] != kernel_inception_distance(real, fake, subset_size=20, seed=2)["mean"]


@pytest.mark.parametrize("subset_size", [1, 41])
def test_kid_rejects_bad_subset_size(subset_size):
    with pytest.raises(ValueError, match=r"subset_size=.* min\(N_real, N_fake\) = 40"):
        kernel_inception_distance(np.zeros((50, 3)), np.zeros((40, 3)), subset_size=subset_size)


def test_kid_rejects_mismatched_features():
    with pytest.raises(ValueError, match=r"\(50, 3\).*\(40, 4\)"):
        kernel_inception_distance(np.zeros((50, 3)), np.zeros((40, 4)))


# --- MS-SSIM diversity ----------------------------------------------------------------------------------------


def smooth_images(n, size=64, seed=0):
    """Independent random images with structure at several scales, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, size // 8, size // 8, generator=g)
    up = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (0.7 * up + 0.3 * torch.rand(n, 1, size, size, generator=g)).clamp(0, 1)


def test_identical_images_in_a_group_score_one():
    base = smooth_images(2)
    images = base.repeat_interleave(4, dim=0)  # two prompts, four identical samples each
    out = ms_ssim_diversity(images, [0, 0, 0, 0, 1, 1, 1, 1])
    assert out["mean"] == pytest.approx(1.0, abs=1e-5)
    assert out["std"] == pytest.approx(0.0, abs=1e-5)
    assert out["n_pairs"] == 12
    assert len(out["weights"]) == 3 and math.isclose(sum(out["weights"]), 1.0)  # 64 px: 3 scales at kernel 11


def test_independent_noise_images_score_low():
    images = torch.rand(8, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    out = ms_ssim_diversity(images.numpy(), np.repeat(np.arange(2), 4))
    assert out["mean"] < 0.1
    assert out["n_pairs"] == 12


def test_pairs_never_cross_groups_and_are_counted():
    # interleaved, uneven groups: images within a group are identical, images of different groups are not
    ids = ["a", "b", "c", "a", "b", "a", "d", "c", "a", "b"]  # sizes a=4, b=3, c=2, d=1
    distinct = {g: img for g, img in zip("abcd", smooth_images(4, seed=2))}
    images = torch.stack([distinct[g] for g in ids])
    out = ms_ssim_diversity(images, ids)
    assert out["n_pairs"] == 6 + 3 + 1 + 0
    assert out["mean"] == pytest.approx(1.0, abs=1e-5)  # a single cross-group pair would pull this down
    crossed = ms_ssim_diversity(images, [0] * len(ids))
    assert crossed["n_pairs"] == 45 and crossed["mean"] < 0.9


def test_diverse_groups_score_below_collapsed_groups():
    diverse = ms_ssim_diversity(smooth_images(8, seed=3), [0] * 4 + [1] * 4)
    noisy_copies = smooth_images(2, seed=4).repeat_interleave(4, dim=0)
    noisy_copies = (noisy_copies + 0.05 * torch.randn_like(noisy_copies)).clamp(0, 1)
    collapsed = ms_ssim_diversity(noisy_copies, [0] * 4 + [1] * 4)
    assert diverse["mean"] < collapsed["mean"] < 1.0


def test_weights_follow_image_size():
    assert ms_ssim_min_size(11, 5) == 176  # MONAI's error text says "larger than 160"
    assert ms_ssim_min_size(11, 3) == 44
    out = ms_ssim_diversity(smooth_images(2, size=176), [0, 0])
    assert len(out["weights"]) == 5
    out = ms_ssim_diversity(smooth_images(2, size=64), [0, 0], kernel_size=3)
    assert len(out["weights"]) == 5


def test_too_small_images_raise_with_minimum_size():
    with pytest.raises(ValueError, match="at least 22x22 pixels"):
        ms_ssim_diversity(torch.rand(2, 1, 16, 16), [0, 0])
    with pytest.raises(ValueError, match="at least 176x176 pixels"):
        ms_ssim_diversity(torch.rand(2, 1, 64, 64), [0, 0], weights=(0.0448, 0.2856, 0.3001, 0.2363, 0.1333))


@pytest.mark.parametrize(
    "images, groups, match",
    [
        (torch.rand(4, 64, 64), [0, 0, 1, 1], r"\(N, C, H, W\), got \(4, 64, 64\)"),
        (torch.rand(4, 1, 64, 64), [0, 0, 1], "one id per image, 4"),
        (torch.rand(4, 1, 64, 64) * 255, [0, 0, 1, 1], r"\[0, 1\]"),
        (torch.rand(3, 1, 64, 64), [0, 1, 2], "no group has two or more images"),
    ],
)
def test_ms_ssim_diversity_validates(images, groups, match):
    with pytest.raises(ValueError, match=match):
        ms_ssim_diversity(images, groups)


# --- nearest neighbours and memorisation ----------------------------------------------------------------------


def brute_force_nn(q, r, metric, exclude_self=False):
    d = np.empty((len(q), len(r)))
    for i in range(len(q)):
        for j in range(len(r)):
            if metric == "l2":
                d[i, j] = np.sqrt(((q[i] - r[j]) ** 2).sum())
            else:
                d[i, j] = 1 - q[i] @ r[j] / (np.linalg.norm(q[i]) * np.linalg.norm(r[j]))
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return d.min(1), d.argmin(1)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("batch_size", [7, 1024])
def test_nearest_neighbours_match_brute_force(metric, batch_size):
    rng = np.random.default_rng(8)
    q, r = rng.standard_normal((30, 5)), rng.standard_normal((45, 5))
    dist, idx = nearest_neighbour_distances(torch.from_numpy(q), r, metric=metric, batch_size=batch_size)
    ref_dist, ref_idx = brute_force_nn(q, r, metric)
    assert isinstance(dist, np.ndarray) and dist.shape == (30,) and idx.shape == (30,)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-10)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_exclude_self(metric):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((25, 4))
    dist, idx = nearest_neighbour_distances(x, x, metric=metric)
    np.testing.assert_array_equal(idx, np.arange(25))
    np.testing.assert_allclose(dist, 0.0, atol=1e-7)
    dist, idx = nearest_neighbour_distances(x, x, metric=metric, exclude_self=True, batch_size=6)
    ref_dist, ref_idx = brute_force_nn(x, x, metric, exclude_self=True)
    assert (idx != np.arange(25)).all()
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-10)


def test_nearest_neighbours_validate():
    with pytest.raises(ValueError, match="differ in N"):
        nearest_neighbour_distances(np.ones((3, 2)), np.ones((4, 2)), exclude_self=True)
    with pytest.raises(ValueError, match="different feature sizes"):
        nearest_neighbour_distances(np.ones((3, 2)), np.ones((4, 3)))
    with pytest.raises(ValueError, match="zero norm"):
        nearest_neighbour_distances(np.zeros((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="'cosine', 'l2'"):
        nearest_neighbour_distances(np.ones((3, 2)), np.ones((4, 2)), metric="l1")


def memorisation_sets(seed=10, n_train=1500, n_other=1500, d=8):
    rng = np.random.default_rng(seed)
    train = rng.standard_normal((n_train, d))
    heldout = rng.standard_normal((n_other, d))
    fresh = rng.standard_normal((n_other, d))
    return rng, train, heldout, fresh


def test_memorised_copies_are_flagged():
    rng, train, heldout, _ = memorisation_sets()
    copies = train[rng.choice(len(train), 1000, replace=False)] + 1e-3 * rng.standard_normal((1000, 8))
    gen_d, _ = nearest_neighbour_distances(copies, train, metric="l2")
    held_d, _ = nearest_neighbour_distances(heldout, train, metric="l2")
    out = memorisation_summary(gen_d, held_d)
    assert out["share_below_heldout_p5"] > 0.99
    assert out["p_value"] < 1e-50
    assert out["gen_median"] < out["heldout_p5"] < out["heldout_median"]
    assert out["n_gen"] == 1000 and out["n_heldout"] == 1500


def test_novel_samples_look_like_heldout():
    _, train, heldout, fresh = memorisation_sets()
    gen_d, _ = nearest_neighbour_distances(fresh, train)
    held_d, _ = nearest_neighbour_distances(heldout, train)
    out = memorisation_summary(torch.from_numpy(gen_d), held_d)
    assert abs(out["share_below_heldout_p5"] - 0.05) < 0.025
    assert out["p_value"] > 0.01
    assert out["gen_median"] == pytest.approx(out["heldout_median"], rel=0.1)
    assert all(isinstance(v, float | int) for v in out.values())


def test_memorisation_summary_validates():
    with pytest.raises(ValueError, match=r"gen_to_train: .*got shape \(3, 2\)"):
        memorisation_summary(np.ones((3, 2)), np.ones(5))
    with pytest.raises(ValueError, match="heldout_to_train"):
        memorisation_summary(np.ones(5), np.array([1.0]))
