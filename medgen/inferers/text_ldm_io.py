"""Report texts in, marked synthetic image files out: what ``medgen generate`` and the web app call.

* :func:`read_prompts`: a UTF-8 text file, one report per non-empty line (blank lines separate and are skipped).
* :func:`generate_to_files`: a sampler's images for the prompts, written as ``<prompt>_<sample>.png`` and/or
  ``.dcm`` through the synthetic writers (:mod:`medgen.transforms.io.synthetic`: every file says it is SYNTHETIC,
  with its model, prompt and settings), plus ``index.json`` and ``manifest.csv``. An enhancement preset (names
  in :data:`medgen.transforms.display.PRESETS`) is display post-processing: applied to the written pixels only
  when asked and recorded in the marks; the returned images are always the sampler's own.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.utils import optional_import

from medgen.inferers.text_ldm import check_prompts

logger = logging.getLogger(__name__)

__all__ = ["FORMATS", "generate_to_files", "read_prompts"]

FORMATS = {"png": ".png", "dicom": ".dcm"}
MAX_PROMPTS_FILE_BYTES = 16 * 1024 * 1024
MANIFEST_COLUMNS = (
    "file", "format", "prompt_index", "sample_index", "prompt", "seed", "steps", "guidance", "eta", "preset",
)  # fmt: skip


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a UTF-8 text file: one report per line, stripped; blank lines are separators and skipped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a binary or non-UTF-8 file, a control character in a line (the message names the line), a
            file over 16 MiB, or a file with no prompt at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompts file {str(path)!r} does not exist")
    size = path.stat().st_size
    if size > MAX_PROMPTS_FILE_BYTES:
        raise ValueError(
            f"prompts file {str(path)!r} has {size} bytes (most {MAX_PROMPTS_FILE_BYTES}): give a text file of "
            "report texts, one per line"
        )
    data = path.read_bytes()
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise ValueError(
            f"prompts file {str(path)!r} is binary (a NUL byte on line {line}): give a UTF-8 text file, one "
            "report per line"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"prompts file {str(path)!r} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): save "
            "it as UTF-8, one report per line"
        ) from None
    prompts = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        bad = next((c for c in line if unicodedata.category(c) == "Cc" and c != "\t"), None)
        if bad is not None:
            raise ValueError(
                f"prompts file {str(path)!r} line {number} has the control character {bad!r}: it is not a plain "
                "text file of report texts"
            )
        if line:
            prompts.append(line)
    if not prompts:
        raise ValueError(f"prompts file {str(path)!r} has no prompts: write one report text per line")
    return prompts


def _check_choices(formats: Sequence[str], preset: str | None) -> tuple[list[str], str | None]:
    from medgen.transforms.display import PRESETS

    if isinstance(formats, str):
        formats = [formats]
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats {unknown or formats!r}: choose one or more of {sorted(FORMATS)}")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset {preset!r} is not an enhancement preset; valid presets: {sorted(PRESETS)}")
    return formats, preset


def _check_token_limit(sampler: Any, prompts: Sequence[str], shorten: bool) -> None:
    """A prompt over the text encoder's token limit is refused unless ``shorten`` (then its leading whole
    sentences are kept, as in training; the encoder logs a warning)."""
    encoder = getattr(sampler, "text_encoder", None)
    if shorten or encoder is None or not hasattr(encoder, "count_tokens"):
        return
    limit = int(encoder.max_tokens)
    for i, prompt in enumerate(prompts):
        n = int(encoder.count_tokens(prompt))
        if n > limit:
            raise ValueError(
                f"prompt {i} has {n} tokens, over the text encoder's limit of {limit} (max_tokens): shorten it, "
                "or pass shorten_long_prompts=True (medgen generate --shorten-long-prompts) to keep its leading "
                f"whole sentences, as training does. Prompt: {prompt[:80]!r}..."
            )


def generate_to_files(
    sampler: Any,
    prompts: Sequence[str],
    out_dir: str | Path,
    n_per_prompt: int = 1,
    steps: int = 50,
    guidance: float = 7.5,
    seed: int = 0,
    eta: float = 0.0,
    batch_size: int = 8,
    formats: Sequence[str] = ("png",),
    preset: str | None = None,
    progress: bool = True,
    shorten_long_prompts: bool = False,
) -> list[dict[str, Any]]:
    """Generate ``n_per_prompt`` images per prompt and write each as marked synthetic files.

    Image ``i`` of the ``len(prompts) * n_per_prompt`` (prompt by prompt) is seeded ``seed + i``, exactly as
    ``sampler.generate`` seeds it in one call; it is written as ``<out_dir>/<p>_<s>.png`` / ``.dcm`` (prompt and
    sample index, zero-padded to the width of the largest) after each batch of prompts, and ``index.json`` (run
    options, model, checkpoints, one entry per image) and ``manifest.csv`` (one row per file: file, format,
    prompt_index, sample_index, prompt, seed, steps, guidance, eta, preset) at the end. Files of the same name
    in ``out_dir`` are overwritten.

    Args:
        sampler: a :class:`~medgen.inferers.text_ldm.TextLatentDiffusionSampler` (its ``model_name`` goes in
            the marks), e.g. from :func:`~medgen.inferers.text_ldm.load_text_ldm`.
        prompts: report texts.
        out_dir: output folder (created).
        n_per_prompt, steps, guidance, seed, eta, batch_size: as in ``sampler.generate``.
        formats: any of ``"png"`` (8-bit grey PNG) and ``"dicom"`` (12-bit DICOM).
        preset: an enhancement preset applied to the written pixels only (None: none).
        progress: a tqdm bar over the images (and the sampler's over DDIM steps).
        shorten_long_prompts: a prompt over the encoder's ``max_tokens`` is refused (ValueError naming it)
            unless True: then it keeps its leading whole sentences, as training does.

    Returns:
        One dict per image, in order: ``prompt_index``, ``sample_index``, ``prompt``, ``seed``, ``steps``,
        ``guidance``, ``eta``, ``preset`` (``"none"`` when None), ``files`` (``{format: Path}``) and ``image``,
        the sampler's unenhanced ``(1, H, W)`` float tensor in [0, 1] (for metrics).

    Raises:
        ValueError: an unknown format or preset (the valid ones listed), an empty prompt, an option out of range.
    """
    from medgen.transforms.display import apply_preset
    from medgen.transforms.io.synthetic import write_synthetic_dicom, write_synthetic_png

    formats, preset = _check_choices(formats, preset)
    prompts = check_prompts(prompts, n_per_prompt, batch_size)
    _check_token_limit(sampler, prompts, shorten_long_prompts)
    out = Path(out_dir)
    model = str(getattr(sampler, "model_name", type(sampler).__name__))
    p_width, s_width = len(str(len(prompts) - 1)), len(str(n_per_prompt - 1))
    per_chunk = max(
        1, batch_size // n_per_prompt
    )  # whole prompts per sampler call, about one batch of images
    tqdm, has_tqdm = optional_import("tqdm.auto", name="tqdm")
    bar = tqdm(total=len(prompts) * n_per_prompt, desc="images") if progress and has_tqdm else None
    records: list[dict[str, Any]] = []
    try:
        for start in range(0, len(prompts), per_chunk):
            chunk = prompts[start : start + per_chunk]
            images = sampler.generate(
                chunk, n_per_prompt=n_per_prompt, steps=steps, guidance=guidance,
                seed=int(seed) + start * n_per_prompt, eta=eta, batch_size=batch_size, progress=progress,
            )  # fmt: skip
            out.mkdir(parents=True, exist_ok=True)
            for j, image in enumerate(images):
                p, s = start + j // n_per_prompt, j % n_per_prompt
                record = {
                    "prompt_index": p, "sample_index": s, "prompt": prompts[p],
                    "seed": int(seed) + p * n_per_prompt + s, "steps": steps, "guidance": guidance, "eta": eta,
                    "preset": preset or "none",
                }  # fmt: skip
                pixels = image.numpy()
                if preset is not None:
                    pixels = apply_preset(pixels, preset)
                marks = {"model": model, **record, "sampler": "DDIM"}
                stem = f"{p:0{p_width}d}_{s:0{s_width}d}"
                files = {}
                for kind in formats:
                    path = out / f"{stem}{FORMATS[kind]}"
                    if kind == "png":
                        files[kind] = write_synthetic_png(path, pixels, marks)
                    else:
                        rest = {k: v for k, v in marks.items() if k not in ("model", "prompt")}
                        files[kind] = write_synthetic_dicom(path, pixels, model, prompts[p], rest)
                records.append({**record, "files": files, "image": image})
            if bar is not None:
                bar.update(len(images))
    finally:
        if bar is not None:
            bar.close()
    _write_index(out, records, sampler, model, formats)
    logger.info("text LDM: wrote %d images to %s", len(records), out)
    return records


def _write_index(
    out: Path, records: list[dict[str, Any]], sampler: Any, model: str, formats: list[str]
) -> None:
    """``index.json`` (the run and one entry per image) and ``manifest.csv`` (one row per file), paths relative."""
    from medgen import __version__

    images = [
        {**{k: v for k, v in r.items() if k not in ("files", "image")},
         "files": {kind: path.name for kind, path in r["files"].items()}}
        for r in records
    ]  # fmt: skip
    index = {
        "synthetic": True,
        "model": model,
        "software": f"medgen {__version__}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "checkpoints": getattr(sampler, "checkpoints", None),
        "image_size": getattr(sampler, "image_size", None),
        "formats": formats,
        "images": images,
    }
    (out / "index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for r in records:
            for kind, path in r["files"].items():
                writer.writerow(
                    {**{k: r[k] for k in MANIFEST_COLUMNS[2:]}, "file": path.name, "format": kind}
                )
