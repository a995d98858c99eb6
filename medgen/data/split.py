"""Patient-level splits: no patient's images ever land in two splits.

Most chest X-ray datasets hold several images per patient (84% of NIH images); an image-level random split
puts most test images beside a same-patient training image and inflates every metric. ``patient_split``
works on any list of dicts, so every reader (and the phantom) shares it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from medgen.data.errors import DataError, PatientLeakError


def _patient_groups(items: Sequence[dict], key: str) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    missing = []
    for i, item in enumerate(items):
        pid = item.get(key) if isinstance(item, dict) else None
        if pid is None or str(pid) == "":
            missing.append(i)
        else:
            groups[str(pid)].append(i)
    if missing:
        raise DataError(
            f"patient_split: {len(missing)} item(s) have no {key!r} (indices {missing[:20]}"
            f"{' ...' if len(missing) > 20 else ''}); every item needs a patient id, or pass key= naming the "
            f"field that identifies the patient."
        )
    return groups


def _strata(
    items: Sequence[dict], groups: dict[str, list[int]], stratify: str | Callable[[dict], Any]
) -> dict[str, Hashable]:
    """One stratum per patient.

    Scalar values: the patient's most common value. Vector values (multi-label): the rarest label (by
    patient prevalence) that the patient has, or ``"none"``; the usual cheap stand-in for iterative
    stratification, which keeps rare findings present in every split.
    """
    get = stratify if callable(stratify) else (lambda item: item[stratify])
    values = {pid: [get(items[i]) for i in idx] for pid, idx in groups.items()}
    first = next(iter(values.values()))[0]
    if np.ndim(first) == 0:
        return {pid: Counter(v).most_common(1)[0][0] for pid, v in sorted(values.items())}
    positives = {
        pid: np.nan_to_num(np.stack([np.asarray(x, dtype=np.float32) for x in v]), nan=0.0).max(axis=0) > 0.5
        for pid, v in values.items()
    }
    prevalence = np.sum(np.stack(list(positives.values())), axis=0)
    out: dict[str, Hashable] = {}
    for pid, pos in positives.items():
        out[pid] = int(np.argmin(np.where(pos, prevalence, np.inf))) if pos.any() else "none"
    return out


def patient_split(
    items: Sequence[dict],
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    key: str = "patient_id",
    stratify: str | Callable[[dict], Any] | None = None,
) -> tuple[list[dict], ...]:
    """Split items into ``len(fractions)`` lists, keeping each patient's items together.

    Patients are shuffled with ``seed`` and each goes, with all its items, to the split furthest below its
    target item count, so item shares track ``fractions`` while no patient is in two splits. The result
    depends only on the items, ``fractions`` and ``seed`` (not on the order of ``items`` or the process).

    Args:
        items: any list of dicts holding ``key``.
        fractions: target share of items per split, non-negative, summing to 1.
        seed: shuffle seed.
        key: field naming the patient.
        stratify: optional field name or ``item -> value`` callable. Scalars stratify by value; label
            vectors by each patient's rarest positive label, so rare findings reach every split.

    Returns:
        one list per fraction, items in their input order.

    Raises:
        ValueError: bad ``fractions``.
        DataError: an item without a patient id.
    """
    fracs = np.asarray(fractions, dtype=np.float64)
    if fracs.ndim != 1 or len(fracs) == 0 or (fracs < 0).any() or abs(fracs.sum() - 1.0) > 1e-6:
        raise ValueError(
            f"patient_split: fractions={tuple(fractions)} must be >= 0 and sum to 1, e.g. (0.7, 0.1, 0.2)."
        )
    groups = _patient_groups(items, key)
    strata = (
        _strata(items, groups, stratify) if stratify is not None and groups else {pid: 0 for pid in groups}
    )
    by_stratum: dict[Hashable, list[str]] = defaultdict(list)
    for pid in sorted(groups):
        by_stratum[strata[pid]].append(pid)
    rng = np.random.default_rng(seed)
    assignment: dict[str, int] = {}
    for stratum in sorted(by_stratum, key=repr):
        pids = by_stratum[stratum]
        targets = fracs * sum(len(groups[p]) for p in pids)
        counts = np.zeros(len(fracs))
        for j in rng.permutation(len(pids)):
            pid = pids[j]
            s = int(np.argmax(targets - counts))
            assignment[pid] = s
            counts[s] += len(groups[pid])
    indices: list[list[int]] = [[] for _ in fracs]
    for pid, idx in groups.items():
        indices[assignment[pid]].extend(idx)
    return tuple([items[i] for i in sorted(idx)] for idx in indices)


def assert_no_patient_leak(
    *splits: Sequence[dict], key: str = "patient_id", names: Sequence[str] | None = None
) -> None:
    """Raise :class:`PatientLeakError` naming every patient id found in more than one split.

    Args:
        splits: lists of item dicts.
        key: field naming the patient.
        names: split names used in the message (default ``split0``, ``split1``, ...).
    """
    names = list(names) if names is not None else [f"split{i}" for i in range(len(splits))]
    where: dict[str, list[int]] = defaultdict(list)
    for s, split in enumerate(splits):
        for pid in sorted({str(item[key]) for item in split}):
            where[pid].append(s)
    leaks = {pid: s for pid, s in where.items() if len(s) > 1}
    if leaks:
        shown = [f"{pid} ({', '.join(names[i] for i in s)})" for pid, s in sorted(leaks.items())[:50]]
        raise PatientLeakError(
            f"{len(leaks)} patient(s) appear in more than one split: {', '.join(shown)}"
            f"{' ...' if len(leaks) > 50 else ''}. Split with medgen.data.split.patient_split, which keeps "
            f"each patient's images together.",
            leaks,
        )
