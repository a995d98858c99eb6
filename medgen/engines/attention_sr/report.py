"""The pipeline's report: the summary over seeds (``report.json``), the Markdown report (``report.md``) and the
per-stage wall times."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from medgen.engines.attention_sr.backends import summarise
from medgen.engines.attention_sr.config import pointing_tolerances

__all__ = ["StageTimer", "report_markdown", "stage_times_markdown", "summarise_seeds"]

logger = logging.getLogger(__name__)


class StageTimer:
    """Wall time per pipeline stage, summed over seeds (``totals``) and per seed (``per_seed``); each stage is
    logged as it ends."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.per_seed: dict[str, dict[str, float]] = {}

    @contextmanager
    def __call__(self, stage: str, seed: int | None = None) -> Iterator[None]:
        start = time.perf_counter()
        yield
        dt = time.perf_counter() - start
        self.totals[stage] = self.totals.get(stage, 0.0) + dt
        if seed is not None:
            row = self.per_seed.setdefault(str(seed), {})
            row[stage] = row.get(stage, 0.0) + dt
        logger.info(
            "attention-SR pipeline stage %s%s: %.1f s", stage, "" if seed is None else f" (seed {seed})", dt
        )

    def as_dict(self) -> dict[str, Any]:
        return {"total": dict(self.totals), "per_seed": dict(self.per_seed)}


def stage_times_markdown(times: dict[str, Any] | None) -> list[str]:
    """The stage-time table of the Markdown report (total and per seed, seconds)."""
    if not times:
        return []
    seeds = list(times["per_seed"])
    lines = [
        "## Wall time per stage (s)",
        "",
        "| stage | total | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|---|" + "---|" * len(seeds),
    ]
    for stage, total in times["total"].items():
        cells = [f"{times['per_seed'][s][stage]:.1f}" if stage in times["per_seed"][s] else "" for s in seeds]
        lines.append(f"| {stage} | {total:.1f} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def summarise_seeds(per_seed: list[dict[str, Any]], names: list[str], with_hires: bool) -> dict[str, Any]:
    """Mean +- std over seeds of every arm's scores, the localisation scores and the enhanced-native gain."""
    arms = ("base", "native_retrained", "enhanced_retrained") + (("native_hires",) if with_hires else ())
    summary = {
        arm: {
            "mean_auroc": summarise([s[arm]["mean_auroc"] for s in per_seed if arm in s]),
            "elementwise_accuracy": summarise(
                [s[arm]["accuracy"]["elementwise"] for s in per_seed if arm in s]
            ),
            "exact_match_accuracy": summarise(
                [s[arm]["accuracy"]["exact_match"] for s in per_seed if arm in s]
            ),
            "macro_f1": summarise([s[arm]["macro_f1"] for s in per_seed if arm in s]),
            "val_loss": summarise([s[arm]["val_loss"] for s in per_seed if arm in s]),
            "per_class_auroc": {
                n: summarise([s[arm]["per_class"][n]["auroc"] for s in per_seed if arm in s]) for n in names
            },
            "seeds": [s["seed"] for s in per_seed if arm in s],
        }
        for arm in arms
    }
    summary["all_negative_accuracy"] = per_seed[0]["base"]["all_negative_accuracy"]
    summary["localization"] = {
        method: {
            **{
                k: summarise([s["localization"][method]["overall"].get(k) for s in per_seed])
                for k in ("pointing_game", "mass_share", "uniform_baseline")
            },
            **{
                key: {
                    t: summarise([s["localization"][method][key][t] for s in per_seed])
                    for t in per_seed[0]["localization"][method][key]
                }
                for key in ("pointing_game_at", "uniform_pointing_at")
            },
        }
        for method in per_seed[0]["localization"]
    }
    summary["auroc_gain_enhanced_minus_native"] = summarise(
        [s["enhanced_retrained"]["mean_auroc"] - s["native_retrained"]["mean_auroc"] for s in per_seed]
    )
    return summary


def report_markdown(rep: dict[str, Any]) -> str:
    """The Markdown report of a pipeline report dict (``report.md``)."""
    s, cfg = rep["summary"], rep["config"]

    tols = pointing_tolerances(cfg["attention"]["pointing_tolerance"])

    def pm(d: dict) -> str:
        return f"{d['mean']:.3f} ± {d['std']:.3f}"

    data = rep.get("data") or {"dataset": "phantom", "localization_truth": "masks"}
    real = data["dataset"] != "phantom"
    where = (
        f"Data: {data['dataset']} ({data['dataset_dir']}), {data['n_images']} images at {cfg['data']['size']} px"
        if real
        else f"Phantom: {cfg['data']['n_images']} images at {cfg['data']['size']} px"
    )
    lines = [
        "# Attention-guided SR classifier: report",
        "",
        f"{where}, {rep['n_train']} train / {rep['n_test']} test "
        f"images ({rep['n_test_patients']} test patients, patient-level split); seeds {cfg['seeds']}; SR backend "
        f"`{cfg['backend']['name']}` x{cfg['data']['scale']}, k={cfg['regions']['k']} regions; runtime {rep['runtime_s']:.0f} s.",
        "",
        "| arm | mean AUROC | element-wise acc. | exact-match acc. | macro F1 | validation loss |",
        "|---|---|---|---|---|---|",
    ]
    arms = [a for a in ("base", "native_retrained", "enhanced_retrained", "native_hires") if a in s]
    for arm in arms:
        a = s[arm]
        label = arm if len(a["seeds"]) == len(cfg["seeds"]) else f"{arm} (seeds {a['seeds']})"
        lines.append(
            f"| {label} | {pm(a['mean_auroc'])} | {pm(a['elementwise_accuracy'])} | {pm(a['exact_match_accuracy'])} "
            f"| {pm(a['macro_f1'])} | {pm(a['val_loss'])} |"
        )
    neg = s["all_negative_accuracy"]
    lines += [
        f"| all-negative predictor | 0.5 | {neg['elementwise']:.3f} | {neg['exact_match']:.3f} | 0 | |",
        "",
        "Per-class AUROC (mean ± std over seeds):",
        "",
        "| finding | " + " | ".join(arms) + " |",
        "|---|" + "---|" * len(arms),
    ]
    for n in s["base"]["per_class_auroc"]:
        lines.append(f"| {n} | " + " | ".join(pm(s[a]["per_class_auroc"][n]) for a in arms) + " |")
    lines += [
        "",
        "Arms: `base` = classifier after the base epochs; `native_retrained` / `enhanced_retrained` = the base "
        "fine-tuned for the same epochs on the native / region-enhanced images (enhanced arm also tested on enhanced "
        "images); `native_hires` (when enabled) = the same classifier trained on renders at "
        f"x{cfg['native_hires']['factor']} resolution without SR. Validation loss: unweighted BCE on the validation "
        "patients.",
        "",
        f"Enhanced minus native-retrained mean AUROC: {pm(s['auroc_gain_enhanced_minus_native'])} (mean ± std over seeds; "
        "per-seed 95% patient-level bootstrap CIs in report.json).",
        "",
    ]
    if real:
        lines += [
            "",
            f"Real data: the HR reference is the {data['hr_reference']}; the classifier's input is its area "
            f"downsampling by {cfg['data']['scale']} (the phantom's degradation). Labels: {', '.join(data['labels'])}. "
            "A small test set gives wide (or undefined, NaN) AUROC: read the CIs in report.json.",
        ]
    if data["localization_truth"] == "none":
        lines += [
            "",
            "## Attention localisation",
            "",
            "There is no localisation ground truth in this dataset (no finding masks, no finding bounding boxes): the "
            "attention maps select the regions but their localisation is not scored. Datasets with boxes (NIH "
            "ChestX-ray14 with `BBox_List_2017.csv`, dataset.kwargs `{with_boxes: true}`) are scored.",
        ]
    else:
        truth = "finding bounding boxes drawn as masks" if data["localization_truth"] == "boxes" else "masks"
        lines += [
            "",
            f"## Attention localisation (test findings with {truth})",
            "",
            "| map | "
            + " | ".join(f"pointing game, tolerance {t:g} px" for t in tols)
            + " | attention mass inside mask | uniform-map baseline |",
            "|---|" + "---|" * (len(tols) + 2),
            *[
                f"| {m}{' (selects the regions)' if m == cfg['attention']['method'] else ''} | "
                + " | ".join(
                    f"{pm(x)} (uniform {v['uniform_pointing_at'][t]['mean']:.3f})"
                    for t, x in v["pointing_game_at"].items()
                )
                + f" | {pm(v['mass_share'])} | {pm(v['uniform_baseline'])} |"
                for m, v in s["localization"].items()
            ],
            "",
            "Pointing game: a hit when the map's maximum lies inside the finding's mask, or within the tolerance of it "
            "(Zhang et al., ECCV 2016, used 15 px on ~224-px images; 8 px is that at 128 px). Class-specific maps "
            "(head, grad_rollout, gradcam) are scored with the map of the finding's own class, class-agnostic ones "
            "(rollout, cls) with the image's single map.",
        ]
    lines += [
        "",
        "## Region SR quality against the "
        + ("native-resolution image" if real else "true high-resolution phantom"),
        "",
        "| backend | region PSNR (dB) | region SSIM | whole-image PSNR (dB) | region area share |",
        "|---|---|---|---|---|",
    ]
    if rep["sr_quality"] is None:
        lines.append(
            f"| (not scored: no test image is at least {cfg['data']['size'] * cfg['data']['scale']} px natively) "
            "| | | | |"
        )
    for name, q in (rep["sr_quality"] or {}).items():
        lines.append(
            f"| {name} | {pm(q['region_psnr'])} | {pm(q['region_ssim'])} | {pm(q['image_psnr'])} | {q['region_area_share']:.3f} |"
        )
    lines += [
        "",
        "Whole-image PSNR mostly measures the bicubic background; read the region columns.",
        "",
        "![attention](figures/attention_overlay.png)",
        "",
        *stage_times_markdown(rep.get("stage_times_s")),
    ]
    return "\n".join(lines)
