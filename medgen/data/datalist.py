"""The one data-source contract of every bundle: ``load_datalist`` gives train / val / test items.

Bundles declare four config keys and call only this module:

* ``dataset``: a registered reader name (``medgen list`` shows them: ``image_folder``, ``labelled_folder``,
  ``nih_cxr14``, ``chexpert``, ``indiana_cxr``, ``mrnet``, ``dicom_folder``, ``nifti_folder``, plugins'),
  ``phantom``, or ``auto`` (recognise the folder's layout). ``null``: ``phantom`` without a ``dataset_dir``,
  ``auto`` with one.
* ``dataset_dir``: the user's folder.
* ``dataset_kwargs``: options of that reader (or of the phantom: ``n``, ``size``, ``seed``, ``noise_scale``).
* ``split``: ``{fractions: [0.7, 0.1, 0.2], seed: 0, official: true}``. The dataset's official split is used
  where it has one (NIH ``test_list.txt``, CheXpert ``valid.csv``, MRNet ``valid/``; validation carved out of
  the training part by patient), else a patient-level split with the stated fractions and seed.

The split, its image and patient counts and the reader's skip report are logged and written to
``<report_dir>/data_<workflow>.json`` beside the outputs, with every item's file and patient id, so a run says
what it trained on. A workflow that needs something the data cannot give (finding labels, masks, boxes, a
report) refuses with an error that says why; nothing falls back to the phantom.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medgen.data.errors import DataError
from medgen.data.layouts import detect_layout, official_split
from medgen.data.split import assert_no_patient_leak, patient_split
from medgen.registry import REGISTRY

logger = logging.getLogger("medgen.data")

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLIT = {"fractions": (0.7, 0.1, 0.2), "seed": 0, "official": True}
PHANTOM_DEFAULTS = {"n": 40, "size": 256, "seed": 0, "noise_scale": 1.0, "with_masks": False}

# What a workflow may require of every item, and where it can come from (used in refusals).
FIELD_SOURCES = {
    "image": "every reader",
    "patient_id": "every reader",
    "label": "finding labels: labelled_folder (a CSV with one 1/0/blank column per finding), nih_cxr14, "
    "chexpert, indiana_cxr or the phantom",
    "masks": "pixel masks of each finding: only the phantom renders them",
    "boxes": "finding bounding boxes: nih_cxr14 with dataset_kwargs {with_boxes: true}",
    "report": "report text: indiana_cxr, labelled_folder with dataset_kwargs {report_column: <column>}, "
    "or the phantom",
}


class DataSplit:
    """Train / val / test item lists plus ``info`` (what was read and how it was split).

    Indexable like a tuple (``splits[0]`` is the training list) so configs write ``@splits[0]``; attribute
    access (``splits.test``) reads better in code. Phantom splits render on first access, so an evaluation
    renders only its test studies.
    """

    def __init__(
        self, parts: Mapping[str, list[dict] | Callable[[], list[dict]]], info: dict[str, Any]
    ) -> None:
        self._parts = dict(parts)
        self.info = info

    def _get(self, name: str) -> list[dict]:
        part = self._parts[name]
        if callable(part):
            part = self._parts[name] = part()
        return part

    @property
    def train(self) -> list[dict]:
        return self._get("train")

    @property
    def val(self) -> list[dict]:
        return self._get("val")

    @property
    def test(self) -> list[dict]:
        return self._get("test")

    def __getitem__(self, i: int | str) -> list[dict]:
        return self._get(SPLIT_NAMES[i] if isinstance(i, int) else i)

    def __iter__(self):
        return (self._get(n) for n in SPLIT_NAMES)

    def __len__(self) -> int:
        return len(SPLIT_NAMES)

    def __repr__(self) -> str:
        counts = ", ".join(f"{n}={self.info['splits'][n]['images']}" for n in SPLIT_NAMES)
        return f"DataSplit({self.info['dataset']}: {counts})"


# -- phantom ---------------------------------------------------------------------------------------------------
def _phantom_item(index: int, size: int, seed: int, noise_scale: float, with_masks: bool) -> dict:
    from medgen.data.labels import PHANTOM_LABELS
    from medgen.data.phantom import render_phantom

    s = render_phantom(index, size, seed, noise_scale=noise_scale)
    item = {
        "image": s.image[None].astype(np.float32),
        "label": s.labels.astype(np.float32),
        "label_mask": np.ones(len(PHANTOM_LABELS), np.float32),
        "labels": list(PHANTOM_LABELS),
        "patient_id": s.patient_id,
        "index": index,
        "report": s.report.get("text", ""),
        "pixel_spacing": np.full(2, s.pixel_spacing_mm, np.float32),
    }
    if with_masks:
        item["masks"] = s.masks
    return item


def phantom_split(
    n: int = 40,
    size: int = 256,
    seed: int = 0,
    noise_scale: float = 1.0,
    with_masks: bool = False,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    split_seed: int = 0,
) -> DataSplit:
    """Phantom studies ``0..n-1`` of set ``seed``, split by patient; each split rendered on first access.

    Item: ``image`` (1, size, size) float32 in [0, 1], ``label`` / ``label_mask`` over ``PHANTOM_LABELS``,
    ``patient_id``, ``index``, ``report``, ``pixel_spacing`` and, with ``with_masks``, ``masks``.
    """
    from medgen.data.phantom import patient_of

    stubs = [{"index": i, "patient_id": patient_of(i, seed)[0]} for i in range(int(n))]
    parts = patient_split(stubs, fractions, seed=split_seed)

    def render(part: list[dict]) -> Callable[[], list[dict]]:
        return lambda: [_phantom_item(s["index"], size, seed, noise_scale, with_masks) for s in part]

    info = {
        "dataset": "phantom",
        "dataset_dir": None,
        "reader_kwargs": {"n": n, "size": size, "seed": seed, "noise_scale": noise_scale},
        "split_method": f"patient-level {list(fractions)}, seed {split_seed}",
        "splits": {name: _counts(part) for name, part in zip(SPLIT_NAMES, parts, strict=True)},
        "skipped": 0,
        "skip_report": None,
        "items": {
            name: [f"phantom:{s['index']}" for s in part]
            for name, part in zip(SPLIT_NAMES, parts, strict=True)
        },
        "patients": {
            name: [s["patient_id"] for s in part] for name, part in zip(SPLIT_NAMES, parts, strict=True)
        },
    }
    return DataSplit({name: render(part) for name, part in zip(SPLIT_NAMES, parts, strict=True)}, info)


def _counts(items: Sequence[dict]) -> dict[str, int]:
    return {"images": len(items), "patients": len({str(it["patient_id"]) for it in items})}


def _item_ref(item: dict) -> str:
    image = item.get("image")
    if isinstance(image, str | Path):
        return str(image)
    if isinstance(image, list | tuple) and image and isinstance(image[0], str | Path):
        return str(image[0])
    return f"phantom:{item['index']}" if "index" in item else "<array>"


def check_requires(items: Sequence[dict], requires: Sequence[str], dataset: str, workflow: str) -> None:
    """Refuse items that lack a field the workflow needs, saying which readers give it."""
    for field in requires:
        lacking = [i for i, it in enumerate(items) if it.get(field) is None]
        if lacking:
            source = FIELD_SOURCES.get(field, "a reader that provides it")
            raise DataError(
                f"{workflow or 'this workflow'} needs {field!r} for every image, but the {dataset} data give none "
                f"for {len(lacking)} of {len(items)} items. {field!r} comes from {source}. Point dataset_dir at "
                f"such data (docs/data.md) or use a workflow that does not need it; nothing is replaced by the "
                f"phantom."
            )


def load_datalist(
    dataset: str | None = None,
    dataset_dir: str | Path | None = None,
    dataset_kwargs: Mapping[str, Any] | None = None,
    split: Mapping[str, Any] | None = None,
    requires: Sequence[str] = ("image",),
    workflow: str = "",
    report_dir: str | Path | None = None,
    on_error: str = "raise",
) -> DataSplit:
    """Train / val / test items for the phantom or a user's folder, through the registered readers.

    Args:
        dataset: reader name, ``"phantom"``, ``"auto"``, or ``None`` (phantom without ``dataset_dir``, auto with).
        dataset_dir: the user's folder; ``None`` only for the phantom.
        dataset_kwargs: reader options (phantom: ``n``, ``size``, ``seed``, ``noise_scale``, ``with_masks``).
        split: ``fractions`` (train, val, test shares of images, by whole patients), ``seed``, ``official``
            (use the dataset's own test split where it has one; default true).
        requires: item fields the workflow needs (``label``, ``masks``, ``boxes``, ``report``); missing ones
            are refused with the reason.
        workflow: name used in messages and in the report file name.
        report_dir: where ``data_<workflow>.json`` (and the skip report) are written; None writes nothing.
        on_error: ``"raise"`` (one error listing every bad file) or ``"skip"`` (dropped, logged, listed in
            ``<report_dir>/<reader>_skipped.tsv``).

    Raises:
        DataError: an unusable folder, bad files (``on_error="raise"``), a missing required field, an empty
            split, or ``dataset: phantom`` given together with a ``dataset_dir``.
    """
    opts = {**DEFAULT_SPLIT, **dict(split or {})}
    unknown = sorted(set(opts) - set(DEFAULT_SPLIT))
    if unknown:
        raise ValueError(f"split: unknown key(s) {unknown}; use {sorted(DEFAULT_SPLIT)}.")
    fractions, seed = tuple(float(f) for f in opts["fractions"]), int(opts["seed"])
    kwargs = dict(dataset_kwargs or {})
    name = dataset or ("auto" if dataset_dir else "phantom")
    if name == "phantom":
        if dataset_dir:
            raise DataError(
                f"dataset: phantom was set together with dataset_dir={str(dataset_dir)!r}; the phantom reads no "
                "folder. Set dataset: auto (or a reader name) to use the folder, or dataset_dir: null for the "
                "phantom."
            )
        bad = sorted(set(kwargs) - set(PHANTOM_DEFAULTS))
        if bad:
            raise ValueError(f"dataset_kwargs {bad} are not phantom options; use {sorted(PHANTOM_DEFAULTS)}.")
        result = phantom_split(**{**PHANTOM_DEFAULTS, **kwargs}, fractions=fractions, split_seed=seed)
        result.info["workflow"] = workflow
        gives = {"image", "patient_id", "label", "label_mask", "report", "index", "pixel_spacing"}
        missing = [r for r in requires if r not in gives | ({"masks"} if kwargs.get("with_masks") else set())]
        if missing == ["masks"]:
            raise DataError(
                f"{workflow}: requires masks; pass dataset_kwargs {{with_masks: true}} to the phantom."
            )
        if missing:
            check_requires([{}], missing, "phantom", workflow)
        _publish(result, report_dir)
        return result
    if not dataset_dir:
        raise DataError(
            f"dataset: {name} needs dataset_dir (the folder to read); set dataset_dir=/path/to/data."
        )
    root = Path(dataset_dir).expanduser()
    if not root.is_dir():
        raise DataError(
            f"dataset_dir {str(root)!r} does not exist or is not a folder: pass an existing folder "
            "(--set dataset_dir=/path/to/data), or dataset_dir=null for the embedded phantom data."
        )
    if name == "auto":
        name = detect_layout(root)
        logger.info("dataset: auto recognised the %s layout in %s", name, root)
    reader = REGISTRY.get("dataset", name)
    if not callable(reader) or isinstance(reader, type):
        raise DataError(f"dataset: {name} is not an item reader (it is {reader!r}); use a reader name.")
    skip_report = Path(report_dir) / f"{name}_skipped.tsv" if report_dir else None
    if on_error != "raise" or "on_error" in kwargs:
        kwargs.setdefault("on_error", on_error)
    if skip_report is not None:
        kwargs.setdefault("skip_report", skip_report)
    official = official_split(name, root, reader, kwargs, fractions, seed) if opts["official"] else None
    if official is not None:
        parts, method = official
    else:
        items = reader(root, **kwargs)
        parts = patient_split(items, fractions, seed=seed)
        method = f"patient-level {list(fractions)}, seed {seed}"
    assert_no_patient_leak(*parts, names=SPLIT_NAMES)
    all_items = [it for part in parts for it in part]
    if not all_items:
        raise DataError(f"{name} ({root}): no usable images.")
    check_requires(all_items, requires, name, workflow)
    skipped = 0
    if skip_report is not None and skip_report.is_file():
        skipped = max(sum(1 for _ in open(skip_report, encoding="utf-8")) - 1, 0)
    info = {
        "dataset": name,
        "dataset_dir": str(root),
        "workflow": workflow,
        "reader_kwargs": {k: str(v) for k, v in kwargs.items()},
        "split_method": method,
        "splits": {n: _counts(p) for n, p in zip(SPLIT_NAMES, parts, strict=True)},
        "skipped": skipped,
        "skip_report": str(skip_report) if skipped else None,
        "items": {n: [_item_ref(it) for it in p] for n, p in zip(SPLIT_NAMES, parts, strict=True)},
        "patients": {n: [str(it["patient_id"]) for it in p] for n, p in zip(SPLIT_NAMES, parts, strict=True)},
    }
    result = DataSplit(dict(zip(SPLIT_NAMES, parts, strict=True)), info)
    _publish(result, report_dir)
    return result


def require_split(items: Sequence[dict], name: str, workflow: str, minimum: int = 1) -> list[dict]:
    """``items`` when it holds at least ``minimum`` images; else a DataError saying how to get them."""
    if len(items) < minimum:
        raise DataError(
            f"{workflow}: the {name} split has {len(items)} image(s), at least {minimum} needed. Give more images "
            f"(more patients) or change split.fractions."
        )
    return list(items)


def _publish(result: DataSplit, report_dir: str | Path | None) -> None:
    info = result.info
    rows = ", ".join(
        f"{n} {info['splits'][n]['images']} images / {info['splits'][n]['patients']} patients"
        for n in SPLIT_NAMES
    )
    where = f" from {info['dataset_dir']}" if info["dataset_dir"] else " (embedded phantom)"
    skipped = f"; {info['skipped']} skipped, listed in {info['skip_report']}" if info["skipped"] else ""
    logger.info("data for %s: %s%s, %s: %s%s", info.get("workflow") or "workflow", info["dataset"], where,
                info["split_method"], rows, skipped)  # fmt: skip
    if report_dir is None:
        return
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"data_{info.get('workflow') or 'split'}.json"
    path.write_text(json.dumps(info, indent=1, default=str))
    info["report"] = str(path)


# -- inference inputs ------------------------------------------------------------------------------------------
def write_phantom_inputs(
    folder: str | Path, n: int = 2, size: int = 256, seed: int = 1, start: int = 0, downscale: int = 1
) -> list[dict]:
    """Write ``n`` phantom radiographs as 16-bit PNG (``size / downscale`` pixels) and return their items.

    The one way every bundle writes phantom inference inputs (``downscale`` makes an SR model's LR input with
    the same degradation as training).
    """
    from medgen.data.phantom import render_phantom
    from medgen.transforms.io.writers import write_png16

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(start, start + int(n)):
        image = render_phantom(i, size, seed).image
        if downscale > 1:
            from medgen.transforms.degradation import downsample

            image = np.clip(np.asarray(downsample(image, downscale)), 0.0, 1.0)
        path = write_png16(folder / f"phantom_{i:06d}.png", image)
        items.append({"image": str(path), "patient_id": f"phantom_{i:06d}"})
    return items


def inference_items(
    dataset_dir: str | Path | None,
    output_dir: str | Path,
    phantom_kwargs: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    dataset_kwargs: Mapping[str, Any] | None = None,
    on_error: str = "raise",
) -> list[dict]:
    """Every image of ``dataset_dir`` (any registered reader; default ``image_folder``), or phantom inputs.

    With ``dataset_dir`` null, :func:`write_phantom_inputs` writes ``phantom_kwargs`` images to
    ``<output_dir>/inference_inputs`` and the log says so. The list is written to
    ``<output_dir>/data_inference.json``.
    """
    if not dataset_dir:
        if dataset not in (None, "phantom"):
            raise DataError(f"dataset: {dataset} needs dataset_dir for inference.")
        items = write_phantom_inputs(Path(output_dir) / "inference_inputs", **dict(phantom_kwargs or {}))
        logger.info("inference: dataset_dir is null: %d phantom inputs written to %s", len(items),
                    Path(output_dir) / "inference_inputs")  # fmt: skip
        return items
    result = load_datalist(
        dataset or "image_folder",
        dataset_dir,
        dataset_kwargs,
        split={"fractions": (1.0, 0.0, 0.0), "official": False},
        workflow="inference",
        report_dir=output_dir,
        on_error=on_error,
    )
    keep = ("image", "patient_id", "name")  # name: the path below dataset_dir, kept by SaveRadiographd
    return [{k: it[k] for k in keep if k in it} for it in result.train]
