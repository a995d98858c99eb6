"""cxr_sr_distillation on real data: a given ``dataset_dir`` is what is trained and evaluated on.

The phantom path must give exactly the studies, split and noise of the former ``phantom_sr_items`` (so the
measured phantom figures stand); real folders go through ``medgen.data.datalist.load_datalist``, images are
loaded at their own size, too-small images are refused by name, and the loaded images are cached only when
they fit the budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medgen.cli import main
from medgen.data.cache import check_sr_images, image_shape, sr_train_dataset
from medgen.data.errors import DataError
from medgen.engines.sr import sr_patch_transform, sr_validation_items, sr_whole_image_transform
from medgen.registry.bundles import get_bundle

HANNOVER = Path("/work/shared/realdata/hannover_covid_cxr")


def _write_pngs(folder: Path, n: int = 10, size: int | tuple[int, int] = 160, patients: int = 7) -> list[str]:
    """``n`` smooth 8-bit PNGs in ``patients`` sub-folders; returns their paths."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    paths = []
    for i in range(n):
        img = (
            0.5
            + 0.3 * np.sin(2 * np.pi * (xx * (2 + i % 3) + yy * (1 + i % 2)))
            + rng.normal(0, 0.02, (h, w))
        )
        p = folder / f"patient_{i % patients:02d}" / f"img_{i:02d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), mode="L").save(p)
        paths.append(str(p))
    return paths


def _parser(*configs: str, **overrides):
    from monai.bundle import ConfigParser

    bundle = get_bundle("cxr_sr_distillation")
    parser = ConfigParser()
    parser.read_config([str(bundle.configs / f"{c}.yaml") for c in configs])
    parser.update({"bundle_root": overrides.pop("bundle_root", "."), **overrides})
    return parser


def _old_phantom_sr_items(n, hr_size, seed, fractions, split_seed, hr_noise_scale):
    """The former ``medgen.engines.sr.phantom_sr_items`` (deleted), verbatim in effect, as the reference."""
    from medgen.data.phantom import patient_of, render_phantom
    from medgen.data.split import patient_split

    stubs = [{"index": i, "patient_id": patient_of(i, seed)[0]} for i in range(int(n))]
    parts = [[s["index"] for s in part] for part in patient_split(stubs, fractions, seed=split_seed)]
    return tuple(
        [
            {
                "image": render_phantom(i, hr_size, seed, noise_scale=hr_noise_scale).image[None].copy(),
                "index": i,
                "patient_id": render_phantom(i, hr_size, seed, noise_scale=hr_noise_scale).patient_id,
            }
            for i in part
        ]
        for part in parts
    )


def test_phantom_splits_are_the_former_phantom_sr_items(tmp_path):
    parser = _parser("train_teacher", "smoke", bundle_root=str(tmp_path))
    splits = parser.get_parsed_content("splits")
    cfg = {k: parser.get_parsed_content(k) for k in ("n_studies", "hr_size", "seed", "hr_noise_scale")}
    assert cfg["hr_noise_scale"] == 0.25 and splits.info["reader_kwargs"]["noise_scale"] == 0.25
    old = _old_phantom_sr_items(cfg["n_studies"], cfg["hr_size"], cfg["seed"], (0.7, 0.1, 0.2), 0, 0.25)
    for new_part, old_part in zip(splits, old, strict=True):
        assert [it["index"] for it in new_part] == [it["index"] for it in old_part]
        assert [it["patient_id"] for it in new_part] == [it["patient_id"] for it in old_part]
        for a, b in zip(new_part, old_part, strict=True):
            assert a["image"].dtype == b["image"].dtype and np.array_equal(a["image"], b["image"])
    assert (tmp_path / "runs" / "data_train_teacher.json").is_file()
    # the loader passes the phantom's arrays through: whole-image pairs are those of the raw array
    item = splits[2][0]
    pair = sr_whole_image_transform(4, seed=0)(dict(item))
    assert torch.equal(pair["hr"], torch.as_tensor(item["image"]))


def test_train_workflow_trains_on_the_given_folder_not_the_phantom(tmp_path, monkeypatch):
    import medgen.data.phantom

    files = _write_pngs(tmp_path / "data", n=10, patients=10)

    def no_phantom(*a, **k):
        raise AssertionError("the phantom was rendered although dataset_dir was given")

    monkeypatch.setattr(medgen.data.phantom, "render_phantom", no_phantom)
    root = tmp_path / "root"
    args = ["--config", "smoke", "--bundle-root", str(root), "--set", f"dataset_dir={tmp_path / 'data'}"]
    assert main(["run", "cxr_sr_distillation", "train", *args]) == 0
    report = json.loads((root / "runs" / "data_train_teacher.json").read_text())
    assert report["dataset"] == "image_folder"
    listed = [p for part in report["items"].values() for p in part]
    assert sorted(listed) == sorted(files)
    assert all(report["splits"][n]["images"] > 0 for n in ("train", "val", "test"))
    assert (root / "models" / "teacher.pt").is_file() and (root / "models" / "model.pt").is_file()

    # the evaluation scores the same folder's test split, at the images' own size
    ev = args + ["--set", f"eval_models={{teacher: {root / 'models' / 'teacher.pt'}}}"]
    assert main(["run", "cxr_sr_distillation", "evaluate", *ev]) == 0
    results = json.loads((root / "runs" / "evaluation" / "sr_results.json").read_text())
    assert results["setup"]["dataset"] == "image_folder"
    assert results["setup"]["n_test_images"] == len(report["items"]["test"])
    assert results["setup"]["hr_size"] == 160 and results["setup"]["lr_size"] == 40
    evaluated = json.loads((root / "runs" / "data_evaluate.json").read_text())
    assert evaluated["items"]["test"] == report["items"]["test"]


def test_too_small_images_are_refused_by_name(tmp_path):
    files = _write_pngs(tmp_path, n=3, size=24, patients=3)
    items = [{"image": f, "patient_id": str(i)} for i, f in enumerate(files)]
    with pytest.raises(DataError, match="smaller than the 32x32 HR patch") as err:
        sr_train_dataset(items, sr_patch_transform(4, 8), cache="none", min_size=32)
    assert files[0] in str(err.value) and "lr_patch" in str(err.value)
    assert check_sr_images(items, 24) == [(24, 24)] * 3


def test_train_workflow_refuses_a_folder_of_too_small_images(tmp_path, capsys):
    _write_pngs(tmp_path / "data", n=10, size=24)
    code = main(
        ["run", "cxr_sr_distillation", "train", "--config", "smoke", "--bundle-root", str(tmp_path / "r"),
         "--set", f"dataset_dir={tmp_path / 'data'}"]
    )  # fmt: skip
    assert code != 0
    err = capsys.readouterr().err
    assert "smaller than the 32x32 HR patch" in err and "img_" in err


def test_cache_auto_caches_only_what_fits_and_patches_match(tmp_path, caplog):
    from monai.data import CacheDataset

    files = _write_pngs(tmp_path, n=4, size=(96, 128), patients=4)
    items = [{"image": f, "patient_id": str(i)} for i, f in enumerate(files)]
    assert image_shape(files[0]) == (96, 128)
    with caplog.at_level("INFO", logger="medgen.sr"):
        cached = sr_train_dataset(items, sr_patch_transform(2, 16), cache="auto", cache_budget_gb=1.0)
        plain = sr_train_dataset(items, sr_patch_transform(2, 16), cache="auto", cache_budget_gb=0.0)
        half = sr_train_dataset(
            items, sr_patch_transform(2, 16), cache="auto", cache_budget_gb=2 * 96 * 128 * 4e-9
        )
    assert isinstance(cached, CacheDataset) and cached.cache_num == 4
    assert not isinstance(plain, CacheDataset)
    assert isinstance(half, CacheDataset) and half.cache_num == 2
    assert "CacheDataset holds 100%" in caplog.text and "no cache" in caplog.text
    for ds in (cached, plain):
        ds.transform.set_random_state(3)
    a, b = cached[1], plain[1]
    assert a["hr"].shape == (1, 32, 32) and a["lr"].shape == (1, 16, 16)
    assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"])


def test_whole_images_of_any_size_are_cropped_to_a_multiple_of_the_scale(tmp_path):
    (f,) = _write_pngs(tmp_path, n=1, size=(161, 163), patients=1)
    item = {"image": f, "patient_id": "p"}
    pair = sr_whole_image_transform(4, seed=0)(dict(item))
    assert pair["hr"].shape == (1, 160, 160) and pair["lr"].shape == (1, 40, 40)
    cropped = sr_whole_image_transform(4, seed=0, crop=64)(dict(item))
    assert cropped["hr"].shape == (1, 64, 64)
    (val,) = sr_validation_items([item], scale=4, degradations=["bicubic"])
    assert torch.equal(val["hr"], pair["hr"])


@pytest.mark.skipif(not HANNOVER.is_dir(), reason="shared real data not present")
def test_hannover_set_reads_as_labelled_folder_without_labels():
    from medgen.data.datalist import load_datalist

    splits = load_datalist(
        "labelled_folder", HANNOVER, {"label_columns": [], "check": "exists"}, {"fractions": [0.7, 0.1, 0.2]}
    )
    counts = splits.info["splits"]
    assert sum(c["images"] for c in counts.values()) == 40
    assert sum(c["patients"] for c in counts.values()) == 28
    assert all(c["images"] > 0 for c in counts.values())
    assert image_shape(splits.test[0]["image"]) == (2000, 2000)
