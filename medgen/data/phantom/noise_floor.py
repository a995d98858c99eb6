"""How much of a phantom x4 super-resolution target is recoverable at a given dose (``noise_scale``).

    python -m medgen.data.phantom.noise_floor --size 1024 --indices 3 11 --noise-scales 1 0.25 0

For each ``noise_scale`` prints, averaged over the studies: PSNR of the render against the noiseless render of
the same study (the ceiling that quantum noise alone puts on any SR method judged against that render), and
the PSNR of bicubic and Lanczos x4 reconstructions (anti-aliased bicubic downsampling, the SR bundle's clean
LR) against it. PSNR on [0, 1] with data_range 1 and a 4-px border shave, like the SR evaluation.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from medgen.data.phantom.render import render_phantom


def psnr(a: np.ndarray, b: np.ndarray, shave: int = 4) -> float:
    """PSNR in dB with peak 1 (``data_range=1``) after a ``shave``-pixel border crop."""
    if shave:
        a, b = a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave]
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def noise_floor(
    indices: Sequence[int], size: int = 1024, noise_scales: Sequence[float] = (1.0, 0.25, 0.0), scale: int = 4
) -> dict[float, dict[str, float]]:
    """Mean PSNRs per ``noise_scale``: ``vs_noiseless``, ``bicubic`` and ``lanczos`` (x``scale`` round trip)."""
    from medgen.transforms.degradation import downsample, upsample

    out: dict[float, dict[str, float]] = {}
    clean = {i: render_phantom(i, size, noise_scale=0.0).image for i in indices}
    for ns in noise_scales:
        rows = []
        for i in indices:
            hr = render_phantom(i, size, noise_scale=ns).image
            lr = downsample(hr[None], scale, "bicubic")
            row = [psnr(hr, clean[i])]
            row += [
                psnr(np.clip(np.asarray(upsample(lr, scale, m))[0], 0, 1), hr) for m in ("bicubic", "lanczos")
            ]
            rows.append(row)
        mean = np.mean(rows, axis=0)
        out[float(ns)] = {"vs_noiseless": mean[0], "bicubic": mean[1], "lanczos": mean[2]}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--indices", type=int, nargs="+", default=[3, 11])
    parser.add_argument("--noise-scales", type=float, nargs="+", default=[1.0, 0.25, 0.0])
    args = parser.parse_args(argv)
    print("| noise_scale | PSNR vs noiseless render | bicubic x4 | lanczos x4 |")
    print("|---|---|---|---|")
    for ns, r in noise_floor(args.indices, args.size, args.noise_scales).items():
        print(f"| {ns:g} | {r['vs_noiseless']:.2f} | {r['bicubic']:.2f} | {r['lanczos']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
