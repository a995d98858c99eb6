"""cxr_attention_sr_classifier on real data: train / evaluate / inference / pipeline read a user's folder through
medgen.data.datalist (smoke sizes), and the phantom path gives the items it always gave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medgen.cli import main

BUNDLE = "cxr_attention_sr_classifier"
FINDINGS = ("Effusion", "Cardiomegaly")


def _labelled_folder(
    root: Path, n: int = 12, size: int = 96, sub: bool = True, blank: bool = True
) -> list[Path]:
    """A labelled_folder layout: PNGs (some in a sub-folder) + labels.csv (image, patient_id, finding columns)."""
    rng = np.random.default_rng(0)
    rows, files = [], []
    for i in range(n):
        rel = Path("scans" if sub and i % 2 else ".") / f"img_{i:02d}.png"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 255, (size, size + (8 if i % 3 == 0 else 0)), dtype=np.uint8)  # some non-square
        Image.fromarray(arr).save(path)
        files.append(path)
        eff, card = i % 2, (i // 2) % 2
        rows.append(
            f"{rel.as_posix()},p{i // 2},{eff},{'' if blank and i == 5 else card}"
        )  # one blank cell: unstated
    (root / "labels.csv").write_text("image,patient_id," + ",".join(FINDINGS) + "\n" + "\n".join(rows) + "\n")
    return files


def _run(workflow: str, root: Path, *sets: str, config: str | None = "smoke") -> int:
    args = ["run", BUNDLE, workflow, "--bundle-root", str(root)]
    if config:
        args += ["--config", config]
    for s in sets:
        args += ["--set", s]
    return main(args)


def test_phantom_items_are_those_of_the_old_phantom_classification_items():
    """load_datalist's phantom split (split seed = phantom seed) renders exactly the studies the bundle's former
    ``phantom_classification_items(split, n, size, seed)`` rendered (its code is kept here as the reference)."""
    from medgen.data.datalist import load_datalist
    from medgen.data.phantom import patient_of, render_phantom
    from medgen.data.split import patient_split

    def old(split, n, size, seed, fractions=(0.7, 0.1, 0.2)):
        items = [{"index": i, "patient_id": patient_of(i, seed)[0]} for i in range(int(n))]
        chosen = patient_split(items, fractions, seed=seed)[("train", "val", "test").index(split)]
        return [
            (render_phantom(it["index"], size, seed).image[None].astype(np.float32), it["patient_id"])
            for it in chosen
        ]

    for seed in (0, 3):
        splits = load_datalist(
            None, None, {"n": 30, "size": 128, "seed": seed}, {"fractions": [0.7, 0.1, 0.2], "seed": seed}
        )
        for name in ("train", "val", "test"):
            ref = old(name, 30, 128, seed)
            new = splits[name]
            assert len(new) == len(ref) > 0
            for it, (img, pid) in zip(new, ref, strict=True):
                assert it["patient_id"] == pid
                np.testing.assert_array_equal(it["image"], img)


def test_phantom_transform_chain_equals_the_old_augmentation():
    """LoadRadiographd + square pad + resize are no-ops on phantom arrays, and the flat chain hands the
    augmentations the same seeds: the phantom's training inputs are unchanged."""
    from medgen.data.datalist import load_datalist
    from medgen.engines.classifier import classifier_data_transforms, classifier_train_transforms

    item = load_datalist(None, None, {"n": 10, "size": 128}).train[0]
    old_t, new_t = (
        classifier_train_transforms(size=128),
        classifier_data_transforms(128, item["labels"], True),
    )
    old_t.set_random_state(7)
    new_t.set_random_state(7)
    for _ in range(3):
        a = old_t({"image": item["image"], "label": item["label"]})
        b = new_t(dict(item))
        assert set(b) == {"image", "label"}
        np.testing.assert_allclose(np.asarray(a["image"]), np.asarray(b["image"]), atol=1e-6)
        np.testing.assert_array_equal(a["label"], b["label"])


def test_masked_loss_and_auroc_skip_unstated_labels():
    from medgen.engines.classifier import MaskedMultiLabelBCELoss, masked_auroc_per_class, masked_mean_auroc
    from medgen.losses.classification import MultiLabelBCELoss

    logits, target = torch.randn(4, 3), torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 1]])
    assert torch.equal(MaskedMultiLabelBCELoss()(logits, target), MultiLabelBCELoss()(logits, target))
    masked = target.clone()
    masked[0, 2] = float("nan")
    keep = torch.isfinite(masked)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits[keep], target[keep])
    assert torch.allclose(MaskedMultiLabelBCELoss()(logits, masked), ref)
    y = np.array([[1, 0, np.nan], [0, 0, 1], [1, 0, 0], [0, 0, np.nan]])
    s = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.8], [0.7, 0.2, 0.1], [0.1, 0.4, 0.9]])
    auc = masked_auroc_per_class(y, s)
    assert auc[0] == 1.0 and np.isnan(auc[1]) and auc[2] == 1.0  # class 1: one value only; class 2: 2 rows
    assert masked_mean_auroc(s, y) == 1.0


def test_train_evaluate_inference_on_a_labelled_folder(tmp_path):
    data = tmp_path / "data"
    files = _labelled_folder(data)
    root = tmp_path / "root"
    sets = (f"dataset_dir={data}", "split={fractions: [0.6, 0.2, 0.2], seed: 0}")
    assert _run("train", root, *sets) == 0
    runs = root / "runs"
    info = json.loads((runs / "data_train.json").read_text())
    assert info["dataset"] == "labelled_folder"  # auto-detected; the phantom was not rendered
    listed = [p for part in info["items"].values() for p in part]
    assert sorted(listed) == sorted(str(p) for p in files)
    assert not any(p.startswith("phantom:") for p in listed)
    ckpt = torch.load(root / "models" / "classifier.pt", weights_only=True)
    assert ckpt["labels"] == list(FINDINGS)  # the classifier's classes follow the data

    assert _run("evaluate", root, *sets) == 0
    ev = json.loads((runs / "data_evaluate.json").read_text())
    assert ev["items"]["test"] == info["items"]["test"]  # the same held-out patients
    assert (runs / "metrics.csv").read_text().startswith("val_mean_auroc,")

    # inference: every image under a folder, recursively (the sub-folder's too), with the trained labels
    assert _run("inference", root, f"dataset_dir={data}", config=None) == 0
    out = runs / "inference"
    probs = sorted(out.glob("*_probabilities.json"))
    assert len(probs) == len(files)
    assert set(json.loads(probs[0].read_text())["probabilities"]) == set(FINDINGS)
    inf = json.loads((runs / "data_inference.json").read_text())
    assert sorted(inf["items"]["train"]) == sorted(str(p) for p in files)


def test_evaluate_refuses_an_unlabelled_image_folder(tmp_path, capsys):
    data = tmp_path / "unlabelled"
    for p in _labelled_folder(data, n=4):
        assert p.is_file()
    (data / "labels.csv").unlink()  # an image_folder: images, no labels
    code = _run("evaluate", tmp_path / "r", f"dataset_dir={data}")
    err = capsys.readouterr().err
    assert code == 2
    assert "needs 'label' for every image, but the image_folder data give none" in err
    assert "nothing is replaced by the phantom" in err


def test_inference_without_dataset_dir_writes_phantom_inputs(tmp_path):
    import medgen
    from medgen.data.labels import PHANTOM_LABELS
    from medgen.networks.nets.vit_classifier import save_classifier_checkpoint

    root = tmp_path / "root"
    net = medgen.create_network(
        "vit_phantom_small",
        labels=PHANTOM_LABELS,
        img_size=128,
        patch_size=16,
        embed_dim=128,
        depth=4,
        num_heads=2,
        conv_stem=True,
        stem_width=32,
        stem_depth=2,
        head="csra",
        csra_temperature=10.0,
        local_attention=2,
    )  # fmt: skip  (inference.yaml's network_def, untrained)
    save_classifier_checkpoint(root / "models" / "classifier.pt", net)
    assert _run("inference", root, config=None) == 0
    inputs = sorted((root / "runs" / "inference_inputs").glob("phantom_*.png"))
    assert [p.name for p in inputs] == ["phantom_100000.png", "phantom_100001.png"]
    assert len(list((root / "runs" / "inference").glob("*_probabilities.json"))) == 2


def test_boxes_to_masks_at_the_classifier_resolution():
    from medgen.metrics.localization import boxes_to_masks

    # a 200 x 100 (H x W) native image, padded square to 200 (50 px left), resized to 100: factor 0.5
    boxes = [{"label": "Mass", "box": [10, 20, 30, 40]}, {"label": "Mass", "box": [80, 160, 20, 20]},
             {"label": "Nodule", "box": [0, 0, 4, 4]}]  # fmt: skip
    masks = boxes_to_masks(boxes, (200, 100), 100)
    assert set(masks) == {"Mass", "Nodule"} and masks["Mass"].shape == (100, 100)
    ys, xs = np.nonzero(masks["Mass"][:50])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (30, 44, 10, 29)
    assert masks["Mass"][80:90, 65:75].all() and masks["Mass"].sum() == 15 * 20 + 10 * 10
    assert masks["Nodule"][:2, 25:27].all() and masks["Nodule"].sum() == 4
    assert boxes_to_masks([], (64, 64), 32) == {}


def test_pipeline_smoke_on_a_labelled_folder_says_no_localisation_truth(tmp_path):
    data = tmp_path / "data"
    _labelled_folder(data, n=12, size=64, sub=False, blank=False)
    root = tmp_path / "root"
    code = _run(
        "pipeline",
        root,
        f"dataset_dir={data}",
        "pipeline_config#data#size=32",
        "pipeline_config#classifier#kwargs#img_size=32",
        "pipeline_config#regions#min_size=8",
        "pipeline_config#regions#max_size=8",
        config="pipeline_smoke",
    )
    assert code == 0
    out = root / "runs" / "pipeline"
    md = (out / "report.md").read_text()
    assert "no localisation ground truth in this dataset" in md
    rep = json.loads((out / "report.json").read_text())
    assert rep["data"]["dataset"] == "labelled_folder" and rep["data"]["localization_truth"] == "none"
    assert rep["summary"]["localization"] == {}
    assert set(rep["summary"]["base"]["per_class_auroc"]) == set(FINDINGS)
    assert (out / "data_pipeline.json").is_file()
    assert not list((out / "cache").glob("phantom_*.npz"))  # the phantom was never rendered
    q = rep["sr_quality"]["bicubic"]  # HR = the native 64-px image, LR = its x2 area downsampling
    assert 10.0 < q["region_psnr"]["mean"] < 100.0
