"""``medgen generate``: report texts -> marked synthetic files with tiny random models; one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from medgen.cli import main
from medgen.transforms.io import read_synthetic_marks
from tests.inferers.test_text_ldm_loader import REPORTS, write_tiny_models

FAST = ["--steps", "2", "--guidance", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def bundle_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    write_tiny_models(root / "models")
    return root


def test_reports_to_png_and_dicom_with_marks_and_manifest(tmp_path, bundle_root, capsys):
    out = tmp_path / "gen"
    argv = ["generate", REPORTS[0], REPORTS[1], "--n", "2", "--seed", "3", "--out", str(out),
            "--models-dir", str(bundle_root / "models"), "--format", "png", "dicom", *FAST]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"to {out}" in captured.out and "index.json" in captured.out and "SYNTHETIC" in captured.out
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{p}_{s}.{e}" for p in (0, 1) for s in (0, 1) for e in ("png", "dcm")]
                           + ["index.json", "manifest.csv"])  # fmt: skip
    marks = read_synthetic_marks(out / "1_1.dcm")
    assert marks["synthetic"] == "true" and marks["prompt"] == REPORTS[1] and marks["seed"] == "6"
    assert marks["steps"] == "2" and marks["guidance"] == "3.0" and marks["preset"] == "none"
    assert marks["model"] == "cxr_text_ldm (autoencoder.pt, unet.pt)"
    assert read_synthetic_marks(out / "0_1.png")["seed"] == "4"
    with (out / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["prompt"] for r in rows} == set(REPORTS[:2])
    assert json.loads((out / "index.json").read_text())["images"][0]["files"] == {
        "png": "0_0.png",
        "dicom": "0_0.dcm",
    }


def test_prompts_file_preset_and_bundle_root(tmp_path, bundle_root):
    prompts = tmp_path / "reports.txt"
    prompts.write_text(f"{REPORTS[0]}\n\n{REPORTS[2]}\n", encoding="utf-8")
    out = tmp_path / "gen"
    argv = ["generate", "--prompts-file", str(prompts), "--out", str(out), "--bundle-root", str(bundle_root),
            "--preset", "balanced", *FAST]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["0_0.png", "1_0.png"]
    marks = read_synthetic_marks(out / "1_0.png")
    assert marks["prompt"] == REPORTS[2] and marks["preset"] == "balanced"


def test_default_bundle_root_is_the_installed_bundle(tmp_path, bundle_root, monkeypatch, capsys):
    import medgen.registry.bundles as bundles

    monkeypatch.setattr(bundles, "get_bundle", lambda name: SimpleNamespace(name=name, path=bundle_root))
    assert main(["generate", REPORTS[0], "--out", str(tmp_path / "g"), *FAST]) == 0
    assert str(bundle_root / "models") in capsys.readouterr().err

    def not_installed(name):
        raise bundles.BundleError(f"unknown bundle {name!r}")

    monkeypatch.setattr(bundles, "get_bundle", not_installed)
    assert main(["generate", REPORTS[0], "--out", str(tmp_path / "h"), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'cxr_text_ldm' is not installed: pass --models-dir" in err[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["", "--steps", "2"], "REPORT 1 is empty"),
        ([REPORTS[0], "  ", "--steps", "2"], "REPORT 2 is empty"),
        (["--steps", "2"], "no report text: give one or more REPORT arguments or --prompts-file"),
        ([REPORTS[0], "--steps", "0"], "--steps 0: must be an integer >= 1"),
        ([REPORTS[0], "--steps", "11"], "--steps 11: the model was trained with 10 timesteps"),
        ([REPORTS[0], "--steps", "2", "--guidance", "0.5"], "--guidance 0.5: must be >= 1"),
        ([REPORTS[0], "--steps", "2", "--eta", "2"], "--eta 2: must be in [0, 1]"),
        ([REPORTS[0], "--steps", "2", "--n", "0"], "--n 0: must be an integer >= 1"),
        (
            [REPORTS[0], "--steps", "2", "--preset", "sharp"],
            "--preset 'sharp': unknown; valid presets: balanced",
        ),
        ([REPORTS[0], "--steps", "2", "--device", "gpu"], "--device 'gpu': not a torch device"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(tmp_path, bundle_root, capsys, extra, message):
    argv = ["generate", *extra, "--out", str(tmp_path / "o"), "--models-dir", str(bundle_root / "models")]
    assert main([*argv, *([] if "--device" in extra else ["--device", "cpu"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "case, message",
    [
        ("binary", "--prompts-file: prompts file '{tmp}/image.png' is binary"),
        ("no_file", "--prompts-file: prompts file '{tmp}/no.txt' does not exist"),
        ("no_models_dir", "--models-dir: no models folder '{tmp}/nowhere'"),
        ("no_models_in_root", "--bundle-root: no models folder '{tmp}/models'; it holds autoencoder.pt"),
    ],
)
def test_bad_prompts_file_and_missing_models(tmp_path, bundle_root, capsys, case, message):
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    models = ["--models-dir", str(bundle_root / "models")]
    extra = {
        "binary": ["--prompts-file", str(binary), *models],
        "no_file": ["--prompts-file", str(tmp_path / "no.txt"), *models],
        "no_models_dir": [REPORTS[0], "--models-dir", str(tmp_path / "nowhere")],
        "no_models_in_root": [REPORTS[0], "--bundle-root", str(tmp_path)],
    }[case]
    assert main(["generate", *extra, "--out", str(tmp_path / "o"), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(tmp=tmp_path) in err[0], err


def test_help_lists_generate_and_stays_light():
    code = (
        "import sys, medgen.cli; p = medgen.cli.build_parser(); "
        "print('generate' in p.format_help(), 'torch' in sys.modules, 'monai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "False", "False"], out.stderr


def test_a_prompt_over_the_token_limit_is_refused_unless_shortening_is_asked(tmp_path, bundle_root, capsys):
    long = " ".join(["Moderate cardiomegaly."] * 200)  # far over any encoder's limit
    argv = [
        "generate",
        long,
        "--out",
        str(tmp_path / "o"),
        "--models-dir",
        str(bundle_root / "models"),
        *FAST,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "over the text encoder's limit" in err and "--shorten-long-prompts" in err
    assert not (tmp_path / "o").exists()  # refused before any image is made
    assert main([*argv, "--shorten-long-prompts"]) == 0
    assert read_synthetic_marks(tmp_path / "o" / "0_0.png")["prompt"] == long  # the asked prompt is recorded
