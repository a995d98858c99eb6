"""Reader items feed MONAI datasets unchanged: load, collate, batch (imports MONAI, shared with the suite)."""

from __future__ import annotations

import numpy as np
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
from readers_fixtures import make_mrnet, make_nih

from medgen.data.labels import ALL_LABELS
from medgen.data.readers import read_mrnet, read_nih_cxr14


def test_items_load_and_collate_with_monai(tmp_path):
    items = read_nih_cxr14(make_nih(tmp_path / "nih"), labels=ALL_LABELS)
    loader = DataLoader(
        Dataset(items, Compose([LoadImaged("image"), EnsureChannelFirstd("image")])), batch_size=4
    )
    batch = next(iter(loader))
    assert tuple(batch["image"].shape) == (4, 1, 8, 8)
    np.testing.assert_array_equal(batch["label"].numpy(), np.stack([it["label"] for it in items[:4]]))
    assert batch["patient_id"] == [it["patient_id"] for it in items[:4]]
    # the fixture writes pixel value = patient id, so each image is the right file
    assert [int(v) for v in batch["image"][:, 0, 0, 0]] == [int(it["patient_id"]) for it in items[:4]]

    cases = {"0000": (1, 0, 1), "0001": (0, 1, 0)}
    mr = read_mrnet(make_mrnet(tmp_path / "mrnet", cases))
    batch = next(iter(DataLoader(Dataset(mr, LoadImaged(["axial", "sagittal"])), batch_size=2)))
    assert tuple(batch["sagittal"].shape) == (2, 2, 256, 256)
    assert batch["label"].tolist() == [list(map(float, v)) for v in cases.values()]
