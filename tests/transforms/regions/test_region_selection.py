"""select_attention_regions: flat maps, border regions, NMS, min/max size."""

import numpy as np
import pytest
import torch

from medgen.transforms.regions import (
    SelectAttentionRegions,
    SelectAttentionRegionsd,
    select_attention_regions,
)


def _blob(h, w, cy, cx, sigma):
    y, x = np.mgrid[:h, :w]
    return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2)).astype(np.float32)


def test_flat_map_gives_explicit_empty_result():
    boxes = select_attention_regions(torch.full((2, 64, 64), 0.3), k=3)
    assert len(boxes) == 2
    for b in boxes:
        assert b.shape == (0, 4) and b.dtype == torch.int64


def test_two_blobs_found_in_score_order_and_box_contains_peak():
    amap = 1.0 * _blob(64, 64, 20, 15, 3) + 0.6 * _blob(64, 64, 45, 48, 3)
    boxes, scores = select_attention_regions(
        amap, k=3, percentile=90, min_size=8, max_size=32, return_scores=True
    )
    b = boxes[0]
    assert b.shape[0] == 2
    assert scores[0][0] > scores[0][1]
    x0, y0, x1, y1 = b[0].tolist()
    assert x0 <= 15 < x1 and y0 <= 20 < y1  # strongest blob first
    x0, y0, x1, y1 = b[1].tolist()
    assert x0 <= 48 < x1 and y0 <= 45 < y1


def test_border_region_is_kept_inside_the_image():
    amap = _blob(64, 64, 0, 63, 2)  # peak in the top-right corner
    b = select_attention_regions(amap, k=1, percentile=98, min_size=16, max_size=16)[0]
    assert b.shape == (1, 4)
    x0, y0, x1, y1 = b[0].tolist()
    assert (x1 - x0, y1 - y0) == (16, 16)
    assert 0 <= x0 and x1 <= 64 and 0 <= y0 and y1 <= 64
    assert x0 <= 63 < x1 and y0 <= 0 < y1


def test_box_larger_than_image_is_clipped():
    amap = _blob(12, 12, 6, 6, 2)
    b = select_attention_regions(amap, k=1, percentile=50, min_size=20, max_size=20)[0]
    assert b[0].tolist() == [0, 0, 12, 12]


def test_min_and_max_size_are_enforced():
    amap = _blob(96, 96, 30, 30, 1.0) + _blob(96, 96, 70, 70, 20.0) * 0.5
    boxes = select_attention_regions(amap, k=5, percentile=60, min_size=10, max_size=24, nms_iou=0.9)[0]
    assert boxes.shape[0] >= 1
    sides = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)
    assert (sides >= 10).all() and (sides <= 24).all()


def test_nms_suppresses_overlapping_boxes():
    # two nearby peaks -> two components whose min-size boxes overlap heavily
    amap = _blob(64, 64, 30, 28, 1.0) + _blob(64, 64, 30, 34, 1.0) * 0.9
    loose = select_attention_regions(amap, k=5, percentile=99.5, min_size=20, max_size=20, nms_iou=0.99)[0]
    strict = select_attention_regions(amap, k=5, percentile=99.5, min_size=20, max_size=20, nms_iou=0.1)[0]
    assert loose.shape[0] == 2
    assert strict.shape[0] == 1


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="min_size"):
        select_attention_regions(np.zeros((8, 8)), min_size=10, max_size=5)


def test_array_and_dictionary_transforms_agree():
    amap = torch.as_tensor(_blob(32, 32, 10, 10, 2))[None]
    boxes = SelectAttentionRegions(k=2, percentile=90, min_size=8, max_size=8)(amap)
    d = SelectAttentionRegionsd("attention", k=2, percentile=90, min_size=8, max_size=8)({"attention": amap})
    assert torch.equal(d["attention_boxes"], boxes)
