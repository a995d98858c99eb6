"""Figures for attention-guided SR: attention overlays with selected boxes and finding-mask outlines.

``python -m medgen.visualize.attention --report runs/attention_sr --out docs/figures/attention_overlay.png``
re-draws the overlay figure from a pipeline run's saved arrays.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medgen.visualize.pyplot import pyplot

__all__ = ["save_attention_overlay", "save_class_attention_figure", "save_enhancement_figure"]


def _np(a: Any) -> np.ndarray:
    return np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=np.float32)


def _grey(images: Any) -> np.ndarray:
    """(B, 1, H, W) or (B, H, W) -> (B, H, W) float32."""
    imgs = _np(images)
    return imgs[:, 0] if imgs.ndim == 4 else imgs


def _save(fig: Any, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def save_attention_overlay(
    images: Any,
    maps: Any,
    path: str | Path,
    boxes: Sequence[Any] | None = None,
    masks: Sequence[Any] | None = None,
    titles: Sequence[str] | None = None,
    alpha: float = 0.45,
    dpi: int = 60,
) -> Path:
    """One column per image: the radiograph, then the attention map over it with boxes (cyan) and masks (red).

    Args:
        images: (B, 1, H, W) or (B, H, W) in [0, 1].
        maps: (B, H, W) attention in [0, 1].
        boxes: per image (K, 4) (x0, y0, x1, y1) boxes.
        masks: per image a (H, W) bool union of finding masks.
    """
    plt = pyplot()
    from matplotlib.patches import Rectangle

    imgs = _grey(images)
    amaps = _np(maps)
    n = len(imgs)
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(imgs[i], cmap="gray", vmin=0, vmax=1)
        axes[1, i].imshow(imgs[i], cmap="gray", vmin=0, vmax=1)
        axes[1, i].imshow(amaps[i], cmap="jet", alpha=alpha, vmin=0, vmax=1)
        if masks is not None and np.any(masks[i]):
            axes[1, i].contour(_np(masks[i]) > 0.5, levels=[0.5], colors="red", linewidths=0.8)
        if boxes is not None:
            for x0, y0, x1, y1 in _np(boxes[i]).reshape(-1, 4):
                axes[1, i].add_patch(
                    Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="cyan", lw=1)
                )
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=7)
        for ax in axes[:, i]:
            ax.set_axis_off()
    fig.tight_layout()
    return _save(fig, path, dpi)


def save_class_attention_figure(
    images: Any,
    maps: Sequence[Any],
    path: str | Path,
    masks: Sequence[Any],
    titles: Sequence[str] | None = None,
    alpha: float = 0.45,
    dpi: int = 60,
) -> Path:
    """One column per (image, finding): the radiograph with the finding's mask (red) over that finding's map.

    Args:
        images: (N, 1, H, W) or (N, H, W) in [0, 1].
        maps: per column an (H, W) map in [0, 1] (e.g. channel ``labels.index(finding)`` of a class map), or a
            list of such maps per row: rows of maps (e.g. ``[rollout, grad_rollout]``) drawn under the image row.
        masks: per column a (H, W) bool finding mask.
        titles: per column, e.g. the finding name.
    """
    plt = pyplot()

    imgs = _grey(images)
    rows = [_np(m) for m in maps] if isinstance(maps, (list, tuple)) else [_np(maps)]
    n = len(imgs)
    if any(len(r) != n for r in rows) or len(masks) != n:
        raise ValueError(
            f"save_class_attention_figure: {n} images need {n} maps per row and {n} masks; "
            f"got rows of {[len(r) for r in rows]} maps and {len(masks)} masks"
        )
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(2.0 * n, 2.1 * (1 + len(rows))), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(imgs[i], cmap="gray", vmin=0, vmax=1)
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=7)
        for r, amaps in enumerate(rows, start=1):
            axes[r, i].imshow(imgs[i], cmap="gray", vmin=0, vmax=1)
            axes[r, i].imshow(amaps[i], cmap="jet", alpha=alpha, vmin=0, vmax=1)
            y, x = np.unravel_index(int(np.argmax(amaps[i])), amaps[i].shape)
            axes[r, i].plot([x], [y], marker="+", color="white", ms=8, mew=1.5)
        for r in range(1 + len(rows)):
            if np.any(_np(masks[i])):
                axes[r, i].contour(_np(masks[i]) > 0.5, levels=[0.5], colors="red", linewidths=0.8)
            axes[r, i].set_axis_off()
    fig.tight_layout()
    return _save(fig, path, dpi)


def save_enhancement_figure(rows: Sequence[tuple[str, Any]], path: str | Path, dpi: int = 80) -> Path:
    """A row of same-sized crops with titles, e.g. LR / bicubic / backend / true HR of one region."""
    plt = pyplot()

    fig, axes = plt.subplots(1, len(rows), figsize=(2.2 * len(rows), 2.4), squeeze=False)
    for ax, (title, img) in zip(axes[0], rows):
        a = _np(img)
        ax.imshow(a.reshape(a.shape[-2:]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    return _save(fig, path, dpi)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--report", required=True, help="output_dir of an attention-SR pipeline run")
    p.add_argument("--out", required=True, help="PNG path to write")
    args = p.parse_args(argv)
    arrays = Path(args.report) / "figure_arrays.npz"
    if not arrays.is_file():
        raise SystemExit(
            f"{arrays} not found: run the attention-SR pipeline (medgen run cxr_attention_sr_classifier pipeline) first"
        )
    d = np.load(arrays)
    boxes = [d["boxes"][i][d["boxes"][i][:, 2] > 0] for i in range(len(d["images"]))]
    save_attention_overlay(d["images"], d["maps"], args.out, boxes=boxes, masks=d["masks"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
