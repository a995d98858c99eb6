"""Write a phantom set to disk: images (PNG / DICOM / NIfTI), finding masks, labels.csv, reports.csv.

Layout under ``out_dir``::

    images/000000.png|.dcm|.nii.gz   the radiograph (16-bit PNG; DICOM DX 12-bit; float32 NIfTI)
    masks/000000.png                 16-bit bit field: bit k (value 2**k) = PHANTOM_LABELS[k] for k < 10,
                                     bit 10 = lungs, bit 11 = heart, bit 12 = thorax (findings may overlap)
    labels.csv                       path, patient_id, one 0/1 column per PHANTOM_LABELS entry
    reports.csv                      path, patient_id, findings, impression
    phantom.json                     seed, size, format, spacing and the mask bit legend
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from medgen.data.labels import PHANTOM_LABELS
from medgen.data.phantom.constants import FORMATS
from medgen.data.phantom.render import PhantomSample, check_size, render_phantom
from medgen.transforms.io.writers import write_dicom, write_mask_png, write_nifti, write_png16

ANATOMY_BITS = {"lungs": 10, "heart": 11, "thorax": 12}


def mask_bitfield(sample: PhantomSample) -> np.ndarray:
    """All masks of a sample in one uint16 image (bit k = PHANTOM_LABELS[k], then lungs, heart, thorax)."""
    bits = np.zeros(sample.image.shape, dtype=np.uint16)
    for k, name in enumerate(PHANTOM_LABELS):
        bits |= sample.masks[name].astype(np.uint16) << k
    for name, k in ANATOMY_BITS.items():
        bits |= getattr(sample, name).astype(np.uint16) << k
    return bits


def decode_bitfield(bits: np.ndarray) -> dict[str, np.ndarray]:
    """Inverse of :func:`mask_bitfield`: name -> bool mask."""
    out = {name: (bits >> k) & 1 > 0 for k, name in enumerate(PHANTOM_LABELS)}
    out.update({name: (bits >> k) & 1 > 0 for name, k in ANATOMY_BITS.items()})
    return out


def write_sample(sample: PhantomSample, path: Path, fmt: str, photometric: str = "MONOCHROME2") -> None:
    if fmt == "png":
        write_png16(path, sample.image)
    elif fmt == "dicom":
        write_dicom(
            path,
            sample.image,
            sample.pixel_spacing_mm,
            photometric=photometric,
            tags={
                "PatientID": sample.patient_id,
                "PatientName": "PHANTOM^SYNTHETIC",
                "ViewPosition": sample.view,
                "StudyDescription": "SYNTHETIC PHANTOM CHEST",
                "ImageComments": "procedural phantom, not a patient",
            },
        )
    elif fmt == "nifti":
        write_nifti(path, sample.image, sample.pixel_spacing_mm)
    else:
        raise ValueError(f"phantom format {fmt!r} is not supported; use one of {sorted(FORMATS)}")


def write_phantom_dataset(
    out_dir: str | Path,
    n: int,
    size: int = 512,
    fmt: str = "png",
    seed: int = 0,
    progress: bool = True,
    photometric: str = "MONOCHROME2",
    masks: bool = True,
) -> Path:
    """Render phantom studies ``0..n-1`` of set ``seed`` at ``size`` pixels and write them under ``out_dir``.

    ``photometric`` applies to DICOM only ("MONOCHROME1" stores inverted values). Returns ``out_dir``.
    """
    from tqdm.auto import tqdm

    if fmt not in FORMATS:
        raise ValueError(f"phantom format {fmt!r} is not supported; use one of {sorted(FORMATS)}")
    if int(n) < 1:
        raise ValueError(f"write_phantom_dataset: n={n} must be >= 1")
    size = check_size(size)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    label_rows, report_rows = [], []
    spacing = None
    for i in tqdm(range(int(n)), desc=f"phantom {fmt} {size}px", disable=not progress, unit="img"):
        s = render_phantom(i, size, seed)
        spacing = s.pixel_spacing_mm
        rel = f"images/{i:06d}{FORMATS[fmt]}"
        write_sample(s, out / rel, fmt, photometric)
        if masks:
            write_mask_png(out / f"masks/{i:06d}.png", mask_bitfield(s))
        label_rows.append([rel, s.patient_id, *[int(v) for v in s.labels]])
        report_rows.append([rel, s.patient_id, s.report["findings"], s.report["impression"]])
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "patient_id", *PHANTOM_LABELS])
        w.writerows(label_rows)
    with open(out / "reports.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "patient_id", "findings", "impression"])
        w.writerows(report_rows)
    legend = {**{name: k for k, name in enumerate(PHANTOM_LABELS)}, **ANATOMY_BITS}
    meta = {
        "generator": "medgen.data.phantom",
        "seed": int(seed),
        "n": int(n),
        "size": size,
        "format": fmt,
        "photometric": photometric if fmt == "dicom" else "MONOCHROME2",
        "pixel_spacing_mm": spacing,
        "labels": list(PHANTOM_LABELS),
        "mask_bits": legend if masks else None,
    }
    (out / "phantom.json").write_text(json.dumps(meta, indent=2))
    return out
