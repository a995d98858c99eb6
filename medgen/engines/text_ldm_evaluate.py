"""Evaluation of the report-to-X-ray LDM, one command, protocol printed with the numbers.

What is measured (all on unenhanced images at the model's ``image_size``; generated images are sampled for the
*held-out* split's reports, image ``i`` seeded ``seed + i``):

* **Prompt consistency** -- a classifier trained here, independently of the generator, on the real training
  images (``vit_phantom_small`` at ``image_size``; its labels are the data's own, or parsed from the reports)
  scores the generated images; its per-finding AUROC against the findings parsed from each image's prompt
  (:func:`medgen.data.report_findings.parse_findings`) sits beside the same classifier's AUROC on the held-out
  real images against their labels. A generator that ignores its prompt scores 0.5.
* **FID and unbiased KID** (mean +/- std over subsets) between generated and held-out real images, with the
  feature extractor named: the consistency classifier's mean token embedding (a *proxy*: not comparable with
  published Inception / XRV FIDs) and, when ``xrv_weights`` is a local torchxrayvision DenseNet state dict, its
  pooled features. The real-vs-real figure (training images against the held-out ones) is reported beside them:
  the floor for that sample count.
* **Intra-prompt diversity**: mean MS-SSIM between the 4 samples of each of ``diversity_prompts`` prompts (lower
  is more diverse), beside MS-SSIM between real held-out images.
* **Guidance sweep**: consistency and FID/KID at each guidance scale.
* **Memorisation**: each generated image's nearest training image in the classifier's feature space (cosine
  distance) against the held-out real images' nearest training image; a figure of the closest pairs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["classifier_features", "evaluate_text_ldm", "train_consistency_classifier"]

logger = logging.getLogger(__name__)
FOCUS = ("Cardiomegaly", "Effusion")  # the findings the quick config is held to (AUROC >= 0.8)


@torch.no_grad()
def classifier_features(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Mean token embedding of the ViT's last block (``vit.forward_features``), (N, dim) float64."""
    model = model.eval()
    device = next(model.parameters()).device
    out = []
    for b in images.split(batch_size):
        tokens = model.vit.forward_features(b.to(device).float())
        out.append(tokens.mean(dim=1).double().cpu())
    return torch.cat(out).numpy()


def xrv_extractor(weights: str | Path, device: torch.device) -> Any:
    """torchxrayvision DenseNet-121 with a *local* state dict; returns ``images (N,1,H,W) [0,1] -> (N, 1024)``."""
    import torch.nn.functional as F
    import torchxrayvision as xrv

    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"xrv_weights={str(path)!r} is not a file: give a local torchxrayvision DenseNet-121 state dict "
            "(nothing is downloaded), or xrv_weights: null for the classifier features only"
        )
    net = xrv.models.DenseNet(weights=None)
    from medgen.networks.utils import read_checkpoint

    state = read_checkpoint(path)
    state = state.get("state_dict", state)
    net.load_state_dict(state, strict=False)
    net = net.to(device).eval()

    @torch.no_grad()
    def extract(images: torch.Tensor, batch_size: int = 32) -> np.ndarray:
        feats = []
        for b in images.split(batch_size):
            x = F.interpolate(b.to(device).float(), size=(224, 224), mode="bilinear", align_corners=False)
            feats.append(net.features2(x * 2048.0 - 1024.0).double().cpu())  # xrv's [-1024, 1024] input range
        return torch.cat(feats).numpy()

    return extract


def train_consistency_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    label_names: Sequence[str],
    path: str | Path | None,
    epochs: int = 30,
    kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> torch.nn.Module:
    """The evaluation's classifier: loaded from ``path`` when it was trained on the same size and labels, else
    trained on the real training images (never on generated ones) and saved there."""
    import medgen
    from medgen.engines.classifier import train_classifier
    from medgen.networks.utils import load_checkpoint, read_checkpoint, save_checkpoint

    size = int(images.shape[-1])
    config = {"labels": list(label_names), "img_size": size, **dict(kwargs or {})}
    model = medgen.create_network("vit_phantom_small", **config)
    if path is not None and Path(path).is_file():
        ckpt = read_checkpoint(path)
        if ckpt.get("classifier_config") == {k: v for k, v in config.items() if k != "labels"} and list(
            ckpt.get("labels", [])
        ) == list(label_names):
            logger.info("text LDM evaluation: consistency classifier loaded from %s", path)
            return load_checkpoint(path, model).to(device).eval()
        logger.info("text LDM evaluation: %s is for another size, settings or label list; retraining", path)
    logger.info(
        "text LDM evaluation: training the consistency classifier (vit_phantom_small, %d px, %d epochs) on %d "
        "real training images, from scratch",
        size,
        epochs,
        len(images),
    )
    model = train_classifier(model, images, labels, epochs=epochs, seed=seed, device=device)
    if path is not None:
        save_checkpoint(path, model, labels=list(label_names),
                        classifier_config={k: v for k, v in config.items() if k != "labels"})  # fmt: skip
    return model.eval()


def _auroc(y_true: np.ndarray, y_score: np.ndarray, names: Sequence[str]) -> dict[str, float | None]:
    from medgen.engines.classifier import masked_auroc_per_class

    per = masked_auroc_per_class(y_true, y_score)
    return {n: (None if not np.isfinite(v) else round(float(v), 4)) for n, v in zip(names, per, strict=True)}


def _gen_metrics(feats_gen, feats_real, kid_subsets, seed) -> dict[str, Any]:
    from medgen.metrics.generation import frechet_distance, kernel_inception_distance

    if (
        min(len(feats_gen), len(feats_real)) < 2
    ):  # no covariance, no unbiased MMD: say so, do not fake a number
        return {"fid": None, "kid_mean": None, "kid_std": None, "kid_subset_size": None,
                "note": "fewer than 2 images in a set"}  # fmt: skip
    # subsets of half the smaller set: with every image in each subset (the usual min(N, 1000) at N < 1000) all
    # subsets would be the same and the std 0
    size = max(2, min(len(feats_gen), len(feats_real)) // 2)
    kid = kernel_inception_distance(feats_real, feats_gen, subsets=kid_subsets, subset_size=size, seed=seed)
    return {"fid": round(float(frechet_distance(feats_real, feats_gen)), 4), "kid_mean": kid["mean"],
            "kid_std": kid["std"], "kid_subset_size": kid["subset_size"]}  # fmt: skip


def evaluate_text_ldm(
    train_data: dict[str, Any],
    test_data: dict[str, Any],
    models_dir: str | Path,
    output_dir: str | Path,
    guidance: float = 7.5,
    steps: int = 50,
    guidance_sweep: Sequence[float] = (1.0, 2.0, 4.0, 7.5),
    max_prompts: int | None = None,
    diversity_prompts: int = 8,
    diversity_samples: int = 4,
    classifier_epochs: int = 30,
    classifier_kwargs: dict[str, Any] | None = None,
    xrv_weights: str | Path | None = None,
    kid_subsets: int = 10,
    batch_size: int = 16,
    seed: int = 0,
    device: str | torch.device = "cpu",
    data_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the evaluation (module docstring); writes ``report.json``, ``report.md`` and figures under
    ``output_dir`` and returns the report."""
    from medgen.data.report_findings import parse_findings_batch
    from medgen.inferers.text_ldm import load_text_ldm
    from medgen.metrics.generation import memorisation_summary, ms_ssim_diversity, nearest_neighbour_distances

    t_start = time.perf_counter()
    out = Path(output_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    sampler = load_text_ldm(models_dir, device=device)
    size = int(train_data["images"].shape[-1])
    if int(sampler.image_size) != size:
        raise ValueError(
            f"the models in {models_dir} generate {sampler.image_size} px images but the evaluation data are "
            f"{size} px: evaluate with the image_size the models were trained with (--set image_size=...)"
        )
    names = list(train_data["label_names"])
    prompts = list(test_data["reports"])[: max_prompts or None]
    n = len(prompts)
    real_test = test_data["images"][:n]
    y_prompt = parse_findings_batch(prompts, names)  # what each generated image was asked to show
    y_real = test_data["labels"][:n].numpy()
    timings: dict[str, float] = {}

    t = time.perf_counter()
    clf = train_consistency_classifier(
        train_data["images"], train_data["labels"], names, Path(models_dir) / "consistency_classifier.pt",
        epochs=classifier_epochs, kwargs=classifier_kwargs, seed=seed, device=device,
    )  # fmt: skip
    timings["classifier"] = time.perf_counter() - t
    from medgen.engines.classifier import predict_probabilities

    real_auroc = _auroc(y_real, predict_probabilities(clf, real_test).numpy(), names)
    extractors = {"consistency classifier (proxy)": lambda x: classifier_features(clf, x)}
    if xrv_weights:
        extractors["torchxrayvision DenseNet-121 (local weights)"] = xrv_extractor(xrv_weights, device)
    feats_real = {k: f(real_test) for k, f in extractors.items()}
    feats_train = {k: f(train_data["images"]) for k, f in extractors.items()}
    floor = {k: _gen_metrics(feats_train[k], feats_real[k], kid_subsets, seed) for k in extractors}

    sweep, images_at, feats_at = [], {}, {}
    for g in dict.fromkeys([*guidance_sweep, guidance]):
        t = time.perf_counter()
        gen = sampler.generate(prompts, steps=steps, guidance=float(g), seed=seed, batch_size=batch_size,
                               progress=True)  # fmt: skip
        timings[f"generate_g{g:g}"] = time.perf_counter() - t
        images_at[float(g)] = gen
        probs = predict_probabilities(clf, gen).numpy()
        feats = feats_at[float(g)] = {
            k: f(gen) for k, f in extractors.items()
        }  # reused by the memorisation check
        row = {
            "guidance": float(g),
            "consistency_auroc": _auroc(y_prompt, probs, names),
            "metrics": {k: _gen_metrics(v, feats_real[k], kid_subsets, seed) for k, v in feats.items()},
            "seconds_per_image": timings[f"generate_g{g:g}"] / n,
        }
        sweep.append(row)
        logger.info("text LDM evaluation: guidance %g: %s", g, row)
    main = next(r for r in sweep if r["guidance"] == float(guidance))

    t = time.perf_counter()
    div_prompts = prompts[: max(0, int(diversity_prompts))]
    diversity: dict[str, Any] = {}
    if div_prompts and diversity_samples >= 2:
        div = sampler.generate(div_prompts, n_per_prompt=diversity_samples, steps=steps, guidance=guidance,
                               seed=seed + 100_000, batch_size=batch_size)  # fmt: skip
        groups = [i for i in range(len(div_prompts)) for _ in range(diversity_samples)]
        diversity = {"generated": ms_ssim_diversity(div, groups), "prompts": len(div_prompts),
                     "samples_per_prompt": int(diversity_samples)}  # fmt: skip
        k = min(len(real_test), len(div_prompts) * diversity_samples)
        real_groups = [i // diversity_samples for i in range(k)]
        if k >= 2 * diversity_samples:
            diversity["real_heldout_groups_of_same_size"] = ms_ssim_diversity(real_test[:k], real_groups)
    timings["diversity"] = time.perf_counter() - t

    key = next(iter(extractors))
    gen_main = images_at[float(guidance)]
    d_gen, i_gen = nearest_neighbour_distances(
        feats_at[float(guidance)][key], feats_train[key], metric="cosine"
    )
    d_real, _ = nearest_neighbour_distances(feats_real[key], feats_train[key], metric="cosine")
    memorisation = {"extractor": key, **memorisation_summary(d_gen, d_real)}

    figures = {
        "samples_per_finding": _finding_grid(sampler, test_data, names, steps, guidance, seed, out),
        "guidance_sweep": _sweep_figure(sweep, images_at, prompts, out),
        "memorisation_pairs": _pairs_figure(gen_main, train_data["images"], d_gen, i_gen, out),
        "memorisation_distances": _distance_figure(d_gen, d_real, guidance, out),
    }
    report = {
        "protocol": {
            "models_dir": str(models_dir),
            "image_size": size,
            "generated_per_guidance": n,
            "prompts": "the held-out split's reports (one image each, image i seeded seed + i)",
            "steps": int(steps),
            "eta": 0.0,
            "guidance": float(guidance),
            "seed": int(seed),
            "real_reference": f"{n} held-out real images (FID/KID); {len(train_data['images'])} training images "
            "(classifier training, memorisation reference, real-vs-real floor)",
            "consistency_labels": "findings parsed from each prompt (medgen.data.report_findings)",
            "real_labels": test_data.get("label_source", "?"),
            "extractors": list(extractors),
            "fid_note": "FID is biased upwards at small sample counts; compare only with the real-vs-real floor "
            "at the same count. The classifier-feature FID is a proxy, not comparable with published FIDs.",
            "kid_subsets": int(kid_subsets),
            "kid_subset_size": "half the smaller set, drawn without replacement per subset",
            "data": data_info or {},
        },
        "classifier_real_auroc": real_auroc,
        "consistency_auroc": main["consistency_auroc"],
        "generation_metrics": main["metrics"],
        "real_vs_real_floor": floor,
        "guidance_sweep": sweep,
        "diversity_ms_ssim": diversity,
        "memorisation": memorisation,
        "figures": figures,
        "seconds": {k: round(v, 1) for k, v in {**timings, "total": time.perf_counter() - t_start}.items()},
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    text = _markdown(report)
    (out / "report.md").write_text(text)
    print(text)
    print(
        f"\ncxr_text_ldm evaluation: report {out / 'report.md'} (and report.json), figures in {out / 'figures'}"
    )
    return report


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _kid(m: dict[str, Any]) -> str:
    if m.get("kid_mean") is None:
        return "n/a"
    return f"{1e3 * m['kid_mean']:.2f} +/- {1e3 * m['kid_std']:.2f}"


def _markdown(r: dict[str, Any]) -> str:
    p = r["protocol"]
    names = list(r["classifier_real_auroc"])
    lines = [
        "# cxr_text_ldm evaluation",
        "",
        f"Protocol: {p['generated_per_guidance']} images generated for {p['prompts']}; {p['steps']} DDIM steps, "
        f"eta 0, guidance {p['guidance']:g}, seed {p['seed']}, {p['image_size']} px, unenhanced. Real reference: "
        f"{p['real_reference']}. Consistency labels: {p['consistency_labels']}; real labels: {p['real_labels']}.",
        f"Extractors: {', '.join(p['extractors'])}. {p['fid_note']}",
        "",
        "## Prompt consistency (AUROC of the independent classifier)",
        "",
        "| finding | generated vs prompt | real held-out vs label |",
        "| --- | --- | --- |",
    ]
    for name in names:
        lines.append(
            f"| {name} | {_fmt(r['consistency_auroc'][name])} | {_fmt(r['classifier_real_auroc'][name])} |"
        )
    lines += ["", "## Guidance sweep", ""]
    ext = p["extractors"][0]
    head = "| guidance | " + " | ".join(f"{f} AUROC" for f in FOCUS) + " | FID | KID (x1e3) | s/image |"
    lines += [head, "|" + " --- |" * (len(FOCUS) + 4)]
    for row in r["guidance_sweep"]:
        m = row["metrics"][ext]
        aur = " | ".join(_fmt(row["consistency_auroc"].get(f)) for f in FOCUS)
        lines.append(
            f"| {row['guidance']:g} | {aur} | {_fmt(m['fid'])} | {_kid(m)} | {row['seconds_per_image']:.3f} |"
        )
    fl = r["real_vs_real_floor"][ext]
    lines += ["", f"Real-vs-real floor ({ext}, training vs held-out real): FID {_fmt(fl['fid'])}, KID (x1e3) "
              f"{_kid(fl)}."]  # fmt: skip
    d = r["diversity_ms_ssim"]
    if d:
        real = d.get("real_heldout_groups_of_same_size", {})
        lines += ["", f"## Diversity: MS-SSIM within prompt ({d['prompts']} prompts x {d['samples_per_prompt']}): "
                  f"{d['generated']['mean']:.3f} +/- {d['generated']['std']:.3f} (real held-out images in groups of "
                  f"the same size: {_fmt(real.get('mean'))}; lower = more diverse)"]  # fmt: skip
    m = r["memorisation"]
    lines += ["", "## Memorisation (nearest training image, cosine distance in " + m["extractor"] + ")", "",
              "```", json.dumps({k: v for k, v in m.items() if k != "extractor"}, indent=1), "```"]  # fmt: skip
    lines += ["", "Figures: " + ", ".join(f"`{v}`" for v in r["figures"].values() if v), "",
              "Seconds: " + json.dumps(r["seconds"])]  # fmt: skip
    return "\n".join(lines) + "\n"


def _finding_grid(sampler, test_data, names, steps, guidance, seed, out: Path, per: int = 4) -> str | None:
    """Rows: 'no finding' and each finding with a held-out prompt that states it; 4 samples each."""
    from medgen.data.report_findings import parse_findings_batch
    from medgen.visualize.pyplot import pyplot

    prompts = list(test_data["reports"])
    y = parse_findings_batch(prompts, names)
    rows = []
    normal = [i for i in range(len(prompts)) if y[i].sum() == 0]
    if normal:
        rows.append(("no finding", prompts[normal[0]]))
    for j, name in enumerate(names):
        hits = [i for i in range(len(prompts)) if y[i, j] == 1]
        if hits:
            best = min(hits, key=lambda i: (y[i].sum(), i))  # the prompt with the fewest other findings
            rows.append((name, prompts[best]))
    if not rows:
        return None
    images = sampler.generate([p for _, p in rows], n_per_prompt=per, steps=steps, guidance=guidance, seed=seed,
                              batch_size=16)  # fmt: skip
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), per, figsize=(1.6 * per + 3.2, 1.6 * len(rows)), squeeze=False)
    for r, (name, prompt) in enumerate(rows):
        for c in range(per):
            ax = axes[r][c]
            ax.imshow(images[r * per + c, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(name, fontsize=7)
        axes[r][-1].text(1.05, 0.5, prompt[:140] + ("..." if len(prompt) > 140 else ""), fontsize=4.5,
                         transform=axes[r][-1].transAxes, va="center", wrap=True)  # fmt: skip
    fig.suptitle(f"generated, {per} seeds per prompt (guidance {guidance:g}, {steps} steps)", fontsize=8)
    fig.subplots_adjust(right=0.62, wspace=0.05, hspace=0.08)
    path = out / "figures" / "samples_per_finding.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _sweep_figure(sweep, images_at, prompts, out: Path) -> str:
    from medgen.visualize.pyplot import pyplot

    plt = pyplot()
    g = [row["guidance"] for row in sweep]
    order = np.argsort(g)
    ext = next(iter(sweep[0]["metrics"]))
    fig = plt.figure(figsize=(9, 4.8))
    ax1 = fig.add_subplot(2, 2, 1)
    for f in FOCUS:
        ax1.plot(
            np.array(g)[order], [sweep[i]["consistency_auroc"].get(f) or np.nan for i in order], "o-", label=f
        )
    ax1.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax1.set_xlabel("guidance")
    ax1.set_ylabel("consistency AUROC")
    ax1.legend(fontsize=7)
    ax2 = fig.add_subplot(2, 2, 2)
    fids = [sweep[i]["metrics"][ext]["fid"] for i in order]
    ax2.plot(np.array(g)[order], [np.nan if f is None else f for f in fids], "s-", color="C3")
    ax2.set_xlabel("guidance")
    ax2.set_ylabel("FID (classifier features, proxy)")
    keys = sorted(images_at)
    for k, gk in enumerate(keys):
        ax = fig.add_subplot(2, len(keys), len(keys) + k + 1)
        ax.imshow(images_at[gk][0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"guidance {gk:g}", fontsize=7)
        ax.axis("off")
    fig.suptitle(f"same prompt and seed: {prompts[0][:90]}...", fontsize=7)
    fig.tight_layout()
    path = out / "figures" / "guidance_sweep.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _distance_figure(d_gen, d_real, guidance, out: Path) -> str:
    from medgen.visualize.pyplot import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    hi = float(max(np.max(d_gen), np.max(d_real)))
    bins = np.linspace(0.0, hi * 1.05 + 1e-12, 30)
    ax.hist(d_real, bins=bins, alpha=0.6, density=True, label=f"held-out real -> training (n={len(d_real)})")
    ax.hist(d_gen, bins=bins, alpha=0.6, density=True, label=f"generated -> training (n={len(d_gen)})")
    ax.axvline(float(np.percentile(d_real, 5)), color="k", lw=0.8, ls=":", label="held-out 5th percentile")
    ax.set_xlabel("cosine distance to the nearest training image (classifier features)")
    ax.set_ylabel("density")
    ax.set_title(f"memorisation check (guidance {guidance:g})", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path = out / "figures" / "memorisation_distances.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _pairs_figure(gen, train_images, dist, idx, out: Path, k: int = 6) -> str:
    from medgen.visualize.pyplot import pyplot

    plt = pyplot()
    order = np.argsort(dist)[:k]
    fig, axes = plt.subplots(2, len(order), figsize=(1.7 * len(order), 3.8), squeeze=False)
    for c, i in enumerate(order):
        axes[0][c].imshow(gen[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0][c].set_title(f"generated #{i}\nd={dist[i]:.4f}", fontsize=6)
        axes[1][c].imshow(train_images[int(idx[i]), 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1][c].set_title(f"nearest training #{int(idx[i])}", fontsize=6)
        for r in (0, 1):
            axes[r][c].axis("off")
    fig.suptitle("closest generated / training pairs (cosine distance, classifier features)", fontsize=8)
    fig.tight_layout()
    path = out / "figures" / "memorisation_pairs.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
