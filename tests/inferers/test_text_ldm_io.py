"""Prompts files in, marked synthetic image files out (``medgen.inferers.text_ldm_io``), with tiny random models."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from medgen.inferers.text_ldm import load_text_ldm
from medgen.inferers.text_ldm_io import generate_to_files, read_prompts
from medgen.transforms.display import apply_preset
from medgen.transforms.io import read_synthetic_marks
from tests.inferers.test_text_ldm_loader import REPORTS, write_tiny_models

OPTIONS = {"steps": 2, "guidance": 3.0, "seed": 4}


@pytest.fixture(scope="module")
def sampler(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    write_tiny_models(folder)
    return load_text_ldm(folder)


# ------------------------------------------------------------------------------------------------ read_prompts
def test_read_prompts_one_per_line_blank_lines_skipped(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes("\ufeff  First report.  \r\n\r\n\nSecond, épanchement.\n\t\nThird\n".encode())
    assert read_prompts(path) == ["First report.", "Second, épanchement.", "Third"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "has no prompts"),
        (b"\n  \n\t\n", "has no prompts"),
        (b"ok\n\x89PNG\r\n\x1a\n\x00\x00", "is binary .*line 4"),
        (b"ok\nbad \xff byte\n", "is not UTF-8 text .*0xff on line 2"),
        (b"ok\nbell \x07 here\n", "line 2 has the control character"),
    ],
)
def test_read_prompts_refuses_non_text(tmp_path, content, message):
    path = tmp_path / "p.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"prompts file '.*p.txt' {message}"):
        read_prompts(path)


def test_read_prompts_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_prompts(tmp_path / "nope.txt")


# ------------------------------------------------------------------------------------------- generate_to_files
def test_files_marks_index_and_manifest(tmp_path, sampler):
    prompts = REPORTS[:2]
    out = tmp_path / "out"
    records = generate_to_files(
        sampler,
        prompts,
        out,
        n_per_prompt=2,
        batch_size=1,
        formats=("png", "dicom"),
        progress=False,
        **OPTIONS,
    )
    assert [(r["prompt_index"], r["sample_index"], r["seed"]) for r in records] == [
        (0, 0, 4), (0, 1, 5), (1, 0, 6), (1, 1, 7),
    ]  # fmt: skip
    # written batch by batch, yet every image is the one a single generate call makes
    direct = sampler.generate(prompts, n_per_prompt=2, **OPTIONS)
    torch.testing.assert_close(torch.stack([r["image"] for r in records]), direct)
    for r in records:
        stem = f"{r['prompt_index']}_{r['sample_index']}"
        assert r["files"] == {"png": out / f"{stem}.png", "dicom": out / f"{stem}.dcm"}
        for kind, path in r["files"].items():
            marks = read_synthetic_marks(path)
            assert marks["synthetic"] == "true" and marks["format"] == kind
            assert marks["model"] == sampler.model_name and marks["prompt"] == prompts[r["prompt_index"]]
            assert marks["seed"] == str(r["seed"]) and marks["steps"] == "2" and marks["guidance"] == "3.0"
            assert marks["preset"] == "none" and marks["eta"] == "0.0" and marks["sampler"] == "DDIM"
        with Image.open(r["files"]["png"]) as im:
            assert np.abs(np.asarray(im) / 255.0 - r["image"][0].numpy()).max() <= 0.5 / 255 + 1e-6

    index = json.loads((out / "index.json").read_text())
    assert index["synthetic"] is True and index["model"] == sampler.model_name
    assert index["checkpoints"] == sampler.checkpoints and index["image_size"] == 16
    assert index["images"][3] == {
        "prompt_index": 1, "sample_index": 1, "prompt": prompts[1], "seed": 7, "steps": 2, "guidance": 3.0,
        "eta": 0.0, "preset": "none", "files": {"png": "1_1.png", "dicom": "1_1.dcm"},
    }  # fmt: skip
    with (out / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and rows[0]["file"] == "0_0.png" and rows[1]["file"] == "0_0.dcm"
    assert rows[7] == {
        "file": "1_1.dcm", "format": "dicom", "prompt_index": "1", "sample_index": "1", "prompt": prompts[1],
        "seed": "7", "steps": "2", "guidance": "3.0", "eta": "0.0", "preset": "none",
    }  # fmt: skip


def test_preset_changes_the_files_only(tmp_path, sampler):
    plain = generate_to_files(sampler, REPORTS[:1], tmp_path / "a", progress=False, **OPTIONS)
    enhanced = generate_to_files(
        sampler, REPORTS[:1], tmp_path / "b", preset="high_contrast", formats="png", progress=False, **OPTIONS
    )
    torch.testing.assert_close(enhanced[0]["image"], plain[0]["image"])  # returned: unenhanced
    assert enhanced[0]["preset"] == "high_contrast"
    path = enhanced[0]["files"]["png"]
    assert read_synthetic_marks(path)["preset"] == "high_contrast"
    with Image.open(path) as im:
        written = np.asarray(im) / 255.0
    expected = apply_preset(plain[0]["image"].numpy(), "high_contrast")[0]
    assert np.abs(written - expected).max() <= 0.5 / 255 + 1e-6
    assert np.abs(written - plain[0]["image"][0].numpy()).max() > 0.05


def test_names_are_zero_padded_to_the_largest_index(tmp_path, sampler):
    prompts = [REPORTS[i % 3] for i in range(11)]
    records = generate_to_files(
        sampler, prompts, tmp_path, steps=1, guidance=1.0, batch_size=10, progress=False
    )
    assert [r["files"]["png"].name for r in records][:2] == ["00_0.png", "01_0.png"]
    assert records[-1]["files"]["png"].name == "10_0.png"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"formats": ("png", "jpeg")},
            ValueError,
            r"formats \['jpeg'\]: choose one or more of \['dicom', 'png'\]",
        ),
        ({"formats": ()}, ValueError, "choose one or more of"),
        ({"preset": "sharp"}, ValueError, "valid presets: .*'balanced'.*'sharp_detail'"),
        ({"prompts": ["ok", " "]}, ValueError, "prompt 1 is empty"),
        ({"prompts": "one string"}, TypeError, "list of report texts"),
        ({"n_per_prompt": 0}, ValueError, "`n_per_prompt` must be an integer >= 1"),
        ({"steps": 0}, ValueError, "`steps` must be an integer in"),
        ({"guidance": 0.5}, ValueError, "`guidance` must be a finite number >= 1"),
    ],
)
def test_bad_options_write_nothing(tmp_path, sampler, kwargs, error, message):
    args = {"prompts": REPORTS[:1], **OPTIONS, **kwargs}
    with pytest.raises(error, match=message):
        generate_to_files(sampler, out_dir=tmp_path / "o", progress=False, **args)
    assert not (tmp_path / "o").exists()
