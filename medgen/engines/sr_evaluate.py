"""Honest SR evaluation: patient-level test split, baselines in the same script, per-image mean and std.

``python -m medgen.engines.sr_evaluate --model teacher=models/teacher.pt --model student=models/student.pt``
(``--dataset-dir DIR`` for a real folder; the phantom otherwise).

The test items come from :func:`medgen.data.datalist.load_datalist` (``splits[2]``, the split the training
configs use): phantom studies or real images, loaded at their own size by ``LoadRadiographd``. For each
degradation variant (clean bicubic x4, and blur + noise) it scores bicubic, Lanczos and every model
on whole HR images of the *test* split (patients never seen in training) with shaved PSNR/SSIM on [0, 1],
``data_range=1`` (MONAI metrics under :mod:`medgen.metrics.image`), through MONAI ``SupervisedEvaluator``.
It also measures parameters, GFLOPs for one LR->HR pass (``torch.utils.flop_counter.FlopCounterMode``, which
counts convolutions/matmuls: 2 FLOPs per multiply-add; interpolation is not counted) and CPU milliseconds per
image (at the first test image's LR size), then writes ``sr_results.json``, ``sr_results.md`` and ``sr_comparison.png``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from torch import nn

from medgen.engines.sr import (
    DEGRADATIONS,
    InterpolationSR,
    create_sr_evaluator,
    per_image_metrics,
    sr_whole_image_transform,
)
from medgen.metrics.image import summarize

logger = logging.getLogger("medgen.sr_evaluate")

# Degradation variants (shared with training: ``degradations`` in the bundle): LR made from the HR test image
# by anti-aliased bicubic downsampling, optionally after a Gaussian blur (sigma in HR pixels) and with
# Poisson-Gaussian noise.
VARIANTS: dict[str, dict[str, float | None]] = DEGRADATIONS
BASELINES = ("bicubic", "lanczos")


def load_models(models: Mapping[str, str | nn.Module]) -> dict[str, nn.Module]:
    """Label -> network; strings are checkpoints written by ``medgen.networks.utils.save_checkpoint``."""
    from medgen.networks.utils import load_checkpoint

    return {k: (load_checkpoint(v) if isinstance(v, (str, Path)) else v).eval() for k, v in models.items()}


def gflops(model: nn.Module, lr_size: int = 256) -> float:
    """GFLOPs of one ``(1, 1, lr_size, lr_size)`` forward pass, counted by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    try:  # count on the meta device: shapes only, no arithmetic, instant even for a 1024 output
        net, x = copy.deepcopy(model).to("meta"), torch.zeros(1, 1, lr_size, lr_size, device="meta")
    except Exception:  # a module that cannot move to meta is counted on the CPU
        net, x = model, torch.zeros(1, 1, lr_size, lr_size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x)
    return counter.get_total_flops() / 1e9


def ms_per_image(model: nn.Module, lr_size: int | Sequence[int] = 256, repeats: int = 3) -> float:
    """Median wall-clock milliseconds of one LR->HR forward pass on CPU (after one warm-up).

    ``lr_size``: the LR side, or ``(height, width)``.
    """
    h, w = (lr_size, lr_size) if isinstance(lr_size, int) else (int(lr_size[0]), int(lr_size[1]))
    x = torch.rand(1, 1, h, w)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


class TiledSRInferer:
    """MONAI-evaluator ``inferer`` that upscales through :class:`medgen.inferers.sr.SuperResolutionInferer` tiles.

    Bounds memory for very large images (``eval_tile``: LR tile side); tiles are blended so the result agrees
    with the whole-image output to about 1e-4 (outputs clipped to [0, 1], as the metrics do anyway).
    """

    def __init__(self, tile_size: int, overlap: float = 0.25, halo: int = 8) -> None:
        self.tile_size, self.overlap, self.halo = int(tile_size), float(overlap), int(halo)

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        from medgen.inferers.sr import SuperResolutionInferer

        sri = SuperResolutionInferer(
            network, tile_size=self.tile_size, overlap=self.overlap, halo=self.halo, device=inputs.device
        )
        return sri.upscale(inputs).to(inputs.device)


def evaluate_sr(
    models: Mapping[str, str | nn.Module],
    test_items: Sequence[Mapping[str, Any]],
    scale: int = 4,
    seed: int = 0,
    variants: Sequence[str] = ("bicubic", "blur_noise"),
    shave: int = 4,
    out_dir: str | Path | None = None,
    timing: bool = True,
    figure_models: Sequence[str] | None = None,
    teacher: str | None = "teacher",
    data_info: Mapping[str, Any] | None = None,
    crop: int | None = None,
    tile: int | None = None,
) -> dict[str, Any]:
    """Score baselines and ``models`` on the test items; write JSON, markdown and a figure.

    Args:
        models: label -> checkpoint path or network (scale must equal ``scale``).
        test_items: the test split of :func:`medgen.data.datalist.load_datalist` (``splits[2]``): phantom
            items (arrays) or real ones (file paths, loaded at their own size, cropped bottom/right to a
            multiple of ``scale``).
        variants: keys of :data:`VARIANTS`.
        out_dir: where results go (nothing written when None).
        timing: measure ms per image (CPU, current torch thread count) at the first test image's LR size.
        figure_models: the (student, teacher) labels shown in the figure; default: the last two models.
        teacher: label of the teacher, for the "share of teacher gain" and speed-up columns.
        data_info: ``splits.info`` (dataset, folder, split method, counts), copied into the results.
        crop: centre-crop every HR test image to ``crop`` x ``crop`` first (``eval_crop``; None: whole image).
        tile: LR tile side for tiled inference of the models (``eval_tile``; None: whole image at once).
    """
    nets = load_models(models)
    for label, net in nets.items():
        if getattr(net, "scale", scale) != scale:
            raise ValueError(f"model {label!r} has scale {net.scale} but the evaluation uses scale={scale}.")
    test_items = list(test_items)
    if not test_items:
        raise ValueError("the test split is empty; give more images (patients) or change split.fractions.")
    info = dict(data_info or {})
    first = sr_whole_image_transform(scale, seed=seed, crop=crop)(dict(test_items[0]))
    hr_h, hr_w = (int(v) for v in first["hr"].shape[-2:])
    lr_h, lr_w = (int(v) for v in first["lr"].shape[-2:])
    methods: dict[str, nn.Module] = {b: InterpolationSR(scale, b) for b in BASELINES} | nets
    on_disk = isinstance(test_items[0]["image"], str | Path)
    dataset = info.get("dataset") or ("image files" if on_disk else "phantom")
    phantom = dataset == "phantom"
    kw = info.get("reader_kwargs", {})
    n_all = sum(s["images"] for s in info["splits"].values()) if "splits" in info else len(test_items)
    results: dict[str, Any] = {
        "setup": {
            "dataset": dataset,
            "dataset_dir": info.get("dataset_dir"),
            "n_studies": int(kw.get("n", n_all)) if phantom else n_all,
            "n_test_images": len(test_items),
            "n_test_patients": len({str(it["patient_id"]) for it in test_items}),
            "hr_size": hr_h if hr_h == hr_w else [hr_h, hr_w],
            "hr_noise_scale": float(kw.get("noise_scale", 1.0)) if phantom else None,
            "lr_size": lr_h if lr_h == lr_w else [lr_h, lr_w],
            "eval_crop": crop,
            "eval_tile": tile,
            "scale": scale,
            "shave": shave,
            "data_range": 1.0,
            "split": {"method": info.get("split_method", ""), "level": "patient"},
            "variants": {v: VARIANTS[v] for v in variants},
            "cpu": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
        },
        "models": {},
        "scores": {},
    }
    for label, net in methods.items():
        info: dict[str, Any] = {"arch": getattr(net, "arch", label)}
        if label not in BASELINES:
            info["params"] = sum(p.numel() for p in net.parameters())
            info["gflops_256_to_1024"] = round(gflops(net, 256 if scale == 4 else 1024 // scale), 3)
        if timing:
            info["ms_per_image_cpu"] = round(ms_per_image(net, (lr_h, lr_w)), 1)
        results["models"][label] = info

    samples: dict[str, dict[str, torch.Tensor]] = {}
    for variant in variants:
        loader = DataLoader(
            Dataset(
                test_items,
                transform=sr_whole_image_transform(scale, **VARIANTS[variant], seed=seed, crop=crop),
            ),
            batch_size=1,
            num_workers=0,
        )
        scores = {}
        for label, net in methods.items():
            extra = {"inferer": TiledSRInferer(tile)} if tile and label not in BASELINES else {}
            evaluator = create_sr_evaluator(net, loader, shave=shave, **extra)
            with torch.inference_mode():
                evaluator.run()
            per_image = per_image_metrics(evaluator)
            scores[label] = {m: summarize(v) | {"per_image": v} for m, v in per_image.items()}
        base = scores["bicubic"]
        for label in scores:
            for m in ("psnr", "ssim"):
                gain = np.asarray(scores[label][m]["per_image"]) - np.asarray(base[m]["per_image"])
                scores[label][m]["gain_over_bicubic"] = float(gain.mean())
                scores[label][m]["beats_bicubic_images"] = int((gain > 0).sum())
        if teacher in scores:
            t_gain = scores[teacher]["psnr"]["gain_over_bicubic"]
            for label in nets:
                share = scores[label]["psnr"]["gain_over_bicubic"] / t_gain if t_gain > 0 else float("nan")
                scores[label]["psnr"]["share_of_teacher_gain"] = share
        results["scores"][variant] = scores
        pair = loader.dataset[0]
        lr = pair["lr"][None]
        with torch.inference_mode():
            samples[variant] = {"lr": lr, "hr": torch.as_tensor(pair["hr"])[None]} | {
                k: (TiledSRInferer(tile)(lr, m) if tile and k not in BASELINES else m(lr)).clamp(0, 1)
                for k, m in methods.items()
            }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sr_results.json").write_text(json.dumps(results, indent=1, default=str))
        (out / "sr_results.md").write_text(results_markdown(results, teacher))
        figure = list(figure_models or list(nets)[-2:][::-1])
        save_comparison_figure(samples[variants[0]], figure, out / "sr_comparison.png")
    return results


def results_markdown(results: dict[str, Any], teacher: str | None = "teacher") -> str:
    """A markdown table per variant: PSNR/SSIM mean ± std, gains, params, GFLOPs, ms per image."""
    s = results["setup"]
    if s.get("dataset", "phantom") == "phantom":
        source = (
            f"patient-level split of {s['n_studies']} phantom studies), HR {s['hr_size']} (phantom noise_scale "
            f"{s.get('hr_noise_scale', 1.0)})"
        )
    else:
        crop = f", centre crop {s['eval_crop']}" if s.get("eval_crop") else ""
        source = (
            f"patient-level split of {s['n_studies']} {s['dataset']} images in {s['dataset_dir']}), HR at each "
            f"image's own size{crop}, cropped to a multiple of {s['scale']} (first image {s['hr_size']})"
        )
    lines = [
        f"Test split: {s['n_test_images']} images of {s['n_test_patients']} patients ({source} "
        f"from LR {s['lr_size']} (x{s['scale']}); "
        f"PSNR/SSIM on [0, 1] with data_range=1, {s['shave']}-px border shave, per-image mean ± std. "
        f"CPU timing with {s['torch_threads']} torch threads.",
        "",
    ]
    for variant, scores in results["scores"].items():
        lines += [
            f"### LR degradation: {variant} {results['setup']['variants'][variant]}",
            "",
            "| method | PSNR dB | SSIM | ΔPSNR vs bicubic | ΔSSIM | images beating bicubic (PSNR) | share of "
            "teacher gain | params | GFLOPs 256→1024 | ms/image CPU |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, sc in scores.items():
            info = results["models"][label]
            p, q = sc["psnr"], sc["ssim"]
            share = p.get("share_of_teacher_gain")
            lines.append(
                f"| {label} | {p['mean']:.2f} ± {p['std']:.2f} | {q['mean']:.4f} ± {q['std']:.4f} | "
                f"{p['gain_over_bicubic']:+.2f} | {q['gain_over_bicubic']:+.4f} | "
                f"{p['beats_bicubic_images']}/{p['n']} | {'' if share is None else f'{share:.0%}'} | "
                f"{info.get('params', '')} | {info.get('gflops_256_to_1024', '')} | "
                f"{info.get('ms_per_image_cpu', '')} |"
            )
        lines.append("")
    return "\n".join(lines)


def save_comparison_figure(sample: dict[str, torch.Tensor], models: Sequence[str], path: str | Path) -> Path:
    """LR | bicubic | models... | HR with a zoomed inset row and absolute-error maps against HR."""
    from medgen.visualize.pyplot import pyplot

    plt = pyplot()
    hr = sample["hr"][0, 0].numpy()
    lr_up = torch.nn.functional.interpolate(sample["lr"], size=hr.shape, mode="nearest")[0, 0].numpy()
    cols = [("LR (nearest)", lr_up), ("bicubic", sample["bicubic"][0, 0].numpy())]
    cols += [(m, sample[m][0, 0].numpy()) for m in models if m in sample]
    cols.append(("HR", hr))
    n = hr.shape[0]
    y0, x0, w = int(n * 0.35), int(n * 0.25), max(n // 8, 16)  # inset over the right lung / hilum
    fig, axes = plt.subplots(3, len(cols), figsize=(2.0 * len(cols), 6.2))
    for c, (title, img) in enumerate(cols):
        axes[0, c].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[0, c].add_patch(plt.Rectangle((x0, y0), w, w, fill=False, ec="yellow", lw=0.8))
        axes[0, c].set_title(title, fontsize=8)
        axes[1, c].imshow(img[y0 : y0 + w, x0 : x0 + w], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        err = np.abs(img - hr)[y0 : y0 + w, x0 : x0 + w]
        axes[2, c].imshow(err, cmap="magma", vmin=0, vmax=0.1, interpolation="nearest")
        if c == 0:
            axes[1, c].set_ylabel("zoom", fontsize=8)
            axes[2, c].set_ylabel("|error| (0-0.1)", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    from medgen.data.datalist import load_datalist

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="label=checkpoint.pt (repeatable)")
    parser.add_argument("--dataset-dir", default=None, help="real folder (default: the embedded phantom)")
    parser.add_argument("--dataset", default=None, help="reader name (default: auto with a folder)")
    parser.add_argument("--dataset-kwargs", default="{}", help="reader options as JSON/YAML")
    parser.add_argument("--n-studies", type=int, default=40, help="phantom studies")
    parser.add_argument("--hr-size", type=int, default=1024, help="phantom HR size")
    parser.add_argument(
        "--hr-noise-scale", type=float, default=1.0, help="phantom quantum-noise factor of the HR reference"
    )
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=["bicubic", "blur_noise"], choices=sorted(VARIANTS))
    parser.add_argument("--teacher", default="teacher")
    parser.add_argument("--crop", type=int, default=None, help="centre-crop HR test images to this side")
    parser.add_argument("--tile", type=int, default=None, help="LR tile side for tiled inference")
    parser.add_argument("--out", default="runs/sr_eval")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args(argv)
    import yaml

    models = {}
    for spec in args.model:
        label, sep, path = spec.partition("=")
        if not sep:
            parser.error(f"--model {spec!r}: write label=path/to/checkpoint.pt")
        models[label] = path
    kwargs = dict(yaml.safe_load(args.dataset_kwargs) or {})
    if not args.dataset_dir:
        phantom = {
            "n": args.n_studies,
            "size": args.hr_size,
            "seed": args.seed,
            "noise_scale": args.hr_noise_scale,
        }
        kwargs = phantom | kwargs
    splits = load_datalist(
        args.dataset,
        args.dataset_dir,
        kwargs,
        {"seed": args.split_seed},
        workflow="evaluate",
        report_dir=args.out,
    )
    results = evaluate_sr(
        models,
        splits[2],
        args.scale,
        args.seed,
        variants=args.variants,
        out_dir=args.out,
        timing=not args.no_timing,
        teacher=args.teacher,
        data_info=splits.info,
        crop=args.crop,
        tile=args.tile,
    )
    print(results_markdown(results, args.teacher))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
