"""Phantom: determinism, sizes, masks vs labels, CTR rule, prevalence, patients, reports, dataset."""

from __future__ import annotations

import numpy as np
import pytest

from medgen.data.labels import PHANTOM_LABELS
from medgen.data.phantom import (
    PhantomDataset,
    extract_labels,
    measure_ctr,
    patient_of,
    render_phantom,
    render_study,
    sample_study,
)

N_RENDER = 200  # phantoms checked pixel-wise at 128-256 px


@pytest.fixture(scope="module")
def rendered():
    return [render_phantom(i, size=128 if i % 2 else 192, seed=3) for i in range(N_RENDER)]


@pytest.fixture(scope="module")
def specs():
    return [sample_study(i, seed=0) for i in range(1000)]


def test_deterministic_per_seed_and_index():
    a, b = render_phantom(7, 160, seed=1), render_phantom(7, 160, seed=1)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.report == b.report and a.patient_id == b.patient_id
    c = render_phantom(7, 160, seed=2)
    assert not np.array_equal(a.image, c.image)
    assert a.image.dtype == np.float32 and 0.0 <= a.image.min() and a.image.max() <= 1.0


@pytest.mark.parametrize("size", [127, 2049, 0, -5, 256.0, "512", True])
def test_size_outside_range_is_refused(size):
    with pytest.raises(ValueError, match="128 to 2048"):
        render_phantom(0, size)


def test_same_layout_at_256_and_1024():
    lo, hi = render_phantom(4, 256, seed=5), render_phantom(4, 1024, seed=5)
    assert hi.image.shape == (1024, 1024) and lo.image.shape == (256, 256)
    assert lo.pixel_spacing_mm == pytest.approx(4 * hi.pixel_spacing_mm)
    for name in ("lungs", "heart", "thorax"):
        down = getattr(hi, name).reshape(256, 4, 256, 4).mean(axis=(1, 3)) > 0.5
        agree = (down == getattr(lo, name)).mean()
        assert agree > 0.99, name
    # image content agrees after block averaging; the 1024 render holds detail the 256 one lacks
    down = hi.image.reshape(256, 4, 256, 4).mean(axis=(1, 3))
    assert np.corrcoef(down.ravel(), lo.image.ravel())[0, 1] > 0.97
    detail = hi.image - np.repeat(np.repeat(down, 4, 0), 4, 1)
    assert detail[hi.lungs].std() > 0.005


def test_masks_inside_thorax_and_agree_with_labels(rendered):
    for s in rendered:
        assert set(s.masks) == set(PHANTOM_LABELS)
        for k, name in enumerate(PHANTOM_LABELS):
            m = s.masks[name]
            assert m.dtype == bool and m.shape == s.image.shape
            assert not (m & ~s.thorax).any(), (s.index, name)
            assert bool(m.any()) == bool(s.labels[k]), (s.index, name)


def test_ctr_rule(rendered):
    k = PHANTOM_LABELS.index("Cardiomegaly")
    enlarged = [s.ctr for s in rendered if s.labels[k]]
    normal = [s.ctr for s in rendered if not s.labels[k]]
    assert enlarged and normal
    assert min(enlarged) > 0.52, min(enlarged)
    assert max(normal) < 0.48, max(normal)
    s = rendered[0]
    assert s.ctr == pytest.approx(measure_ctr(s.heart, s.thorax))


def test_ctr_rule_at_full_range_of_sizes():
    for size in (128, 2048):
        for i in (2, 3, 12):  # study 2/3 of seed 0 are one cardiomegaly patient, 12 a normal heart
            s = render_study(sample_study(i), size)
            assert (s.ctr > 0.5) == bool(s.labels[PHANTOM_LABELS.index("Cardiomegaly")]), (size, i, s.ctr)


def test_prevalence(specs):
    y = np.stack([s.labels for s in specs])
    normal = (y.sum(1) == 0).mean()
    print(
        f"normal fraction {normal:.3f}; per-label prevalence", dict(zip(PHANTOM_LABELS, y.mean(0).round(3)))
    )
    assert normal >= 0.40
    assert (y.mean(0) >= 0.03).all() and (y.mean(0) <= 0.25).all()


def test_extractor_recovers_own_labels(specs):
    y = np.stack([s.labels for s in specs])
    p = np.stack([extract_labels(s.report["text"]) for s in specs])
    acc = (y == p).mean(0)
    print(
        "extractor per-label accuracy on 1000 phantom reports:",
        ", ".join(f"{k}={a:.3f}" for k, a in zip(PHANTOM_LABELS, acc)),
    )
    assert (acc >= 0.95).all()


@pytest.mark.parametrize(
    "text, positive, negative",
    [
        ("No evidence of pneumothorax.", [], ["Pneumothorax"]),
        ("Cardiomegaly is noted.", ["Cardiomegaly"], []),
        (
            "Heart size is normal. No focal consolidation, pleural effusion, or pneumothorax.",
            [],
            ["Cardiomegaly", "Consolidation", "Effusion", "Pneumothorax"],
        ),
        ("Small left pleural effusion. The lungs are otherwise clear.", ["Effusion"], []),
        ("The pneumothorax has resolved.", [], ["Pneumothorax"]),
        ("Pneumothorax is not seen. Right lower lobe consolidation.", ["Consolidation"], ["Pneumothorax"]),
        ("Cardiomegaly without pulmonary edema.", ["Cardiomegaly"], ["Edema"]),
        ("A small right pneumothorax cannot be excluded.", ["Pneumothorax"], []),
        ("No change in the left basilar atelectasis.", ["Atelectasis"], []),
        (
            "The heart is not enlarged. The mediastinum is widened.",
            ["Enlarged Cardiomediastinum"],
            ["Cardiomegaly"],
        ),
        (
            "Enlarged cardiac silhouette. Patchy opacity in the left base.",
            ["Cardiomegaly", "Lung Opacity"],
            [],
        ),
        ("No suspicious nodule or mass; 3 cm mass in the right apex is again seen", ["Mass"], ["Nodule"]),
    ],
)
def test_extractor_on_real_style_text(text, positive, negative):
    v = extract_labels(text)
    for k in positive:
        assert v[PHANTOM_LABELS.index(k)] == 1, (text, k)
    for k in negative:
        assert v[PHANTOM_LABELS.index(k)] == 0, (text, k)


def test_reports_name_side_and_negate(specs):
    for s in specs[:200]:
        text = s.report["text"]
        assert text.startswith("FINDINGS: ") and " IMPRESSION: " in text
        for f in s.findings:
            if f.side in ("right", "left"):
                assert f.side in s.report["findings"].lower(), (f, text)
    assert any(" no " in f" {s.report['findings'].lower()}" for s in specs[:50])
    assert len({s.report["findings"] for s in specs}) > 900  # varied phrasing


def test_patients_have_several_studies(specs):
    ids = [s.patient_id for s in specs]
    counts = np.unique(ids, return_counts=True)[1]
    assert counts.min() >= 1 and counts.max() <= 4 and (counts > 1).sum() > 100
    assert patient_of(5, 0)[0] == specs[5].patient_id
    # the same patient keeps the same anatomy (up to small changes) and chronic findings
    by_patient: dict[str, list] = {}
    for s in specs:
        by_patient.setdefault(s.patient_id, []).append(s)
    pairs = [v for v in by_patient.values() if len(v) > 1][:50]
    for studies in pairs:
        a, b = studies[0], studies[1]
        assert abs(a.anatomy.ctr_target - b.anatomy.ctr_target) < 0.012
        assert abs(a.anatomy.half_width[0] - b.anatomy.half_width[0]) < 0.02
        ka = PHANTOM_LABELS.index("Cardiomegaly")
        assert a.labels[ka] == b.labels[ka]
    different = [s for s in specs if s.patient_id != specs[0].patient_id]
    assert all(abs(s.anatomy.cx - specs[0].anatomy.cx) > 0 for s in different[:20])


def test_dataset_items():
    ds = PhantomDataset(n=3, size=128, seed=0, with_masks=True)
    assert len(ds) == 3
    item = ds[1]
    assert item["image"].shape == (1, 128, 128) and item["image"].dtype == np.float32
    assert item["label"].shape == (len(PHANTOM_LABELS),) and item["label"].dtype == np.float32
    assert item["mask"].shape == (len(PHANTOM_LABELS), 128, 128)
    assert isinstance(item["patient_id"], str) and item["report"].startswith("FINDINGS:")
    np.testing.assert_array_equal(item["image"][0], render_phantom(1, 128, 0).image)
    with pytest.raises(IndexError):
        ds[3]
    import torch

    batch = next(iter(torch.utils.data.DataLoader(PhantomDataset(2, 128, transform=None), batch_size=2)))
    assert tuple(batch["image"].shape) == (2, 1, 128, 128)


def test_dataset_registered():
    from medgen.registry import get

    assert get("dataset", "phantom") is PhantomDataset


def test_noise_scale_controls_only_quantum_noise():
    """``noise_scale`` (dose) scales the per-pixel quantum noise; the default is the explicit 1, anatomy is fixed."""
    default = render_phantom(6, 256, seed=2)
    np.testing.assert_array_equal(default.image, render_phantom(6, 256, seed=2, noise_scale=1.0).image)
    clean = render_phantom(6, 256, seed=2, noise_scale=0.0)
    quarter = render_phantom(6, 256, seed=2, noise_scale=0.25)
    for name in ("lungs", "heart", "thorax"):
        np.testing.assert_array_equal(getattr(clean, name), getattr(default, name))
    np.testing.assert_array_equal(clean.labels, default.labels)
    inside = default.thorax & (default.image > 0.05) & (default.image < 0.95)  # away from the clip limits
    noise_full = (default.image - clean.image)[inside].std()
    noise_quarter = (quarter.image - clean.image)[inside].std()
    assert noise_full > 1e-3  # the default dose is visibly noisy at this pixel size
    assert noise_quarter / noise_full == pytest.approx(
        0.25, rel=0.15
    )  # std scales linearly (small-noise limit)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_invalid_noise_scale_is_refused(bad):
    with pytest.raises(ValueError, match="noise_scale"):
        render_phantom(0, 128, noise_scale=bad)


def test_noise_floor_ranks_doses():
    from medgen.data.phantom.noise_floor import noise_floor

    r = noise_floor([1], size=256, noise_scales=(1.0, 0.25, 0.0))
    assert r[0.0]["vs_noiseless"] == float("inf")
    assert r[1.0]["vs_noiseless"] + 6 < r[0.25]["vs_noiseless"]  # std x 1/4: about +12 dB
    assert r[1.0]["bicubic"] < r[0.25]["bicubic"]  # per-pixel noise is not predictable from the LR
