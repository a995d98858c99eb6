"""localization_report with class-specific (C, H, W) maps: channel = labels.index(finding); errors are explicit."""

import numpy as np
import pytest
import torch

from medgen.metrics.localization import localization_report


def _mask(y0, y1, x0, x1, size=10):
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return m


def _peak(y, x, size=10):
    a = np.zeros((size, size))
    a[y, x] = 1.0
    return a


def test_each_finding_is_scored_on_its_own_channel():
    mass, nodule = _mask(1, 3, 1, 3), _mask(7, 9, 7, 9)
    # channel 0 ("Mass") peaks in the mass, channel 1 ("Nodule") in the nodule: both hit
    right = np.stack([_peak(2, 2), _peak(8, 8)])
    # the same two maps with the channels swapped: both miss
    swapped = right[::-1].copy()
    masks = [{"Mass": mass, "Nodule": nodule}]
    labels = ["Mass", "Nodule"]
    rep = localization_report([right], masks, labels=labels)
    assert rep["per_finding"]["Mass"]["pointing_game"] == 1.0
    assert rep["per_finding"]["Nodule"]["pointing_game"] == 1.0
    assert rep["per_finding"]["Mass"]["mass_share"] == 1.0
    assert localization_report([swapped], masks, labels=labels)["overall"]["pointing_game"] == 0.0
    # the label order decides the channel: the swapped maps with swapped labels hit again
    assert localization_report([swapped], masks, labels=labels[::-1])["overall"]["pointing_game"] == 1.0
    # one class-agnostic map can point at only one of the two findings
    assert localization_report([right[0]], masks)["overall"]["pointing_game"] == 0.5


def test_class_maps_accept_tensors_and_unused_channels_and_match_2d_scoring():
    torch.manual_seed(0)
    maps = torch.rand(3, 4, 10, 10)  # 3 images, 4 classes
    labels = ["a", "b", "c", "d"]
    masks = [{"b": _mask(0, 5, 0, 5)}, {"d": _mask(5, 10, 5, 10), "a": np.zeros((10, 10), bool)}, {}]
    rep = localization_report(maps, masks, labels=labels)
    # identical to scoring the selected channel as an (H, W) map
    ref = localization_report([maps[0, 1], maps[1, 3], maps[2, 0]], masks)
    assert rep["overall"] == ref["overall"]
    assert rep["overall"]["n"] == 2 and set(rep["per_finding"]) == {"b", "d"}
    # (H, W) maps still work when labels are given
    assert localization_report([m[0] for m in maps], masks, labels=labels)["overall"]["n"] == 2


def test_class_map_errors_name_the_fix():
    maps = [np.zeros((2, 10, 10))]
    masks = [{"Mass": _mask(1, 3, 1, 3)}]
    with pytest.raises(ValueError, match="no `labels`"):
        localization_report(maps, masks)
    with pytest.raises(ValueError, match="2 map channels for 3 labels"):
        localization_report(maps, masks, labels=["Mass", "Nodule", "Edema"])
    with pytest.raises(ValueError, match="'Effusion'.*no map channel"):
        localization_report(maps, [{"Effusion": _mask(1, 3, 1, 3)}], labels=["Mass", "Nodule"])
    with pytest.raises(ValueError, match="duplicate"):
        localization_report(maps, masks, labels=["Mass", "Mass"])
    with pytest.raises(ValueError, match="differ in shape"):
        localization_report([np.zeros((2, 8, 8))], masks, labels=["Mass", "Nodule"])
    with pytest.raises(ValueError, match=r"expected \(H, W\) or \(C, H, W\)"):
        localization_report([np.zeros(10)], masks)
    with pytest.raises(ValueError, match="1 maps for 2 mask sets"):
        localization_report(maps, masks * 2, labels=["Mass", "Nodule"])


def test_uniform_pointing_baseline_is_the_dilated_mask_share():
    import numpy as np

    from medgen.metrics.localization import localization_report

    mask = np.zeros((32, 32), bool)
    mask[10:14, 10:14] = True  # 16 px
    amap = np.zeros((32, 32))
    amap[15, 12] = 1.0  # one pixel below the square: a miss at tolerance 0, a hit at tolerance 2
    r0 = localization_report([amap], [{"Mass": mask}], tolerance=0)["overall"]
    r2 = localization_report([amap], [{"Mass": mask}], tolerance=2)["overall"]
    assert r0["pointing_game"] == 0.0 and r2["pointing_game"] == 1.0
    assert r0["uniform_pointing_baseline"] == r0["uniform_baseline"] == 16 / 1024
    # pixels within Euclidean distance 2 of a 4x4 square: the 8x8 square minus the 4 corners at distance > 2 (3 each)
    yy, xx = np.mgrid[:32, :32]
    dy = np.maximum(np.maximum(10 - yy, yy - 13), 0)
    dx = np.maximum(np.maximum(10 - xx, xx - 13), 0)
    assert r2["uniform_pointing_baseline"] == ((dy**2 + dx**2) <= 4).sum() / 1024
