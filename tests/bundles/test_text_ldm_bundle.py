"""The cxr_text_ldm bundle's workflows from its configs (smoke sizes): train (both stages) and evaluate on the
phantom, on an Indiana folder and on a labelled folder of real NIH radiographs with a report column; data it
cannot use is refused. (Train -> inference -> verify and torchrun are covered by test_bundle_harness.py.)"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest

from medgen.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_readers_feed_bundles import (  # noqa: E402
    REALDATA,
    _data_report,
    _forbid_phantom,
    _indiana,
    _listed,
)

BUNDLE = "cxr_text_ldm"


def _run(workflow: str, root: Path, *sets: str) -> int:
    args = ["run", BUNDLE, workflow, "--config", "smoke", "--bundle-root", str(root)]
    for s in sets:
        args += ["--set", s]
    return main(args)


def test_train_then_evaluate_on_the_phantom(tmp_path, capsys):
    root = tmp_path / "root"
    assert _run("train", root) == 0
    ae = json.loads((root / "runs" / "autoencoder_report.json").read_text())
    assert ae["split"] == "val" and ae["scale_factor"] > 0 and ae["latent_shape"] == [2, 16, 16]
    grids = sorted((root / "runs" / "figures").glob("samples_epoch_*.png"))
    assert grids, "the diffusion stage writes a sample grid per validation"
    capsys.readouterr()
    assert _run("evaluate", root) == 0
    printed = capsys.readouterr().out
    report = json.loads((root / "runs" / "eval" / "report.json").read_text())
    n_test = _data_report(root, "evaluate")["splits"]["test"]["images"]
    assert report["protocol"]["generated_per_guidance"] == n_test
    assert [r["guidance"] for r in report["guidance_sweep"]] == [1.0, 2.0, 7.5]
    for row in report["guidance_sweep"]:
        metrics = row["metrics"]["consistency classifier (proxy)"]
        assert metrics["fid"] >= 0 and set(metrics) >= {"kid_mean", "kid_std", "kid_subset_size"}
    assert report["diversity_ms_ssim"]["generated"]["n_pairs"] == 2  # 2 prompts x 2 samples: one pair each
    assert 0 <= report["memorisation"]["share_below_heldout_p5"] <= 1
    for path in report["figures"].values():
        assert Path(path).is_file()
    assert "Protocol:" in printed and "Prompt consistency" in printed and "report.md" in printed


def test_indiana_folder_feeds_train_and_evaluate(tmp_path, monkeypatch):
    data, frontal = _indiana(tmp_path / "data")
    before = sorted(str(p) for p in data.rglob("*"))
    _forbid_phantom(monkeypatch)
    root = tmp_path / "root"
    sets = (f"dataset_dir={data}", "split={fractions: [0.25, 0.25, 0.5], seed: 0}")
    assert _run("train", root, *sets) == 0
    train = _data_report(root, "train")
    assert train["dataset"] == "indiana_cxr" and _listed(train) == frontal
    assert _run("evaluate", root, *sets) == 0
    assert _data_report(root, "evaluate")["items"] == train["items"]
    report = json.loads((root / "runs" / "eval" / "report.json").read_text())
    assert report["protocol"]["real_labels"] == "stated by the data"  # Indiana's MeSH labels
    assert sorted(str(p) for p in data.rglob("*")) == before  # nothing written next to the data


def _nih_with_reports(folder: Path, empty_report: bool = False) -> list[str]:
    """The real NIH fixture PNGs with a report column written from their NIH finding labels."""
    src = REALDATA / "nih_chestxray14"
    (folder / "images").mkdir(parents=True)
    rows = list(csv.DictReader(open(src / "labels.csv", newline="")))[:8]
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "patient_id", "report"])
        for i, row in enumerate(rows):
            shutil.copy(src / row["image"], folder / row["image"])
            found = [x for x in row["Finding Labels"].split("|") if x != "No Finding"]
            text = " ".join(f"{x}." for x in found) or "No acute cardiopulmonary abnormality."
            w.writerow([row["image"], row["Patient ID"], "" if empty_report and i == 2 else text])
    return sorted(str(folder / r["image"]) for r in rows)


def test_labelled_folder_of_real_radiographs_with_a_report_column(tmp_path, monkeypatch):
    data = tmp_path / "data"
    images = _nih_with_reports(data)
    _forbid_phantom(monkeypatch)
    root = tmp_path / "root"
    sets = (f"dataset_dir={data}", "dataset=labelled_folder", "dataset_kwargs={report_column: report}",
            "split={fractions: [0.5, 0.25, 0.25], seed: 0}")  # fmt: skip
    assert _run("train_autoencoder", root, *sets) == 0
    report = _data_report(root, "train_autoencoder")
    assert report["dataset"] == "labelled_folder" and _listed(report) == images
    assert (root / "models" / "autoencoder.pt").is_file()


def test_data_without_reports_or_with_an_empty_report_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    _nih_with_reports(data)
    root = tmp_path / "root"
    assert _run("train_autoencoder", root, f"dataset_dir={data}", "dataset=labelled_folder",
                "dataset_kwargs={label_columns: [], metadata_columns: [report]}") == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "needs 'report'" in err and "report_column" in err
    bad = tmp_path / "bad"
    _nih_with_reports(bad, empty_report=True)
    assert _run("train_autoencoder", root, f"dataset_dir={bad}", "dataset=labelled_folder",
                "dataset_kwargs={report_column: report}") == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "labels.csv" in err and "report" in err


@pytest.mark.parametrize(
    "sets, message",
    [
        (("train_autoencoder", "image_size=33"), "not divisible by the x2 downsampling"),
        (("train_diffusion",), "run `medgen run cxr_text_ldm train_autoencoder` first"),
        (("inference",), "autoencoder.pt"),
    ],
)
def test_bad_options_name_the_option(tmp_path, capsys, sets, message):
    root = tmp_path / "root"
    code = _run(sets[0], root, *sets[1:])
    assert code != 0
    assert message in capsys.readouterr().err
