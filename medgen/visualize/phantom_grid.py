"""Draw a grid of phantom studies with finding masks outlined and labels printed.

``python -m medgen.visualize.phantom_grid --out docs/figures/phantom_grid.png``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medgen.data.labels import PHANTOM_LABELS
from medgen.visualize.pyplot import pyplot

COLOURS = [
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#fabed4",
]


def pick_indices(n_tiles: int, seed: int) -> list[int]:
    """First studies covering every finding at least once, then normal ones, so the grid shows all labels."""
    from medgen.data.phantom import sample_study

    chosen, seen, normals = [], set(), []
    for i in range(400):
        spec = sample_study(i, seed)
        names = {f.name for f in spec.findings}
        if names - seen and len(chosen) < n_tiles - 2:
            chosen.append(i)
            seen |= names
        elif not names and len(normals) < 2:
            normals.append(i)
        if len(seen) == len(PHANTOM_LABELS) and len(normals) == 2:
            break
    extra = [i for i in range(400) if i not in chosen and i not in normals]
    return sorted((chosen + normals + extra)[:n_tiles])


def draw_grid(out: str | Path, size: int = 320, cols: int = 4, rows: int = 3, seed: int = 0) -> Path:
    from medgen.data.phantom import render_phantom

    plt = pyplot()

    indices = pick_indices(cols * rows, seed)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 2.95), dpi=100)
    for ax, i in zip(axes.ravel(), indices):
        s = render_phantom(i, size, seed)
        ax.imshow(s.image, cmap="gray", vmin=0, vmax=1, interpolation="antialiased")
        present = [k for k in PHANTOM_LABELS if s.masks[k].any()]
        for k in present:
            ax.contour(
                s.masks[k].astype(float),
                levels=[0.5],
                colors=[COLOURS[PHANTOM_LABELS.index(k)]],
                linewidths=0.8,
            )
        title = ", ".join(present) if present else "No finding"
        ax.set_title(f"#{i} CTR {s.ctr:.2f}\n{title}", fontsize=6.5)
        ax.axis("off")
    for ax in axes.ravel()[len(indices) :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=c, label=k) for k, c in zip(PHANTOM_LABELS, COLOURS)]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=6.5, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    try:  # keep the committed PNG small: 256-colour palette is plenty for a greyscale grid with outlines
        from PIL import Image

        Image.open(out).convert("RGB").quantize(colors=96, dither=Image.Dither.NONE).save(out, optimize=True)
    except Exception:  # noqa: BLE001 - the unquantised figure is still valid
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("docs/figures/phantom_grid.png"))
    p.add_argument("--size", type=int, default=320, help="render size of each phantom (pixels)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(draw_grid(args.out, size=args.size, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
