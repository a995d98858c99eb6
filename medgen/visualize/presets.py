"""Figure of the four enhancement presets and an x4 degradation pair on a phantom radiograph.

``python -m medgen.visualize.presets --out docs/figures/transforms_presets.png``

Top row: the phantom image and each preset, titled with :func:`image_statistics`. Bottom row: an HR crop,
its x4 LR from :class:`PairedDegradation` (bicubic, blur sigma 1, Poisson peak 1000, seed 0) and the
bicubic and Lanczos upsampling baselines with their PSNR against HR (data_range 1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from medgen.transforms.degradation import PairedDegradation, upsample
from medgen.transforms.display import PRESETS, EnhancePreset, image_statistics
from medgen.visualize.pyplot import pyplot


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(1.0 / mse) if mse > 0 else float("inf")


def make_figure(out: str | Path, size: int = 256, index: int = 0, seed: int = 0) -> Path:
    """Render the figure for phantom study ``index`` (``size`` px) to ``out`` (PNG) and return its path."""
    from medgen.data.phantom import render_phantom

    img = render_phantom(index, size=size, seed=seed).image
    return draw_presets_figure(img, out, seed=seed)


def draw_presets_figure(image: np.ndarray, out: str | Path, seed: int = 0) -> Path:
    """The figure for a (H, W) or (1, H, W) image in [0, 1]: presets on top, an x4 pair below (PNG)."""
    img = np.asarray(image, dtype=np.float32).reshape(-1, *np.shape(image)[-2:])[:1]
    size = min(img.shape[-2:])
    plt = pyplot()
    fig, axes = plt.subplots(2, 5, figsize=(12.5, 5.6))
    panels = [("original", img)] + [(name, EnhancePreset(name)(img)) for name in PRESETS]
    for ax, (name, im) in zip(axes[0], panels):
        s = image_statistics(im)
        ax.imshow(im[0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name}\nstd {s['contrast']:.3f}  H {s['entropy']:.2f} bit", fontsize=8)
    c = size // 4
    hr = img[:, c : c + size // 2, c : c + size // 2]
    lr, hr = PairedDegradation(scale=4, blur_sigma=1.0, poisson_peak=1000).set_random_state(seed)(hr)
    lr = np.asarray(lr)
    rows = [("HR crop", hr), ("LR x4 (blur 1, Poisson 1000)", lr)]
    rows += [
        (f"{m} x4: {_psnr(upsample(lr, 4, m)[0], hr[0]):.2f} dB", upsample(lr, 4, m))
        for m in ("bicubic", "lanczos")
    ]
    for ax, (name, im) in zip(axes[1], rows):
        ax.imshow(np.asarray(im)[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/transforms_presets.png")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(make_figure(args.out, args.size, args.index, args.seed))


if __name__ == "__main__":
    main()
