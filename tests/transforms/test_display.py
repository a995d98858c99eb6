"""Display operations, presets and image statistics: ranges, shapes, and what each operation is for."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medgen.transforms.display import (
    OPS,
    PRESETS,
    EnhancePreset,
    EnhancePresetd,
    Windowd,
    clahe,
    equalize_histogram,
    image_statistics,
    median_filter,
    unsharp_mask,
    vignette,
    window,
)

FAST = settings(max_examples=25, deadline=None)


@st.composite
def images(draw):
    c = draw(st.integers(1, 2))
    h, w = draw(st.integers(8, 40)), draw(st.integers(8, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    kind = draw(st.sampled_from(["noise", "constant", "gradient"]))
    if kind == "noise":
        arr = rng.random((c, h, w), dtype=np.float32)
    elif kind == "constant":
        arr = np.full((c, h, w), rng.random(), dtype=np.float32)
    else:
        arr = np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32), (c, h, w)).copy()
    return torch.from_numpy(arr) if draw(st.booleans()) else arr


@FAST
@given(images(), st.sampled_from(sorted(OPS)))
def test_ops_keep_shape_type_and_range(img, op):
    out = OPS[op](img)
    assert type(out) is type(img) and tuple(out.shape) == tuple(img.shape)
    out = np.asarray(out)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1


@FAST
@given(images(), st.sampled_from(sorted(PRESETS)))
def test_presets_keep_range_and_are_deterministic(img, name):
    a, b = EnhancePreset(name)(img), EnhancePreset(name)(img)
    assert tuple(a.shape) == tuple(img.shape)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_presets_are_distinct_and_change_the_image():
    y, x = np.mgrid[:64, :64]
    img = (
        0.4 + 0.2 * np.sin(x / 4) * np.cos(y / 6) + 0.02 * np.random.default_rng(0).standard_normal((64, 64))
    )
    img = np.clip(img, 0, 1).astype(np.float32)[None]
    outs = {n: EnhancePreset(n)(img) for n in PRESETS}
    assert set(PRESETS) == {"balanced", "high_contrast", "sharp_detail", "radiographic_film"}
    for name, out in outs.items():
        assert np.abs(out - img).max() > 0.05, name
    names = sorted(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(outs[a] - outs[b]).max() > 0.01, (a, b)
    # high_contrast is meant to raise contrast; sharp_detail to raise Laplacian variance over the original
    assert image_statistics(outs["high_contrast"])["contrast"] > image_statistics(img)["contrast"]
    # on a noise-free image the median step keeps structure and the unsharp mask raises Laplacian variance
    smooth = np.clip(0.4 + 0.2 * np.sin(x / 4) * np.cos(y / 6), 0, 1).astype(np.float32)[None]
    sharp = EnhancePreset("sharp_detail")(smooth)
    assert image_statistics(sharp)["sharpness"] > 1.5 * image_statistics(smooth)["sharpness"]


def test_unknown_preset_names_the_closest():
    with pytest.raises(ValueError, match="did you mean 'balanced'"):
        EnhancePreset("balancd")


def test_window_is_linear_between_its_edges():
    img = np.array([[[0.0, 0.25, 0.375, 0.5, 0.75, 1.0]]], dtype=np.float32)
    out = window(img, center=0.5, width=0.5)
    np.testing.assert_allclose(out, [[[0, 0, 0.25, 0.5, 1, 1]]], atol=1e-6)
    with pytest.raises(ValueError, match="width"):
        window(img, width=0)


def test_clahe_raises_local_contrast_of_a_flat_image():
    y, x = np.mgrid[:64, :64]
    img = (0.45 + 0.03 * np.sin(x / 3) * np.sin(y / 5)).astype(np.float32)[None]
    assert clahe(img, clip_limit=0.02).std() > 3 * img.std()


def test_median_removes_impulses_and_keeps_edges():
    img = np.zeros((1, 16, 16), dtype=np.float32)
    img[0, :, 8:] = 1.0
    noisy = img.copy()
    noisy[0, 3, 3] = 1.0
    noisy[0, 10, 12] = 0.0
    np.testing.assert_array_equal(median_filter(noisy, radius=1), img)


def test_unsharp_mask_overshoots_at_an_edge_and_keeps_flat_regions():
    img = np.full((1, 16, 16), 0.3, dtype=np.float32)
    img[0, :, 8:] = 0.7
    out = unsharp_mask(img, radius=1.0, amount=1.0)
    assert out[0, 8, 8] > 0.7 and out[0, 8, 7] < 0.3
    np.testing.assert_allclose(out[0, :, 0], 0.3, atol=1e-3)


def test_histogram_equalisation_spreads_a_narrow_histogram():
    img = np.random.default_rng(0).uniform(0.4, 0.5, (1, 64, 64)).astype(np.float32)
    out = equalize_histogram(img)
    assert out.min() < 0.02 and out.max() > 0.98
    assert image_statistics(out)["entropy"] > image_statistics(img)["entropy"] + 2


def test_vignette_darkens_corners_only():
    img = np.ones((1, 33, 33), dtype=np.float32)
    out = vignette(img, strength=0.4, power=2.0)
    assert out[0, 16, 16] == pytest.approx(1.0) and out[0, 0, 0] == pytest.approx(0.6, abs=1e-6)
    assert out[0, 0, 16] == pytest.approx(1 - 0.4 * 0.5, abs=1e-6)  # edge midpoint: r**2 = 1/2


def test_image_statistics_known_values():
    const = np.full((1, 16, 16), 0.25, dtype=np.float32)
    assert image_statistics(const) == pytest.approx(
        {"contrast": 0, "sharpness": 0, "entropy": 0, "mean": 0.25}
    )
    half = np.zeros((1, 16, 16), dtype=np.float32)
    half[0, :, 8:] = 1.0
    stats = image_statistics(half)
    assert stats["entropy"] == pytest.approx(1.0) and stats["contrast"] == pytest.approx(0.5)
    assert stats["mean"] == pytest.approx(0.5) and stats["sharpness"] > 0


def test_out_of_range_input_is_refused():
    with pytest.raises(ValueError, match="clahe: expects intensities in \\[0, 1\\]"):
        clahe(np.full((1, 8, 8), 300.0, dtype=np.float32))
    with pytest.raises(ValueError, match="channel-first"):
        window(np.zeros((8, 8), dtype=np.float32))


def test_dictionary_versions():
    img = np.random.default_rng(0).random((1, 16, 16), dtype=np.float32)
    out = EnhancePresetd("image", "balanced")({"image": img, "meta": 1})
    np.testing.assert_array_equal(out["image"], EnhancePreset("balanced")(img))
    assert out["meta"] == 1
    w = Windowd(["image", "mask"], center=0.5, width=0.5, allow_missing_keys=True)({"image": img})
    np.testing.assert_array_equal(w["image"], window(img, 0.5, 0.5))


@pytest.mark.slow  # imports matplotlib and renders a phantom: ~10-40 s on the 2-core CI machine
def test_preset_figure_is_written(tmp_path):
    from PIL import Image

    from medgen.visualize.presets import make_figure

    path = make_figure(tmp_path / "presets.png", size=128)
    assert Image.open(path).size[0] > 400
