"""Probe one classifier recipe of the attention-SR pipeline: train once, print test mean / per-class AUROC.

    OMP_NUM_THREADS=1 python benchmarks/attention_classifier_probe.py --n 500 --stem_width 32 --stem_depth 2

Same phantom, patient-level split and ``train_classifier`` as ``run_pipeline`` (one seed, 1 thread); the options
change the data size and the ViT (patch, width, depth, heads, conv-stem width/depth). Used to choose the pipeline's
classifier (docs/attention_sr.md).
"""
import sys, time, json, argparse, torch, numpy as np
torch.set_num_threads(1)
ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=500); ap.add_argument("--epochs", type=int, default=25)
ap.add_argument("--patch", type=int, default=16); ap.add_argument("--dim", type=int, default=128)
ap.add_argument("--depth", type=int, default=4); ap.add_argument("--heads", type=int, default=2)
ap.add_argument("--lr", type=float, default=1e-3); ap.add_argument("--bs", type=int, default=32)
ap.add_argument("--seed", type=int, default=0); ap.add_argument("--size", type=int, default=128)
ap.add_argument("--tag", default="x"); ap.add_argument("--cache", default="outputs/attention_classifier_probe"); ap.add_argument("--stem_width", type=int, default=None); ap.add_argument("--stem_depth", type=int, default=1)
a = ap.parse_args()
from pathlib import Path
import medgen
from medgen.engines.attention_sr_pipeline import _render, DEFAULT_CONFIG, _merge
from medgen.data.split import patient_split
from medgen.data.labels import PHANTOM_LABELS
from medgen.engines.classifier import train_classifier, predict_probabilities
from medgen.metrics.classification import classification_report
cfg = _merge(DEFAULT_CONFIG, {"data": {"n_images": a.n, "size": a.size}})
cache = Path(a.cache); cache.mkdir(exist_ok=True, parents=True)
t0 = time.time(); data = _render(cfg, cache); print("render", time.time() - t0, flush=True)
items = [{"index": i, "patient_id": str(p)} for i, p in enumerate(data["patient_ids"])]
tr, va, te = patient_split(items, [0.7, 0.1, 0.2], seed=0)
# fixed test set: the test patients of the first 500 studies (same as pipeline) when n>=500
tr = [i["index"] for i in tr]; te = [i["index"] for i in te]
X = torch.from_numpy(data["images"]); Y = torch.from_numpy(data["labels"])
torch.manual_seed(a.seed)
net = medgen.create_network("vit_phantom_small", labels=PHANTOM_LABELS, img_size=a.size, patch_size=a.patch,
                            embed_dim=a.dim, depth=a.depth, num_heads=a.heads, conv_stem=True, stem_width=a.stem_width, stem_depth=a.stem_depth)
print("params", sum(p.numel() for p in net.parameters()), flush=True)
torch.manual_seed(a.seed); t0 = time.time()
train_classifier(net, X[tr], Y[tr], epochs=a.epochs, batch_size=a.bs, lr=a.lr, seed=a.seed, progress=False)
tt = time.time() - t0
rep = classification_report(Y[te].numpy(), predict_probabilities(net, X[te]).numpy(), PHANTOM_LABELS, seed=0, n_boot=50)
pc = {k: round(v["auroc"], 3) for k, v in rep["per_class"].items()}
print(json.dumps({"tag": a.tag, "args": vars(a), "n_train": len(tr), "n_test": len(te), "train_s": round(tt), "mean_auroc": rep["mean_auroc"], "per_class": pc}), flush=True)
torch.save(net.state_dict(), cache / f"clf_{a.tag}.pt")
