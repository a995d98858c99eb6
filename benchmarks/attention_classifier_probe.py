"""Probe one classifier recipe of the attention-SR pipeline: train once, print test AUROC and localisation (JSON).

    OMP_NUM_THREADS=1 python benchmarks/attention_classifier_probe.py --n 500 --methods head,rollout
    OMP_NUM_THREADS=1 python benchmarks/attention_classifier_probe.py --head cls --local_attention 0 --csra_temperature 1

Same phantom, patient-level split and base training as ``run_pipeline`` (its ``phantom_split`` and
``train_base_classifier``; one seed, 1 thread); the defaults are the pipeline's classifier (csra head,
temperature 10, local attention radius 2, 32-wide 2-conv stem), the options change the data size and the ViT
(patch, width, depth, heads, conv stem, head, registers, local attention, warm-up). ``--methods`` scores attention
maps on the test findings' masks (pointing game at tolerance 0 and ``--tolerance`` px); ``--figure`` draws the
first class-specific one. Used to choose the pipeline's classifier (docs/attention_sr.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="phantom studies (70/10/20 patient split)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--stem_width", type=int, default=32)
    ap.add_argument("--stem_depth", type=int, default=2)
    ap.add_argument("--head", default="csra", help="ViTClassifier head: csra (pipeline) or cls")
    ap.add_argument("--csra_lambda", type=float, default=1.0)
    ap.add_argument("--csra_temperature", type=float, default=10.0)
    ap.add_argument("--reg_tokens", type=int, default=0, help="ViT register tokens")
    ap.add_argument(
        "--local_attention", type=int, default=2, help="local attention radius in tokens; 0 = global"
    )
    ap.add_argument("--grad_clip", type=float, default=1.0, help="gradient-norm clip; 0 = off")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (training numerics depend on it)")
    ap.add_argument("--warmup", type=float, default=0.15, help="one-cycle warm-up fraction")
    ap.add_argument(
        "--methods",
        default="",
        help="comma-separated attention maps to score on the test findings' masks (pointing game, tolerance 0), "
        "e.g. rollout,grad_rollout,head",
    )
    ap.add_argument(
        "--head_shifts", type=int, default=2, help="shift-and-stitch passes per axis of the head maps"
    )
    ap.add_argument("--tolerance", type=float, default=8.0, help="second pointing-game tolerance in px")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--figure", default=None, help="PNG: 8 test findings, each over its class map (first method)"
    )
    ap.add_argument("--cache", default="outputs/attention_classifier_probe")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from medgen.data.labels import PHANTOM_LABELS
    from medgen.engines.attention_sr import (
        load_pipeline_config,
        phantom_split,
        render_phantom_set,
        score_maps,
        train_base_classifier,
    )
    from medgen.engines.classifier import predict_probabilities
    from medgen.inferers.attention import CLASS_METHODS
    from medgen.metrics.classification import classification_report

    kwargs = dict(img_size=a.size, patch_size=a.patch, embed_dim=a.dim, depth=a.depth, num_heads=a.heads)
    kwargs |= dict(conv_stem=True, stem_width=a.stem_width, stem_depth=a.stem_depth, head=a.head)
    kwargs |= dict(reg_tokens=a.reg_tokens, local_attention=a.local_attention or None)
    if a.head == "csra":
        kwargs |= dict(csra_lambda=a.csra_lambda, csra_temperature=a.csra_temperature)
    cfg = load_pipeline_config(
        {
            "data": {"n_images": a.n, "size": a.size},
            "classifier": {
                "kwargs": kwargs,
                "epochs": a.epochs,
                "lr": a.lr,
                "batch_size": a.bs,
                "warmup": a.warmup,
                "grad_clip": a.grad_clip or None,
            },
        },
    )
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    d = cfg["data"]
    data = render_phantom_set(d["n_images"], d["size"], d["phantom_seed"], cache)
    tr, _va, te = phantom_split(data["patient_ids"], d["fractions"], d["phantom_seed"])
    x, y = torch.from_numpy(data["images"]), torch.from_numpy(data["labels"])
    t0 = time.time()
    net = train_base_classifier(cfg["classifier"], x[tr], y[tr], a.seed, PHANTOM_LABELS, progress=False)
    rep = classification_report(
        y[te].numpy(), predict_probabilities(net, x[te]).numpy(), PHANTOM_LABELS, seed=0, n_boot=50
    )
    masks = [{n: data["masks"][i, j] for j, n in enumerate(PHANTOM_LABELS)} for i in te]
    methods = [m for m in a.methods.split(",") if m]
    specs = {m: {"shifts": a.head_shifts} if m == "head" else {} for m in methods}
    scores = score_maps(net, x[te], masks, specs, PHANTOM_LABELS, (0.0, a.tolerance))
    loc = {
        m: {
            "pointing_game": round(r["overall"]["pointing_game"], 3),
            f"pointing_game_tol{a.tolerance:g}": round(r["pointing_game_at"][f"{a.tolerance:g}"], 3),
            "uniform": round(r["overall"]["uniform_baseline"], 3),
            "per_finding": {k: round(v["pointing_game"], 2) for k, v in r["per_finding"].items()},
        }
        for m, r in scores.reports.items()
    }
    first_maps = next((scores.maps[m] for m in methods if m in CLASS_METHODS), None)
    if a.figure and first_maps is not None:
        from medgen.visualize.attention import save_class_attention_figure

        pairs = [
            (k, j) for k, i in enumerate(te) for j in range(len(PHANTOM_LABELS)) if data["masks"][i, j].any()
        ]
        pairs = pairs[:: max(1, len(pairs) // 8)][:8]
        save_class_attention_figure(
            x[te][[k for k, _ in pairs]],
            torch.stack([first_maps[k, j] for k, j in pairs]),
            a.figure,
            masks=[data["masks"][te[k], j] for k, j in pairs],
            titles=[PHANTOM_LABELS[j][:18] for _, j in pairs],
        )
    print(
        json.dumps(
            {
                "args": vars(a),
                "params": sum(p.numel() for p in net.parameters()),
                "n_train": len(tr),
                "n_test": len(te),
                "train_s": round(time.time() - t0),
                "mean_auroc": rep["mean_auroc"],
                "per_class": {k: v["auroc"] and round(v["auroc"], 3) for k, v in rep["per_class"].items()},
                "localization": loc,
            }
        )
    )


if __name__ == "__main__":
    main()
