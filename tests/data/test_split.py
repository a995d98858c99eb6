"""Patient-level splits: never a patient in two splits, deterministic, close to the asked fractions."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from readers_fixtures import make_nih

from medgen.data.errors import DataError, PatientLeakError
from medgen.data.readers import read_nih_cxr14
from medgen.data.split import assert_no_patient_leak, patient_split


def _assignment(splits, key="patient_id"):
    return {item[key]: s for s, split in enumerate(splits) for item in split}


def test_nih_fixture_split_is_leak_free_and_image_split_is_not(tmp_path):
    items = read_nih_cxr14(make_nih(tmp_path / "nih"))
    train, val, test = patient_split(items, fractions=(0.5, 0.25, 0.25), seed=3)
    assert_no_patient_leak(train, val, test)
    assert sorted(id(i) for i in train + val + test) == sorted(id(i) for i in items)
    for split in (train, val, test):  # every patient's images travel together
        for pid in {it["patient_id"] for it in split}:
            assert sum(it["patient_id"] == pid for it in split) == sum(
                it["patient_id"] == pid for it in items
            )
    # the checker catches what a naive image-level split does
    shuffled = random.Random(0).sample(items, len(items))
    half = len(items) // 2
    with pytest.raises(PatientLeakError) as err:
        assert_no_patient_leak(shuffled[:half], shuffled[half:], names=("train", "test"))
    leaked = {it["patient_id"] for it in shuffled[:half]} & {it["patient_id"] for it in shuffled[half:]}
    assert set(err.value.leaks) == leaked and all(f"{pid} (train, test)" in str(err.value) for pid in leaked)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=60),
    weights=st.lists(st.integers(0, 10), min_size=1, max_size=4).filter(lambda w: sum(w) > 0),
    seed=st.integers(0, 2**31 - 1),
    order_seed=st.integers(0, 1000),
)
def test_patient_split_properties(sizes, weights, seed, order_seed):
    items = [{"patient_id": f"p{p}", "k": k} for p, n in enumerate(sizes) for k in range(n)]
    fractions = [w / sum(weights) for w in weights]
    splits = patient_split(items, fractions=fractions, seed=seed)
    assert len(splits) == len(fractions)
    assert sorted(id(i) for s in splits for i in s) == sorted(id(i) for i in items)  # a partition
    assert_no_patient_leak(*splits)
    # deterministic, and independent of the input order
    shuffled = random.Random(order_seed).sample(items, len(items))
    assert _assignment(patient_split(shuffled, fractions=fractions, seed=seed)) == _assignment(splits)
    # each split within one patient of its target (greedy bound; m = largest patient)
    m, k, n = max(sizes), len(fractions), len(items)
    for frac, split in zip(fractions, splits):
        assert frac * n - (k - 1) * m - 1e-9 <= len(split) < frac * n + m + 1e-9


def test_seed_changes_split_and_order_within_split_is_kept():
    items = [{"patient_id": i // 2, "n": i} for i in range(200)]
    a = patient_split(items, seed=0)
    assert _assignment(a) != _assignment(patient_split(items, seed=1))
    assert all([it["n"] for it in s] == sorted(it["n"] for it in s) for s in a)


def test_stratify_by_rare_label_and_by_scalar():
    rng = np.random.default_rng(0)
    items = []
    for p in range(120):
        rare = p % 6 == 0  # 20 patients carry the rare finding
        for _ in range(int(rng.integers(1, 4))):
            items.append(
                {"patient_id": p, "label": np.array([1.0, float(rare)], np.float32), "site": "AB"[p % 2]}
            )
    a, b = patient_split(items, fractions=(0.5, 0.5), seed=0, stratify="label")
    rare_patients = [{it["patient_id"] for it in s if it["label"][1]} for s in (a, b)]
    images_with_rare = [sum(it["label"][1] == 1 for it in s) for s in (a, b)]
    # per stratum each split is within one patient (<= 3 images) of its target
    assert abs(images_with_rare[0] - sum(images_with_rare) / 2) < 3 and all(rare_patients)
    assert_no_patient_leak(a, b)
    a, b = patient_split(items, fractions=(0.5, 0.5), seed=0, stratify=lambda it: it["site"])
    for site in "AB":
        counts = [sum(it["site"] == site for it in s) for s in (a, b)]
        assert abs(counts[0] - sum(counts) / 2) < 3


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="fractions"):
        patient_split([{"patient_id": 1}], fractions=(0.7, 0.7))
    with pytest.raises(DataError, match=r"indices \[1\]"):
        patient_split([{"patient_id": 1}, {"pid": 2}])
    assert len(patient_split([{"pid": 1}, {"pid": 2}], key="pid", fractions=(1.0,))[0]) == 2
