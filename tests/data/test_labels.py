"""The one label space: dataset maps, canonical names and projection between label lists."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medgen.data.labels import (
    ALL_LABELS,
    CHEXPERT_LABELS,
    DATASET_LABEL_MAPS,
    NIH_LABELS,
    PHANTOM_LABELS,
    canonical_label,
    project_labels,
)


def test_every_map_lands_in_the_union_label_space():
    for dataset, table in DATASET_LABEL_MAPS.items():
        assert set(table.values()) <= set(ALL_LABELS), dataset
    assert set(CHEXPERT_LABELS) | set(NIH_LABELS) | set(PHANTOM_LABELS) <= set(ALL_LABELS)
    assert list(ALL_LABELS) == sorted(ALL_LABELS)


def test_canonical_names():
    assert canonical_label("Pleural Effusion") == "Effusion"
    assert canonical_label("Pleural Effusion", "chexpert") == "Effusion"
    assert canonical_label("Infiltrate", "nih") == "Infiltration"
    assert canonical_label("Pulmonary Atelectasis", "indiana") == "Atelectasis"
    with pytest.raises(KeyError, match="Cardiomegaly"):
        canonical_label("Cardiomegally")
    with pytest.raises(KeyError, match="unknown dataset"):
        canonical_label("Mass", "padchest")


def test_project_labels_reorders_fills_and_combines():
    source = ["Pleural Effusion", "Cardiomegaly", "Lung Lesion"]
    vec = np.array([[1.0, 0.0, 1.0], [0.0, np.nan, 0.0]], np.float32)
    out = project_labels(vec, source, NIH_LABELS)
    assert out.shape == (2, len(NIH_LABELS)) and out.dtype == np.float32
    assert out[0, NIH_LABELS.index("Effusion")] == 1.0 and out[0, NIH_LABELS.index("Cardiomegaly")] == 0.0
    assert math.isnan(out[1, NIH_LABELS.index("Cardiomegaly")])
    assert np.isnan(out[:, NIH_LABELS.index("Mass")]).all()  # CheXpert does not grade Mass: unknown, not 0
    assert (project_labels(vec, source, NIH_LABELS, fill=0.0)[:, NIH_LABELS.index("Mass")] == 0).all()
    # round trip through the union space keeps the known values
    back = project_labels(project_labels(vec, source, ALL_LABELS), ALL_LABELS, source)
    np.testing.assert_array_equal(back, vec)
    # two source names for one finding combine with a NaN-ignoring max
    both = project_labels(
        np.array([0.0, 1.0, np.nan]), ["Emphysema", "Pulmonary Emphysema", "Edema"], ["Emphysema"]
    )
    assert both.tolist() == [1.0]
    t = project_labels(torch.tensor([1.0, 0.0, 1.0]), source, ["Effusion", "Mass"])
    assert isinstance(t, torch.Tensor) and t[0] == 1 and torch.isnan(t[1])
    with pytest.raises(ValueError, match="3 labels"):
        project_labels(np.zeros(4), source, NIH_LABELS)
