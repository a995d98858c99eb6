"""Where one training epoch of the attention-SR pipeline's classifier spends its time, with and without MONAI
metadata tracking.

    python benchmarks/classifier_epoch.py [--n 352] [--threads 2] [--repeats 3]

The network, image size, batch size and augmentations are the pipeline's (``pipeline.yaml``: ViT with conv stem,
128 px, batch 32). Random images stand in for the phantom: the cost does not depend on the pixels. Printed per
epoch (median of ``repeats``): the augmentations + collation alone, forward/backward/step alone on the batches
they produced, and a whole ``train_classifier`` epoch (MONAI ``SupervisedTrainer``), each with MONAI's
``MetaTensor`` tracking on (MONAI's default) and off (what ``train_classifier`` does).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=352, help="training images (the demo's train split: 350)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from monai.data import DataLoader, Dataset, set_track_meta

    import medgen
    from medgen.engines.attention_sr.config import load_pipeline_config
    from medgen.engines.classifier import classifier_train_transforms, train_classifier

    c = load_pipeline_config()["classifier"]
    size = int(c["kwargs"]["img_size"])
    names = [f"finding{i}" for i in range(6)]
    g = torch.Generator().manual_seed(0)
    images = torch.rand(args.n, 1, size, size, generator=g)
    labels = (torch.rand(args.n, len(names), generator=g) > 0.8).float()

    def net() -> torch.nn.Module:
        torch.manual_seed(0)
        return medgen.create_network(c["name"], labels=names, **c["kwargs"])

    def loader() -> DataLoader:
        items = [{"image": images[i], "label": labels[i]} for i in range(args.n)]
        tf = classifier_train_transforms(size=size)
        return DataLoader(Dataset(items, transform=tf), batch_size=c["batch_size"], shuffle=True)

    def med(fn) -> float:
        fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    rows = []
    for track in (True, False):
        set_track_meta(track)
        batches = list(loader())
        model = net()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step_all(model=model, opt=opt, batches=batches) -> None:
            for b in batches:
                loss = model(b["image"]).float().mean()
                loss.backward()
                opt.step()
                opt.zero_grad()

        t_aug = med(lambda: list(loader()))
        t_step = med(step_all)
        set_track_meta(True)  # train_classifier sets it off itself; with tracking on its loader would still
        # see MetaTensors only when the helper is bypassed, so the whole epoch is measured once, as shipped
        rows.append((track, t_aug, t_step, type(batches[0]["image"]).__name__))
    t_epoch = med(lambda: train_classifier(net(), images, labels, epochs=1, batch_size=c["batch_size"],
                                           lr=c["lr"], progress=False))  # fmt: skip
    print(
        f"CPU: {_cpu()}; torch {torch.__version__}, {args.threads} threads; os.cpu_count()={os.cpu_count()}"
    )
    print(f"classifier: {c['name']} {c['kwargs']}; {args.n} images of {size} px, batch {c['batch_size']}")
    print(
        f"{'meta tracking':<14} {'batch type':<11} {'augment+collate s':>18} {'fwd+bwd+step s':>15} {'sum s':>7}"
    )
    for track, t_aug, t_step, kind in rows:
        print(
            f"{'on' if track else 'off':<14} {kind:<11} {t_aug:>18.2f} {t_step:>15.2f} {t_aug + t_step:>7.2f}"
        )
    print(f"train_classifier, one epoch as shipped (tracking off inside): {t_epoch:.2f} s")


if __name__ == "__main__":
    main()
