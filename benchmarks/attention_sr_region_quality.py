"""Region SR quality of the learned backends against the true high-resolution phantom, beside bicubic.

    OMP_NUM_THREADS=1 python benchmarks/attention_sr_region_quality.py [--backends network,latent_diffusion]

Trains each backend as the pipeline's ``backend.train`` does (``build_backend`` of
``medgen.engines.attention_sr.backends``, same defaults) on HR renders of training studies, then scores PSNR/SSIM
(data_range 1, border shave = scale) on 64x64-HR body patches of held-out studies, whose LR input is the
area-downsampled HR (the degradation used in training and in the pipeline's region-quality evaluation). The HR
reference is the phantom at ``--hr-noise-scale`` (default 0.25 = 16x dose, the pipeline default
``data.hr_noise_scale``). Regions here are random body patches, not attention-selected ones (the pipeline report
gives those). Prints mean +- std over test patches, the share of patches beating bicubic, training and inference
seconds (training: wall and process CPU time; on a shared machine CPU time is what one idle core would take);
``--json`` writes the same. ``--ldm-variants`` scores other sampling settings (``num_samples``, steps, ``eta``) of
the same trained latent-diffusion model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description="region SR quality vs bicubic")
    p.add_argument("--backends", default="network,latent_diffusion")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--hr-noise-scale", type=float, default=0.25)
    p.add_argument("--train-images", type=int, default=24)
    p.add_argument("--test-images", type=int, default=8)
    p.add_argument("--network-train", default="{}", help="JSON overrides of backend.train for `network`")
    p.add_argument("--network-kwargs", default="{}", help="JSON backend.kwargs for `network`")
    p.add_argument("--ldm-train", default="{}", help="JSON overrides of backend.train for `latent_diffusion`")
    p.add_argument("--ldm-kwargs", default="{}", help="JSON backend.kwargs for `latent_diffusion`")
    p.add_argument(
        "--ldm-variants",
        default="[]",
        help="JSON list of kwargs overrides scored with the same trained LDM, e.g. '[{\"num_samples\": 1}]'",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default=None, help="checkpoint folder (default: a new temporary one)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from medgen.engines.attention_sr import load_pipeline_config, merge_config, render_hr
    from medgen.engines.attention_sr.backends import build_backend, hr_patches
    from medgen.engines.ldm_sr import degrade
    from medgen.inferers.region_sr import BicubicBackend
    from medgen.metrics.image import psnr, ssim

    s = args.scale
    train_idx = list(range(args.train_images))
    test_idx = list(range(1000, 1000 + args.test_images))
    base = load_pipeline_config({"data": {"scale": s, "hr_noise_scale": args.hr_noise_scale}})
    d = base["data"]
    hr_images = render_hr(test_idx, d["size"] * s, d["phantom_seed"], d["hr_noise_scale"])
    hr_test = hr_patches(hr_images, 64, s, 8 * len(test_idx), seed=1)
    lr_test = degrade(hr_test, s)
    cache = Path(args.cache or tempfile.mkdtemp())
    cache.mkdir(parents=True, exist_ok=True)
    rows = [("bicubic", BicubicBackend(), 0.0, 0.0, {})]
    for name in filter(None, args.backends.split(",")):
        if name == "network":
            train = {"n_images": args.train_images} | json.loads(args.network_train)
            kwargs = json.loads(args.network_kwargs)
        elif name == "latent_diffusion":
            train = {"n_images": args.train_images} | json.loads(args.ldm_train)
            kwargs = json.loads(args.ldm_kwargs)
        else:
            raise SystemExit(f"unknown backend {name!r}: use network or latent_diffusion")
        spec = {"name": name, "kwargs": kwargs, "train": train}
        t, c = time.time(), time.process_time()
        be = build_backend(spec, d, d, cache, train_idx)
        rows.append((name, be, time.time() - t, time.process_time() - c, {"train": train, "kwargs": kwargs}))
        for var in json.loads(args.ldm_variants) if name == "latent_diffusion" else []:
            # other sampling settings of the same trained model (no retraining)
            vspec = merge_config(spec, {"kwargs": kwargs | var})
            rows.append(
                (
                    f"{name} {json.dumps(var)}",
                    build_backend(vspec, d, d, cache, train_idx),
                    0.0,
                    0.0,
                    {"kwargs": kwargs | var},
                )
            )

    results = {}
    ref = None
    ldm = next((be for name, be, *_ in rows if name == "latent_diffusion"), None)
    if ldm is not None:
        # the autoencoder's ceiling: decode(encode(true residual)) + bicubic, what a perfect latent prior could reach
        m = ldm.model

        def ceiling(x: torch.Tensor, _s: int) -> torch.Tensor:
            with torch.no_grad():
                z = m.autoencoder.encode(m.target(hr_test, x))[0]
                return m.decode(z * m.latent_scale, x)

        rows.append(("latent_diffusion autoencoder ceiling (sees the HR)", ceiling, 0.0, 0.0, {}))
    for name, be, train_s, train_cpu_s, setup in rows:
        t = time.time()
        out = be(lr_test, s)
        infer_s = time.time() - t
        ps, ss = psnr(out, hr_test, s), ssim(out, hr_test, s)
        ref = ps if ref is None else ref
        results[name] = {
            "psnr_mean": float(ps.mean()),
            "psnr_std": float(ps.std()),
            "ssim_mean": float(ss.mean()),
            "ssim_std": float(ss.std()),
            "delta_psnr_vs_bicubic": float((ps - ref).mean()),
            "patches_beating_bicubic": int((ps > ref).sum()),
            "train_s": train_s,
            "train_cpu_s": train_cpu_s,
            "infer_s": infer_s,
            **setup,
        }
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{len(hr_test)} test patches 64x64 HR (x{s}, {args.test_images} held-out studies), HR noise_scale "
        f"{args.hr_noise_scale}, shave {s}; {machine}"
    )
    for name, r in results.items():
        print(
            f"{name:18s} PSNR {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} dB ({r['delta_psnr_vs_bicubic']:+.2f}, "
            f"{r['patches_beating_bicubic']}/{len(hr_test)} patches above bicubic)  SSIM {r['ssim_mean']:.4f} ± "
            f"{r['ssim_std']:.4f}  training {r['train_s']:.0f} s wall / {r['train_cpu_s']:.0f} s CPU, inference "
            f"{r['infer_s']:.1f} s"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "args": vars(args), "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
