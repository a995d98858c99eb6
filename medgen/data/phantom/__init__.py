"""Procedural chest-radiograph phantom with ground truth: labels, pixel masks, reports, native resolution.

``render_phantom(index, size, seed)`` draws one study; ``sample_study`` gives its labels and report without
pixels; ``PhantomDataset`` renders on the fly; ``write_phantom_dataset`` writes PNG/DICOM/NIfTI folders.
"""

from __future__ import annotations

from medgen.data.phantom.constants import MAX_SIZE, MIN_SIZE
from medgen.lazy import lazy_exports

# name -> module: imported on first use, so `import medgen.data.phantom` (the CLI, the readers) stays free
# of scipy (the renderer), torch (the dataset) and pydicom (the writer).
_LAZY = {
    "extract_labels": "medgen.data.phantom.extractor",
    "PhantomSample": "medgen.data.phantom.render",
    "measure_ctr": "medgen.data.phantom.render",
    "render_phantom": "medgen.data.phantom.render",
    "render_study": "medgen.data.phantom.render",
    "StudySpec": "medgen.data.phantom.study",
    "patient_of": "medgen.data.phantom.study",
    "sample_study": "medgen.data.phantom.study",
    "PhantomDataset": "medgen.data.phantom.dataset",
    "write_phantom_dataset": "medgen.data.phantom.writer",
}

__all__ = ["MAX_SIZE", "MIN_SIZE", *sorted(_LAZY)]


__getattr__, __dir__ = lazy_exports(__name__, names=_LAZY)
