"""``run_pipeline(config)``: the attention-guided SR classification experiment, end to end, as one library call.

The data stage (the phantom, or a labelled folder of native-resolution radiographs) -> patient-level split ->
(train or load) the region SR backend -> per seed: train the base classifier -> attention maps -> enhance every
image's top-k attention regions (cached on disk) -> fine-tune on the enhanced images; and, as the control the
paper lacks, fine-tune the same base for the same number of epochs on the native (un-enhanced) images -> evaluate
all on the same held-out patients -> report (``report.md``, ``report.json``, figures) with mean +- std over seeds
and the wall time of every stage.

Reported beside each other: per-class AUROC with bootstrap CIs (patient-level), element-wise and exact-match
accuracy next to the all-negative baseline, macro F1, attention localisation (pointing game, mass share) next to a
uniform map, and SR quality of the regions against the true high-resolution phantom (region-only and
whole-image PSNR/SSIM, backend vs bicubic). ``config`` is the bundle's ``pipeline_config`` (all keys; from
Python: :func:`~medgen.engines.attention_sr.config.load_pipeline_config`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgen.engines.attention_sr.arms import evaluate_arm, native_hires_images, retrain, train_base_classifier
from medgen.engines.attention_sr.backends import build_backend, region_sr_quality
from medgen.engines.attention_sr.config import cache_key, data_key, merge_config, pointing_tolerances
from medgen.engines.attention_sr.data import load_pipeline_data, render_hr
from medgen.engines.attention_sr.figures import save_pipeline_figures
from medgen.engines.attention_sr.localization import score_maps
from medgen.engines.attention_sr.report import StageTimer, report_markdown, summarise_seeds

__all__ = ["enhance_images", "run_pipeline"]


def _check(cfg: dict) -> None:
    attn = cfg["attention"]
    if (
        "head" in [attn["method"], *attn["localization"]]
        and cfg["classifier"]["kwargs"].get("head") != "csra"
    ):
        raise ValueError(
            "run_pipeline: the attention map 'head' (attention.method / attention.localization) reads the class "
            "token scores of a classifier built with classifier.kwargs.head: csra; set that, or use rollout / "
            "grad_rollout / gradcam maps"
        )
    pointing_tolerances(attn["pointing_tolerance"])


def enhance_images(
    pipe: Any, images: torch.Tensor, path: Path, batch_size: int = 64
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Every image through the attention-SR ``pipe`` (an ``AttentionSRPipeline``), cached at ``path`` (.npy)
    with the chosen boxes beside it (``<stem>_boxes.npy``, NaN-padded); returns the images and per-image boxes."""
    boxes_path = path.with_name(path.stem + "_boxes.npy")
    if path.is_file() and boxes_path.is_file():
        padded = np.load(boxes_path)
        return torch.from_numpy(np.load(path)), [torch.from_numpy(b[~np.isnan(b).any(1)]) for b in padded]
    enhanced, boxes = images.clone(), []
    for i0 in range(0, len(images), batch_size):
        out = pipe(images[i0 : i0 + batch_size])
        enhanced[i0 : i0 + batch_size] = out.images
        boxes += list(out.boxes)
    k = max([len(b) for b in boxes] + [1])
    padded = np.full((len(boxes), k, 4), np.nan, np.float32)
    for i, b in enumerate(boxes):
        padded[i, : len(b)] = b.numpy()
    np.save(path, enhanced.numpy())
    np.save(boxes_path, padded)
    return enhanced, [torch.from_numpy(b[~np.isnan(b).any(1)]) for b in padded]


def run_pipeline(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the experiment described in the module docstring; returns the report dict (also written to disk)."""
    from tqdm.auto import tqdm

    from medgen.inferers.attention import CLASS_METHODS, compute_attention_maps
    from medgen.inferers.attention_sr import AttentionSRPipeline
    from medgen.networks.nets.vit_classifier import save_classifier_checkpoint

    _check(cfg)
    t0, timer = time.time(), StageTimer()
    out_dir = Path(cfg["output_dir"])
    cache = Path(cfg["cache_dir"] or out_dir / "cache")
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    seeds, hires, attn = list(cfg["seeds"]), cfg["native_hires"], cfg["attention"]
    hires_seeds = (seeds[: hires["n_seeds"]] if hires.get("n_seeds") else seeds) if hires["enabled"] else []
    bar = tqdm(total=2 + 4 * len(seeds) + len(hires_seeds), desc="attention-SR pipeline", unit="stage")

    with timer("data"):
        data = load_pipeline_data(cfg, cache, out_dir)
    split, names = data["split"], data["label_names"]
    tr, va, te = split
    real_data = data if data["source"] != "phantom" else None
    if not te:
        raise ValueError("run_pipeline: the test split is empty; give more patients or change data.fractions")
    images, labels = torch.from_numpy(data["images"]), torch.from_numpy(data["labels"])
    eval_kw = dict(names=names, n_boot=cfg["n_boot"], groups=[str(data["patient_ids"][i]) for i in te])
    bar.update(1)
    with timer("region_sr_backend"):
        backend = build_backend(cfg["backend"], cfg["data"], data_key(cfg), cache, tr, real_data)
    bar.update(1)

    c, r, device = cfg["classifier"], cfg["regions"], cfg["device"]
    masks = [data["truth_masks"](i) for i in te]
    scored = list(dict.fromkeys([attn["method"], *attn["localization"]])) if data["truth"] != "none" else []
    tols = pointing_tolerances(attn["pointing_tolerance"])
    per_seed: list[dict[str, Any]] = []
    sr_quality = None
    for seed in seeds:
        bar.set_postfix(seed=seed)
        with timer("base_classifier", seed):
            net = train_base_classifier(c, images[tr], labels[tr], seed, names, device)
        save_classifier_checkpoint(out_dir / f"classifier_base_seed{seed}.pt", net, seed=seed)
        arms, probs = {}, {}
        with timer("evaluation", seed):
            arms["base"], probs["base"] = evaluate_arm(net, images, labels, split, seed=seed, **eval_kw)
        bar.update(1)

        with timer("attention_maps", seed):
            _, maps = compute_attention_maps(net, images[te], method=attn["method"])
            known = {} if attn["method"] in CLASS_METHODS else {attn["method"]: maps}
            loc = score_maps(net, images[te], masks, scored, names, tols, known)
        with timer("enhancement", seed):
            key = cache_key(data_key(cfg), c, r, cfg["backend"], attn, seed)
            pipe = AttentionSRPipeline(
                net, backend, scale=cfg["data"]["scale"], attention=attn["method"], **r
            )
            enhanced, boxes = enhance_images(pipe, images, cache / f"enhanced_{key}.npy")
        if seed == seeds[0]:
            with timer("figures", seed):
                show = te[:6]
                save_pipeline_figures(
                    out_dir, images[show], maps[:6], [boxes[i] for i in show], show, data, r["k"]
                )
        bar.update(1)

        for arm, arm_images in (("enhanced_retrained", enhanced), ("native_retrained", images)):
            with timer(f"retrain_{arm.split('_')[0]}", seed):
                arm_net = retrain(net, arm_images[tr], labels[tr], c, seed, device)
            with timer("evaluation", seed):
                arms[arm], probs[arm] = evaluate_arm(arm_net, arm_images, labels, split, seed=seed, **eval_kw)
            bar.update(1)
        if seed in hires_seeds:
            with timer("native_hires", seed):
                f = hires["factor"]
                hi_images, hi_labels = native_hires_images(f, cfg["data"], cache, data)
                kw = dict(c["kwargs"])  # the same token grid at f x the pixels
                kw["img_size"] = kw.get("img_size", cfg["data"]["size"]) * f
                kw["patch_size"] = kw.get("patch_size", 16) * f
                epochs = c["epochs"] + c["retrain_epochs"]
                hi_net = train_base_classifier(
                    c, hi_images[tr], hi_labels[tr], seed, names, device, kw, epochs
                )
            with timer("evaluation", seed):
                arms["native_hires"], probs["native_hires"] = evaluate_arm(
                    hi_net, hi_images, hi_labels, split, seed=seed, **eval_kw
                )
            bar.update(1)
        np.savez_compressed(
            out_dir / f"predictions_seed{seed}.npz",
            test_index=np.asarray(te),
            labels=data["labels"][te],
            **probs,
        )
        if seed == seeds[0]:
            with timer("region_sr_quality", seed):
                sr_quality = _sr_quality(cfg, backend, net, data, cache)
        mean_abs_change = float((enhanced[te] - images[te]).abs().mean())
        per_seed.append(
            {"seed": seed, **arms, "localization": loc.reports, "mean_abs_change_enhanced": mean_abs_change}
        )
    bar.close()

    with timer("report"):
        report = {
            "config": cfg,
            "summary": summarise_seeds(per_seed, names, bool(hires_seeds)),
            "sr_quality": sr_quality,
            "per_seed": per_seed,
            "n_train": len(tr),
            "n_val": len(va),
            "n_test": len(te),
            "n_test_patients": len(set(eval_kw["groups"])),
            "data": {
                **data["info"],
                "localization_truth": data["truth"],
                "hr_reference": data["hr"],
                "labels": names,
                "n_images": len(images),
            },
            "runtime_s": time.time() - t0,
        }
    report["stage_times_s"] = timer.as_dict()
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=float))
    (out_dir / "report.md").write_text(report_markdown(report))
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in timer.totals.items())
    print(f"attention-SR report: {out_dir / 'report.md'} (+ report.json); figures: {out_dir / 'figures'}")
    print(f"attention-SR stage times: {stages}")
    return report


def _sr_quality(
    cfg: dict, backend: Any, net: torch.nn.Module, data: dict, cache: Path
) -> dict[str, Any] | None:
    """The configured backend and the ``sr_eval.backends`` (trained and cached like ``backend``) vs bicubic on
    the attention regions of ``sr_eval.n_images`` test images, against the true HR (real data: the native test
    images at least ``size * scale``; None when there are none)."""
    from medgen.inferers.region_sr import BicubicBackend

    d, real_data = cfg["data"], data if data["source"] != "phantom" else None
    tr, _, te = data["split"]
    test_idx = [i for i in te if real_data is None or data["hr_ok"][i]][: cfg["sr_eval"]["n_images"]]
    if not test_idx:
        return None
    backends = {"bicubic": BicubicBackend(), cfg["backend"]["name"]: backend}
    for spec in cfg["sr_eval"]["backends"]:
        spec = merge_config({"name": "bicubic", "kwargs": {}, "train": None}, spec)
        backends[spec["name"]] = build_backend(spec, d, data_key(cfg), cache, tr, real_data)
    hr = render_hr(test_idx, d["size"] * d["scale"], d["phantom_seed"], float(d["hr_noise_scale"]), real_data)
    return region_sr_quality(backends, net, hr, d["scale"], cfg["attention"]["method"], cfg["regions"])
