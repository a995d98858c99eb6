"""Region SR quality of the learned backends against the true high-resolution phantom, beside bicubic.

    python benchmarks/attention_sr_region_quality.py [--backends network,latent_diffusion] [--scale 4]

Trains each backend on HR patches of training studies (as the pipeline's ``backend.train`` does), then scores
PSNR/SSIM (data_range 1, border shave = scale) on 64x64-HR body patches of held-out studies, whose LR input is
the area-downsampled HR (the degradation used in training). Regions here are random body patches, not
attention-selected ones (the pipeline report gives those). Prints one line per backend.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description="region SR quality vs bicubic")
    p.add_argument("--backends", default="network,latent_diffusion")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--train-images", type=int, default=16)
    p.add_argument("--test-images", type=int, default=8)
    p.add_argument("--network-epochs", type=int, default=30)
    p.add_argument("--ae-epochs", type=int, default=15)
    p.add_argument("--unet-epochs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from medgen.engines.attention_sr_pipeline import DEFAULT_CONFIG, _build_backend, _hr_patches, _merge
    from medgen.engines.ldm_sr import degrade
    from medgen.inferers.region_sr import BicubicBackend
    from medgen.metrics.image import psnr, ssim

    s = args.scale
    train_idx = list(range(args.train_images))
    test_idx = list(range(1000, 1000 + args.test_images))
    base = {"data": {"scale": s}}
    hr_test = _hr_patches(test_idx, _merge(DEFAULT_CONFIG, base), 8, 64, seed=1)
    lr_test = degrade(hr_test, s)
    rows = [("bicubic", BicubicBackend(), 0.0)]
    import tempfile

    cache = tempfile.mkdtemp()
    from pathlib import Path

    for name in args.backends.split(","):
        if name == "network":
            train = {
                "n_images": args.train_images,
                "patches_per_image": 16,
                "patch": 64,
                "epochs": args.network_epochs,
            }
            cfg = _merge(
                DEFAULT_CONFIG,
                base | {"backend": {"name": "network", "kwargs": {"network": "srcnn"}, "train": train}},
            )
        elif name == "latent_diffusion":
            train = {
                "n_images": args.train_images,
                "patches_per_image": 16,
                "patch": 64,
                "ae_epochs": args.ae_epochs,
                "unet_epochs": args.unet_epochs,
            }
            cfg = _merge(
                DEFAULT_CONFIG,
                base
                | {
                    "backend": {
                        "name": "latent_diffusion",
                        "kwargs": {"num_inference_steps": 20},
                        "train": train,
                    }
                },
            )
        else:
            raise SystemExit(f"unknown backend {name!r}: use network or latent_diffusion")
        t = time.time()
        rows.append((name, _build_backend(cfg, Path(cache), train_idx), time.time() - t))
    print(f"{len(hr_test)} test patches 64x64 HR (x{s}), shave {s}")
    for name, be, train_s in rows:
        out = be(lr_test, s)
        print(
            f"{name:18s} PSNR {psnr(out, hr_test, s).mean():.2f} dB  SSIM {ssim(out, hr_test, s).mean():.4f}"
            f"  (training {train_s:.0f} s)"
        )


if __name__ == "__main__":
    main()
