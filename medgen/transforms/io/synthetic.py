"""Writers that mark a generated image as SYNTHETIC, and the reader of those marks.

A generated chest X-ray must never pass for a patient's acquisition, in a folder or in a PACS. Both writers
put the same marks into the file, and :func:`read_synthetic_marks` returns them as one dict for either format:
``synthetic`` (``"true"``), ``model``, ``prompt``, ``software`` (medgen and its version), ``format`` and every
provenance key given (seed, steps, guidance, preset, ...), all as strings.

* PNG (:func:`write_synthetic_png`): text chunks (tEXt; iTXt when a value is not Latin-1) beside the pixels of
  :func:`~medgen.transforms.io.writers.write_png`: the PNG keywords ``Software``, ``Source``, ``Description``,
  ``Disclaimer`` and ``Creation Time`` for any viewer, and ``medgen:synthetic`` = ``true``, ``medgen:model``,
  ``medgen:prompt`` and ``medgen:<key>`` for each provenance key for programs.
* DICOM (:func:`write_synthetic_dicom`): a new file from :func:`~medgen.transforms.io.writers.write_dicom` with
  the tags in :func:`synthetic_dicom_tags` (each documented there); the provenance goes into ImageComments.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medgen import __version__
from medgen.transforms.io.writers import write_dicom, write_png

__all__ = [
    "SYNTHETIC_PATIENT_ID",
    "SYNTHETIC_PATIENT_NAME",
    "read_synthetic_marks",
    "synthetic_dicom_tags",
    "write_synthetic_dicom",
    "write_synthetic_png",
]

MARK_PREFIX = "medgen:"
SYNTHETIC_PATIENT_NAME = "SYNTHETIC^MEDGEN"
SYNTHETIC_PATIENT_ID = "SYNTHETIC"
# DICOM value lengths in characters (PS3.5 6.2): ST 1024, LT 10240, LO 64
ST_MAX, LT_MAX, LO_MAX = 1024, 10240, 64
ELLIPSIS = "..."
PROVENANCE_LINE = "medgen:provenance "
PROMPT_LINE = "Prompt: "
# keys the writers set themselves; a provenance mapping may not use them
RESERVED_KEYS = ("synthetic", "software", "format", "prompt_truncated")
_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _software() -> str:
    return f"medgen {__version__}"


def _image2d(image01: Any, where: str) -> np.ndarray:
    """(H, W) numpy from a numpy array or torch tensor shaped (H, W) or (1, H, W)."""
    if hasattr(image01, "detach"):
        image01 = image01.detach().cpu().numpy()
    a = np.asarray(image01)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{where}: expected one grey image (H, W) or (1, H, W), got shape {a.shape}")
    return a


def _shorten(text: str, limit: int) -> str:
    """``text`` itself when it has at most ``limit`` characters, else its start and ``...`` in ``limit``."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def _lo(text: str) -> str:
    """A DICOM LO value: one line, no backslash (the value separator), at most 64 characters."""
    return _shorten(" ".join(text.replace("\\", "/").split()), LO_MAX)


def _check_text(model: str, prompt: str, where: str) -> None:
    if not isinstance(model, str) or not model.strip() or any(c in model for c in "\r\n"):
        raise ValueError(f"{where}: `model` must be a non-empty one-line name, got {model!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{where}: `prompt` must be the non-empty report text the image was made from")


def _provenance(provenance: Mapping[str, Any] | None, where: str, **given: str) -> dict[str, str]:
    """Provenance as ``{key: str(value)}``; refuses bad or reserved keys and a ``model``/``prompt`` that differs."""
    out: dict[str, str] = {}
    for key, value in dict(provenance or {}).items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(
                f"{where}: provenance key {key!r} must be 1-64 characters of letters, digits, '_', '.', '-'"
            )
        if key in RESERVED_KEYS:
            raise ValueError(f"{where}: provenance key {key!r} is set by the writer; use another name")
        if value is None:
            raise ValueError(f"{where}: provenance {key!r} is None; leave the key out or give a value")
        out[key] = str(value)
    for key, value in given.items():
        if key in out and out[key] != value:
            raise ValueError(
                f"{where}: provenance {key}={out[key]!r} differs from the `{key}` argument {value!r}"
            )
        out[key] = value
    return out


def write_synthetic_png(
    path: str | Path, image01: Any, provenance: Mapping[str, Any], bit_depth: int = 8
) -> Path:
    """Write a generated [0, 1] image as a grey PNG marked SYNTHETIC (:func:`write_png`'s levels and checks).

    Args:
        path: output ``.png`` file.
        image01: (H, W) or (1, H, W) numpy array or tensor in [0, 1].
        provenance: at least ``model`` and ``prompt``; any other keys (``seed``, ``steps``, ``guidance``,
            ``preset``, ...) are stored too, values as ``str(value)``.
        bit_depth: 8 or 16.

    Raises:
        ValueError: ``model``/``prompt`` missing or empty, a bad or reserved provenance key, a bad image.
    """
    where = f"write_synthetic_png({path})"
    marks = _provenance(provenance, where)
    model, prompt = marks.get("model", ""), marks.get("prompt", "")
    _check_text(model, prompt, where)
    text = {
        "Software": _software(),
        "Source": f"SYNTHETIC image generated by medgen model {model}",
        "Description": f"SYNTHETIC image generated by model {model} from the prompt: {prompt}",
        "Disclaimer": "Synthetic image made by a generative model: not an acquisition of a patient, "
        "not for diagnosis.",
        "Creation Time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        f"{MARK_PREFIX}synthetic": "true",
        **{f"{MARK_PREFIX}{k}": v for k, v in marks.items()},
    }
    return write_png(path, _image2d(image01, where), bit_depth=bit_depth, text=text)


def _image_comments(model: str, prompt: str, marks: Mapping[str, str], where: str) -> tuple[str, bool]:
    """ImageComments (LT, 10240 characters): a header line, the provenance as one JSON line, then the prompt
    (last, so any text fits); an over-long prompt is shortened with ``...`` and ``prompt_truncated`` recorded."""
    head = f"SYNTHETIC image generated by {_software()} model {model}; not an acquisition of a patient.\n"

    def build(extra: dict[str, str]) -> str:
        data = {k: v for k, v in marks.items() if k != "prompt"} | extra
        return f"{head}{PROVENANCE_LINE}{json.dumps(data, ensure_ascii=False, sort_keys=True)}\n{PROMPT_LINE}"

    start = build({})
    if len(start) + len(prompt) <= LT_MAX:
        return start + prompt, False
    start = build({"prompt_truncated": "true"})
    room = LT_MAX - len(start)
    if room < 64:
        raise ValueError(f"{where}: the provenance takes {len(start)} characters of ImageComments' {LT_MAX}")
    return start + _shorten(prompt, room), True


def synthetic_dicom_tags(
    model: str, prompt: str, provenance: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The tags :func:`write_synthetic_dicom` passes to :func:`write_dicom` (``tags=``), applied last.

    ``write_dicom`` itself makes new Study, Series and SOP Instance UIDs for every file (no template), and writes
    the Digital X-Ray (DX, For Presentation) SOP class with Modality ``DX``. The SOP class stays DX: that is
    what ``write_dicom`` writes into the file meta, and with pydicom 2.4 a SOPClassUID override would disagree
    with it. So ConversionType ``SYN`` is *not* written: it belongs to the SC Equipment module of the Secondary
    Capture IOD, not to DX. The image is marked synthetic by:

    * SpecificCharacterSet ``ISO_IR 192``: UTF-8, so a prompt in any language is stored as typed.
    * PatientName ``SYNTHETIC^MEDGEN``, PatientID ``SYNTHETIC``: no real patient; worklists show it.
    * StudyDescription ``SYNTHETIC ...``, SeriesDescription ``SYNTHETIC <model>`` (LO, 64 characters).
    * ImageType ``DERIVED\\SECONDARY``: not an original acquisition.
    * DerivationDescription (ST, 1024 characters): the model and the prompt, shortened with ``...``.
    * ImageComments (LT, 10240 characters): a header line, ``medgen:provenance {json}`` (model and every
      provenance key) and ``Prompt: <the full prompt>`` (shortened only past 10240 characters, with
      ``prompt_truncated`` in the JSON).
    * BurnedInAnnotation ``NO``: no text in the pixels (the marks are in the header only).
    * ManufacturerModelName = the model (LO), SoftwareVersions = medgen and its version; Manufacturer stays
      ``medgen`` (write_dicom's).
    * ContentDate/ContentTime: when the file was written.

    Raises:
        ValueError: an empty model or prompt, a bad or reserved provenance key, a provenance too long.
    """
    where = "write_synthetic_dicom"
    _check_text(model, prompt, where)
    marks = _provenance(provenance, where, model=model, prompt=prompt)
    comments, _ = _image_comments(model, prompt, marks, where)
    now = _dt.datetime.now()
    return {
        "SpecificCharacterSet": "ISO_IR 192",
        "PatientName": SYNTHETIC_PATIENT_NAME,
        "PatientID": SYNTHETIC_PATIENT_ID,
        "StudyDescription": "SYNTHETIC chest X-ray (medgen)",
        "SeriesDescription": _lo(f"SYNTHETIC {model}"),
        "ImageType": ["DERIVED", "SECONDARY"],
        "DerivationDescription": _shorten(
            f"SYNTHETIC image generated by model {model} from the prompt: {prompt}", ST_MAX
        ),
        "ImageComments": comments,
        "BurnedInAnnotation": "NO",
        "ManufacturerModelName": _lo(model),
        "SoftwareVersions": _software(),
        "ContentDate": now.strftime("%Y%m%d"),
        "ContentTime": now.strftime("%H%M%S"),
    }


def write_synthetic_dicom(
    path: str | Path,
    image01: Any,
    model: str,
    prompt: str,
    provenance: Mapping[str, Any] | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
) -> Path:
    """Write a generated [0, 1] image as a new DICOM (12-bit DX via :func:`write_dicom`) marked SYNTHETIC.

    Args:
        path: output ``.dcm`` file.
        image01: (H, W) or (1, H, W) numpy array or tensor in [0, 1].
        model: the generating model's name.
        prompt: the report text it was generated from.
        provenance: other keys (``seed``, ``steps``, ``guidance``, ``preset``, ...), values as ``str(value)``.
        pixel_spacing_mm: PixelSpacing to write; None (default) writes none: a generated image has no
            physical pixel size unless the caller asserts one.

    The tags and why each is there: :func:`synthetic_dicom_tags`.
    """
    tags = synthetic_dicom_tags(model, prompt, provenance)
    where = f"write_synthetic_dicom({path})"
    return write_dicom(path, _image2d(image01, where), pixel_spacing_mm=pixel_spacing_mm, tags=tags)


def _format(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"read_synthetic_marks: {str(path)!r} does not exist")
    with path.open("rb") as f:
        head = f.read(132)
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head[128:132] == b"DICM":
        return "dicom"
    raise ValueError(f"read_synthetic_marks: {str(path)!r} is neither a PNG nor a DICOM (Part 10) file")


def read_synthetic_marks(path: str | Path) -> dict[str, str]:
    """The marks of a file written by :func:`write_synthetic_png` or :func:`write_synthetic_dicom`.

    Returns:
        ``{"synthetic": "true", "model", "prompt", "software", "format": "png" | "dicom", **provenance}``
        (DICOM: ``prompt_truncated`` too when the prompt was shortened); ``{}`` for a PNG or DICOM file
        without medgen's marks.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is neither PNG nor DICOM, or its medgen provenance line is not valid JSON.
    """
    path = Path(path)
    kind = _format(path)
    if kind == "png":
        from PIL import Image

        with Image.open(path) as im:
            text = dict(getattr(im, "text", {}) or {})
        marks = {k[len(MARK_PREFIX) :]: str(v) for k, v in text.items() if k.startswith(MARK_PREFIX)}
        if not marks:
            return {}
        return {**marks, "software": str(text.get("Software", "")), "format": "png"}

    import pydicom

    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    comments = str(ds.get("ImageComments", "") or "")
    line = next((ln for ln in comments.split("\n") if ln.startswith(PROVENANCE_LINE)), None)
    if line is None:
        return {}
    try:
        data = json.loads(line[len(PROVENANCE_LINE) :])
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"read_synthetic_marks: {str(path)!r} has a damaged medgen:provenance line: {exc}"
        ) from exc
    marker = f"\n{PROMPT_LINE}"
    prompt = comments.split(marker, 1)[1] if marker in comments else str(ds.get("DerivationDescription", ""))
    return {
        "synthetic": "true",
        **{str(k): str(v) for k, v in data.items()},
        "prompt": prompt,
        "software": str(ds.get("SoftwareVersions", "")),
        "format": "dicom",
    }
