"""A tiny end-to-end run of the attention-guided SR experiment: report files, numbers that follow from the run,
and a second run that reuses the cached phantom, enhanced images and trained SR backend."""

import json

import numpy as np
import pytest
from conftest import tiny_pipeline

from medgen.engines.attention_sr import load_pipeline_config, merge_config, run_pipeline
from medgen.metrics.classification import auroc_per_class

TINY = tiny_pipeline(
    seeds=[0],
    device="cpu",
    sr_eval={
        "n_images": 2,
        "backends": [{"name": "network", "train": {"n_images": 2, "iterations": 2, "patch": 32}}],
    },
    native_hires={"enabled": True, "factor": 2},
    n_boot=20,
)
TINY["classifier"]["kwargs"]["local_attention"] = 1
STAGES = {"data", "region_sr_backend", "base_classifier", "attention_maps", "enhancement", "figures"}
STAGES |= {"retrain_enhanced", "retrain_native", "native_hires", "evaluation", "region_sr_quality", "report"}


def _without_times(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("runtime_s", "stage_times_s")}


def test_tiny_pipeline_report_follows_the_run_and_a_rerun_reuses_the_cache(tmp_path):
    out = tmp_path / "run"
    rep = run_pipeline(load_pipeline_config(TINY | {"output_dir": str(out)}))
    on_disk = json.loads((out / "report.json").read_text())
    assert _without_times(on_disk) == json.loads(json.dumps(_without_times(rep), default=float))
    for name in (
        "report.md",
        "figures/attention_overlay.png",
        "figure_arrays.npz",
        "classifier_base_seed0.pt",
    ):
        assert (out / name).is_file(), name

    # counts: every image is in exactly one split part; the report's test counts are the arms' test counts
    assert rep["n_train"] + rep["n_val"] + rep["n_test"] == rep["data"]["n_images"] == 24
    assert min(rep["n_train"], rep["n_val"], rep["n_test"]) > 0
    arms = {"base", "native_retrained", "enhanced_retrained", "native_hires"}
    seed0 = rep["per_seed"][0]
    assert arms <= set(rep["summary"]) and arms <= set(seed0) and seed0["seed"] == 0
    for arm in arms:
        assert seed0[arm]["n_images"] == rep["n_test"] and seed0[arm]["n_patients"] == rep["n_test_patients"]
        assert rep["summary"][arm]["seeds"] == [0]
        assert rep["summary"][arm]["mean_auroc"]["mean"] == pytest.approx(
            seed0[arm]["mean_auroc"], nan_ok=True
        )
    # the base arm's AUROC is the AUROC of its saved test predictions against the saved test labels
    pred = np.load(out / "predictions_seed0.npz")
    assert set(pred.files) == {"test_index", "labels", *arms} and len(pred["test_index"]) == rep["n_test"]
    recomputed = float(np.nanmean(auroc_per_class(pred["labels"], pred["base"])))
    assert seed0["base"]["mean_auroc"] == pytest.approx(recomputed, nan_ok=True)
    # the enhanced arm was trained and tested on other pixels than the native one
    assert seed0["mean_abs_change_enhanced"] > 0
    assert not np.array_equal(pred["enhanced_retrained"], pred["native_retrained"])

    # native_hires really trained on x2 renders (its cache entry is 256 px)
    assert {np.load(p)["images"].shape[-1] for p in (out / "cache").glob("phantom_*.npz")} == {128, 256}
    # every configured map method is scored at every tolerance; a tolerance can only add hits
    assert set(rep["summary"]["localization"]) == {"head", "rollout", "gradcam"}
    for v in seed0["localization"].values():
        at, u = v["pointing_game_at"], v["uniform_pointing_at"]
        assert set(at) == {"0", "8"} and at["8"] >= at["0"] == v["overall"]["pointing_game"]
        assert u["8"] > u["0"] == v["overall"]["uniform_pointing_baseline"]
    # the extra backend was trained (cached) and scored on the same regions as bicubic
    assert set(rep["sr_quality"]) == {"bicubic", "network"}
    assert 0.0 < rep["sr_quality"]["bicubic"]["region_area_share"] < 1.0
    # every stage is timed, in the JSON and in the Markdown report
    times = rep["stage_times_s"]
    assert set(times["total"]) == STAGES
    assert set(times["per_seed"]["0"]) == STAGES - {"data", "region_sr_backend", "report"}
    assert sum(times["total"].values()) <= rep["runtime_s"] + 1.0
    md = (out / "report.md").read_text()
    assert "Wall time per stage" in md and "native_hires" in md and "all-negative predictor" in md

    # a second run reads the phantom, the enhanced images and the SR network from the cache: files untouched,
    # report identical (seeded training), figure arrays identical (the regions' boxes are cached too)
    cached = sorted((out / "cache").iterdir())
    assert {p.name.split("_")[0] for p in cached} == {"phantom", "enhanced", "network"}
    stamps = {p: p.stat().st_mtime_ns for p in cached}
    figure = dict(np.load(out / "figure_arrays.npz"))
    again = run_pipeline(load_pipeline_config(TINY | {"output_dir": str(out)}))
    assert sorted((out / "cache").iterdir()) == cached
    assert {p: p.stat().st_mtime_ns for p in cached} == stamps
    assert json.dumps(_without_times(again), default=float) == json.dumps(_without_times(rep), default=float)
    for k, v in np.load(out / "figure_arrays.npz").items():
        assert np.array_equal(v, figure[k]), k


def test_head_map_needs_the_csra_head(tmp_path):
    cfg = load_pipeline_config({"output_dir": str(tmp_path / "run")})
    cfg["classifier"]["kwargs"] = {
        "img_size": 128,
        "patch_size": 16,
        "embed_dim": 32,
        "depth": 1,
        "num_heads": 2,
    }
    with pytest.raises(ValueError, match="classifier.kwargs.head"):
        run_pipeline(cfg)


@pytest.mark.parametrize("overlay", ["pipeline_smoke", "quick", "full"])
def test_every_overlay_resolves_to_a_complete_config(overlay):
    """Each overlay changes keys of pipeline.yaml only: the merged config has the same keys as the default."""
    base, cfg = load_pipeline_config(), load_pipeline_config(configs=[overlay])
    # merging either way raises on a key the other lacks (null sections such as backend.train aside)
    assert merge_config(base, cfg) == cfg
    merge_config(cfg, base)
    with pytest.raises(KeyError, match="valid keys"):
        load_pipeline_config({"data": {"n_imgs": 3}})
