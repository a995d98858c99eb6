"""Do the ViT's attention maps point at the findings? Pointing game / mass share per map method, one seed.

    OMP_NUM_THREADS=1 python benchmarks/attention_localization.py [--seed 0] [--methods head,rollout,grad_rollout] [--tolerance 8]

Trains the base classifier as ``medgen.engines.attention_sr.run_pipeline`` does for one seed (500
phantom studies at 128 px, patient-level 70/10/20 split, ``vit_phantom_small`` with the pipeline's kwargs,
``train_classifier(epochs=25, batch_size=32, lr=1e-3)``, initial weights seeded: the pipeline's own
``train_base_classifier``); the checkpoint is cached under ``--cache``. Then scores each map method on the test images' findings with masks (``--tolerance`` px, default 0)
beside the uniform-map baseline:

* ``rollout`` / ``cls``: one class-agnostic map per image, scored against every finding of that image;
* ``head`` / ``grad_rollout`` / ``gradcam`` (class-specific methods): the map of finding n is the class-n map.

A method may carry keyword options in brackets, e.g. ``head[shifts=1]`` (the token grid without shift-and-stitch),
``head[combined=1]`` (the class-agnostic map that ``compute_attention_maps(method="head")`` gives the pipeline for
region selection: class maps weighted by the sigmoid probabilities); for a CLS-token classifier
``grad_rollout[start_layer=3]``, ``grad_rollout[head_fusion=max]``, ``grad_rollout[weighting=abs]``
(``medgen.inferers.attention.gradient_rollout``, which refuses the pipeline's csra head). The column
"detected" repeats the pointing game on the findings the classifier calls positive (probability > 0.5).
Prints one table row per method (and, with ``--per-finding``, the per-finding pointing game).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
import torch


def train_or_load(seed: int, cache: Path, n_images: int = 500, checkpoint: str | None = None):
    """The pipeline's base classifier for ``seed`` on ``n_images`` studies (trained once, then loaded from
    ``cache``), or the classifier in ``checkpoint`` (e.g. ``classifier_base_seed1.pt`` of a pipeline run)."""
    import medgen
    from medgen.data.labels import PHANTOM_LABELS
    from medgen.engines.attention_sr import (
        cache_key,
        load_pipeline_config,
        phantom_split,
        render_phantom_set,
        train_base_classifier,
    )
    from medgen.networks.nets.vit_classifier import load_classifier_checkpoint, save_classifier_checkpoint

    cfg = load_pipeline_config({"data": {"n_images": n_images}})
    d = cfg["data"]
    cache.mkdir(parents=True, exist_ok=True)
    data = render_phantom_set(d["n_images"], d["size"], d["phantom_seed"], cache)
    tr, _va, te = phantom_split(data["patient_ids"], d["fractions"], d["phantom_seed"])
    images = torch.from_numpy(data["images"])
    labels = torch.from_numpy(data["labels"])
    c = cfg["classifier"]  # key on what the classifier depends on (not on SR-only data fields)
    ckpt = (
        cache
        / f"classifier_{cache_key(d['n_images'], d['size'], d['phantom_seed'], d['fractions'], c, seed, 'seeded-init')}.pt"
    )
    train_s = None
    if checkpoint is not None:
        ckpt = Path(checkpoint)
    if ckpt.is_file():
        net = medgen.create_network(c["name"], labels=PHANTOM_LABELS, **c["kwargs"])
        load_classifier_checkpoint(ckpt, net)
    else:
        t0 = time.time()
        net = train_base_classifier(c, images[tr], labels[tr], seed, PHANTOM_LABELS, progress=False)
        train_s = time.time() - t0
        save_classifier_checkpoint(ckpt, net, seed=seed)
    return net.eval(), data, tr, te, train_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=500, help="phantom studies (the quick config uses 800)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="score this classifier (a pipeline run's classifier_base_seed<k>.pt)",
    )
    p.add_argument("--methods", default="head,rollout,cls,gradcam")
    p.add_argument(
        "--tolerance", type=float, default=0.0, help="pointing-game tolerance in px (8 = 15 px at 224)"
    )
    p.add_argument("--cache", default="outputs/attention_localization")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--per-finding", action="store_true")
    p.add_argument(
        "--figure",
        default=None,
        help="PNG: 8 test findings, rollout (row 2) vs the --figure-method class map (row 3)",
    )
    p.add_argument("--figure-method", default="head", help="class-specific map of the figure's third row")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from medgen.data.labels import PHANTOM_LABELS
    from medgen.engines.attention_sr import score_maps
    from medgen.engines.classifier import predict_probabilities
    from medgen.inferers.attention import compute_attention_maps, compute_class_attention_maps
    from medgen.metrics.classification import classification_report
    from medgen.metrics.localization import localization_report

    net, data, tr, te, train_s = train_or_load(args.seed, Path(args.cache), args.n, args.checkpoint)
    images = torch.from_numpy(data["images"])[te]
    masks = [{n: data["masks"][i, j] for j, n in enumerate(PHANTOM_LABELS)} for i in te]
    probs = predict_probabilities(net, images).numpy()
    auroc = classification_report(data["labels"][te], probs, PHANTOM_LABELS, n_boot=20)["mean_auroc"]
    detected = [
        {n: m if probs[k, j] > 0.5 else np.zeros_like(m) for j, (n, m) in enumerate(ms.items())}
        for k, ms in enumerate(masks)
    ]
    n_find = sum(int(m.any()) for ms in masks for m in ms.values())
    print(
        f"{('checkpoint ' + args.checkpoint) if args.checkpoint else f'seed {args.seed}'}: {len(tr)} train / {len(te)} test images, {n_find} test findings with masks; "
        f"test mean AUROC {auroc:.3f}"
        + (f"; trained in {train_s:.0f} s" if train_s else " (cached classifier)")
    )
    print(
        "| map | pointing game | mass share | uniform (random point) | n | detected: pointing game (n) | time (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    specs = {}
    for spec in re.findall(r"[\w]+(?:\[[^\]]*\])?", args.methods):
        method, _, opts = spec.partition("[")
        kw = {k: (int(v) if v.lstrip("-").isdigit() else v) for k, v in re.findall(r"(\w+)=([\w-]+)", opts)}
        specs[spec] = {"method": method, **kw}
    tols = [args.tolerance]
    scores = score_maps(net, images, masks, specs, PHANTOM_LABELS, tols)
    on_detected = score_maps(net, images, detected, specs, PHANTOM_LABELS, tols, maps=scores.maps).reports
    per = {}
    for spec, rep in scores.reports.items():
        o, d = rep["overall"], on_detected[spec]["overall"]
        print(
            f"| {spec} | {o['pointing_game']:.3f} | {o['mass_share']:.3f} | {o['uniform_pointing_baseline']:.3f} "
            f"| {o['n']} | {d.get('pointing_game', float('nan')):.3f} ({d['n']}) | {scores.seconds[spec]:.1f} |"
        )
        per[spec] = rep["per_finding"]
    # ceiling of any map on the ViT's token grid: per finding, a one-hot map on the token that holds most of the
    # mask, upsampled like the real maps (bilinear; its maximum lies at that token's centre pixel)
    from medgen.inferers.attention import tokens_to_maps

    grid, patch = tuple(net.grid_size), images.shape[-1] // net.grid_size[0]
    m = torch.from_numpy(data["masks"][te]).float()
    share = torch.nn.functional.avg_pool2d(m.flatten(0, 1)[:, None], patch).reshape(len(te), m.shape[1], -1)
    best = torch.nn.functional.one_hot(share.argmax(-1), share.shape[-1]).float()
    o = localization_report(
        tokens_to_maps(best, grid, tuple(images.shape[-2:])),
        masks,
        labels=PHANTOM_LABELS,
        tolerance=args.tolerance,
    )
    o = o["overall"]
    print(
        f"| oracle token (ceiling on the {grid[0]}x{grid[1]} grid) | {o['pointing_game']:.3f} | {o['mass_share']:.3f} "
        f"| {o['uniform_pointing_baseline']:.3f} | {o['n']} | - | - |"
    )
    if args.figure:
        from medgen.visualize.attention import save_class_attention_figure

        pairs = [
            (k, j)
            for k in range(len(te))
            for j in range(len(PHANTOM_LABELS))
            if data["masks"][te[k], j].any()
        ]
        pairs = pairs[:: max(1, len(pairs) // 8)][:8]
        ks = [k for k, _ in pairs]
        _, roll = compute_attention_maps(net, images[ks], method="rollout")
        _, cmaps = compute_class_attention_maps(net, images[ks], method=args.figure_method)
        save_class_attention_figure(
            images[ks],
            [roll, torch.stack([cmaps[i, j] for i, (_, j) in enumerate(pairs)])],
            args.figure,
            masks=[data["masks"][te[k], j] for k, j in pairs],
            titles=[f"{PHANTOM_LABELS[j][:18]} p={probs[k, j]:.2f}" for k, j in pairs],
        )
        print(f"figure: {args.figure}")
    if args.per_finding:
        names = sorted({n for r in per.values() for n in r})
        print("\n| finding | n | " + " | ".join(per) + " | uniform |")
        print("|---|---|" + "---|" * (len(per) + 1))
        for n in names:
            first = next(iter(per.values()))[n]
            cells = " | ".join(f"{per[m][n]['pointing_game']:.2f}" for m in per)
            print(f"| {n} | {first['n']} | {cells} | {first['uniform_pointing_baseline']:.3f} |")


if __name__ == "__main__":
    main()
