"""Honest SR evaluation: patient-level test split, baselines in the same script, per-image mean and std.

``python -m medgen.engines.sr_evaluate --model teacher=models/teacher.pt --model student=models/student.pt``

For each degradation variant (clean bicubic x4, and blur + noise) it scores bicubic, Lanczos and every model
on whole HR images of the *test* split (patients never seen in training) with shaved PSNR/SSIM on [0, 1],
``data_range=1`` (MONAI metrics under :mod:`medgen.metrics.image`), through MONAI ``SupervisedEvaluator``.
It also measures parameters, GFLOPs for one LR->HR pass (``torch.utils.flop_counter.FlopCounterMode``, which
counts convolutions/matmuls: 2 FLOPs per multiply-add; interpolation is not counted) and CPU milliseconds per
image, then writes ``sr_results.json``, ``sr_results.md`` and ``sr_comparison.png``.
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
    phantom_sr_items,
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


def ms_per_image(model: nn.Module, lr_size: int = 256, repeats: int = 3) -> float:
    """Median wall-clock milliseconds of one LR->HR forward pass on CPU (after one warm-up)."""
    x = torch.rand(1, 1, lr_size, lr_size)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def evaluate_sr(
    models: Mapping[str, str | nn.Module],
    n_studies: int = 40,
    hr_size: int = 1024,
    scale: int = 4,
    seed: int = 0,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    split_seed: int = 0,
    variants: Sequence[str] = ("bicubic", "blur_noise"),
    shave: int = 4,
    out_dir: str | Path | None = None,
    timing: bool = True,
    figure_models: Sequence[str] | None = None,
    teacher: str | None = "teacher",
    hr_noise_scale: float = 1.0,
) -> dict[str, Any]:
    """Score baselines and ``models`` on the phantom test split; write JSON, markdown and a figure.

    Args:
        models: label -> checkpoint path or network (scale must equal ``scale``).
        n_studies: phantom studies before the patient-level split (the same split the training configs use).
        hr_size: HR size; LR is ``hr_size // scale`` (1024 -> 256 by default).
        variants: keys of :data:`VARIANTS`.
        out_dir: where results go (nothing written when None).
        timing: measure ms per image (CPU, current torch thread count).
        figure_models: the (student, teacher) labels shown in the figure; default: the last two models.
        teacher: label of the teacher, for the "share of teacher gain" and speed-up columns.
        hr_noise_scale: quantum-noise factor of the HR reference (see :func:`medgen.engines.sr.phantom_sr_items`);
            use the value the models were trained with.
    """
    nets = load_models(models)
    for label, net in nets.items():
        if getattr(net, "scale", scale) != scale:
            raise ValueError(f"model {label!r} has scale {net.scale} but the evaluation uses scale={scale}.")
    test_items = phantom_sr_items(
        n_studies, hr_size, seed, fractions, split_seed, split=2, hr_noise_scale=hr_noise_scale
    )
    if not test_items:
        raise ValueError(f"the test split of {n_studies} phantom studies is empty; raise n_studies.")
    methods: dict[str, nn.Module] = {b: InterpolationSR(scale, b) for b in BASELINES} | nets
    results: dict[str, Any] = {
        "setup": {
            "n_studies": n_studies,
            "n_test_images": len(test_items),
            "n_test_patients": len({it["patient_id"] for it in test_items}),
            "hr_size": hr_size,
            "hr_noise_scale": hr_noise_scale,
            "lr_size": hr_size // scale,
            "scale": scale,
            "shave": shave,
            "data_range": 1.0,
            "split": {"fractions": list(fractions), "seed": split_seed, "level": "patient"},
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
            info["ms_per_image_cpu"] = round(ms_per_image(net, hr_size // scale), 1)
        results["models"][label] = info

    samples: dict[str, dict[str, torch.Tensor]] = {}
    for variant in variants:
        loader = DataLoader(
            Dataset(test_items, transform=sr_whole_image_transform(scale, **VARIANTS[variant], seed=seed)),
            batch_size=1,
            num_workers=0,
        )
        scores = {}
        for label, net in methods.items():
            evaluator = create_sr_evaluator(net, loader, shave=shave)
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
        first = test_items[0]
        lr = loader.dataset[0]["lr"][None]
        with torch.inference_mode():
            samples[variant] = {"lr": lr, "hr": torch.as_tensor(first["image"])[None]} | {
                k: methods[k](lr).clamp(0, 1) for k in methods
            }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sr_results.json").write_text(json.dumps(results, indent=1))
        (out / "sr_results.md").write_text(results_markdown(results, teacher))
        figure = list(figure_models or list(nets)[-2:][::-1])
        save_comparison_figure(samples[variants[0]], figure, out / "sr_comparison.png")
    return results


def results_markdown(results: dict[str, Any], teacher: str | None = "teacher") -> str:
    """A markdown table per variant: PSNR/SSIM mean ± std, gains, params, GFLOPs, ms per image."""
    s = results["setup"]
    lines = [
        f"Test split: {s['n_test_images']} images of {s['n_test_patients']} patients (patient-level split of "
        f"{s['n_studies']} phantom studies), HR {s['hr_size']} (phantom noise_scale "
        f"{s.get('hr_noise_scale', 1.0)}) from LR {s['lr_size']} (x{s['scale']}); "
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="label=checkpoint.pt (repeatable)")
    parser.add_argument("--n-studies", type=int, default=40)
    parser.add_argument("--hr-size", type=int, default=1024)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=["bicubic", "blur_noise"], choices=sorted(VARIANTS))
    parser.add_argument("--teacher", default="teacher")
    parser.add_argument("--out", default="runs/sr_eval")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument(
        "--hr-noise-scale", type=float, default=1.0, help="phantom quantum-noise factor of the HR reference"
    )
    args = parser.parse_args(argv)
    models = {}
    for spec in args.model:
        label, sep, path = spec.partition("=")
        if not sep:
            parser.error(f"--model {spec!r}: write label=path/to/checkpoint.pt")
        models[label] = path
    results = evaluate_sr(
        models,
        args.n_studies,
        args.hr_size,
        args.scale,
        args.seed,
        variants=args.variants,
        out_dir=args.out,
        timing=not args.no_timing,
        teacher=args.teacher,
        hr_noise_scale=args.hr_noise_scale,
    )
    print(results_markdown(results, args.teacher))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
