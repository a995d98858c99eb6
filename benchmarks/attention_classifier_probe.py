"""Probe one classifier recipe of the attention-SR pipeline: train once, print test mean / per-class AUROC.

    OMP_NUM_THREADS=1 python benchmarks/attention_classifier_probe.py --n 500 --stem_width 32 --stem_depth 2

Same phantom, patient-level split and base training as ``run_pipeline`` (its ``_split`` and
``_train_base_classifier``; one seed, 1 thread); the options change the data size and the ViT (patch, width,
depth, heads, conv-stem width/depth). Used to choose the pipeline's classifier (docs/attention_sr.md).
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
    ap.add_argument("--stem_width", type=int, default=None)
    ap.add_argument("--stem_depth", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default="outputs/attention_classifier_probe")
    a = ap.parse_args()
    torch.set_num_threads(1)

    from medgen.data.labels import PHANTOM_LABELS
    from medgen.engines.attention_sr_pipeline import (
        DEFAULT_CONFIG,
        _merge,
        _render,
        _split,
        _train_base_classifier,
    )
    from medgen.engines.classifier import predict_probabilities
    from medgen.metrics.classification import classification_report

    kwargs = dict(img_size=a.size, patch_size=a.patch, embed_dim=a.dim, depth=a.depth, num_heads=a.heads)
    kwargs |= dict(conv_stem=True, stem_width=a.stem_width, stem_depth=a.stem_depth)
    cfg = _merge(
        DEFAULT_CONFIG,
        {
            "data": {"n_images": a.n, "size": a.size},
            "classifier": {"kwargs": kwargs, "epochs": a.epochs, "lr": a.lr, "batch_size": a.bs},
        },
    )
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    data = _render(cfg, cache)
    tr, _va, te = _split(cfg, data)
    x, y = torch.from_numpy(data["images"]), torch.from_numpy(data["labels"])
    t0 = time.time()
    net = _train_base_classifier(cfg, x[tr], y[tr], a.seed, progress=False)
    rep = classification_report(
        y[te].numpy(), predict_probabilities(net, x[te]).numpy(), PHANTOM_LABELS, seed=0, n_boot=50
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
            }
        )
    )


if __name__ == "__main__":
    main()
