"""Procedural chest-radiograph phantom with ground truth: labels, pixel masks, reports, native resolution.

``render_phantom(index, size, seed)`` draws one study; ``sample_study`` gives its labels and report without
pixels; ``PhantomDataset`` renders on the fly; ``write_phantom_dataset`` writes PNG/DICOM/NIfTI folders.
"""

from __future__ import annotations

from typing import Any

from medgen.data.phantom.extractor import extract_labels
from medgen.data.phantom.render import (
    MAX_SIZE,
    MIN_SIZE,
    PhantomSample,
    measure_ctr,
    render_phantom,
    render_study,
)
from medgen.data.phantom.study import StudySpec, patient_of, sample_study

__all__ = [
    "MAX_SIZE",
    "MIN_SIZE",
    "PhantomDataset",
    "PhantomSample",
    "StudySpec",
    "extract_labels",
    "measure_ctr",
    "patient_of",
    "render_phantom",
    "render_study",
    "sample_study",
    "write_phantom_dataset",
]


def __getattr__(name: str) -> Any:  # torch / pydicom only when the dataset or writer is used
    if name == "PhantomDataset":
        from medgen.data.phantom.dataset import PhantomDataset

        return PhantomDataset
    if name == "write_phantom_dataset":
        from medgen.data.phantom.writer import write_phantom_dataset

        return write_phantom_dataset
    raise AttributeError(f"module 'medgen.data.phantom' has no attribute {name!r}")
