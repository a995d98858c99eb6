"""patient_split on the phantom: its patients have several studies, so an image-level split would leak."""

from __future__ import annotations

import random

import pytest

from medgen.data.phantom import sample_study
from medgen.data.split import PatientLeakError, assert_no_patient_leak, patient_split


@pytest.fixture(scope="module")
def items():
    return [{"index": i, "patient_id": sample_study(i, seed=0).patient_id} for i in range(600)]


def test_phantom_patient_split_is_leak_free_and_deterministic(items):
    train, val, test = patient_split(items, (0.7, 0.1, 0.2), seed=0)
    assert len(train) + len(val) + len(test) == len(items)
    assert_no_patient_leak(train, val, test, names=["train", "val", "test"])
    again = patient_split(list(reversed(items)), (0.7, 0.1, 0.2), seed=0)
    assert [sorted(d["index"] for d in s) for s in again] == [
        sorted(d["index"] for d in s) for s in (train, val, test)
    ]
    assert abs(len(test) / len(items) - 0.2) < 0.03


def test_image_level_split_of_the_phantom_would_leak(items):
    shuffled = items[:]
    random.Random(0).shuffle(shuffled)
    cut = int(0.8 * len(shuffled))
    with pytest.raises(PatientLeakError):
        assert_no_patient_leak(shuffled[:cut], shuffled[cut:])
