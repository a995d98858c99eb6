"""cxr_sr_distillation's inference workflow on a folder of mixed inputs: 8-bit PNG and grey stored as RGB PNG.

A tiny SRCNN checkpoint stands in for a trained model (training would take minutes): ``models/teacher.pt``
(architecture + kwargs, :func:`medgen.networks.utils.save_checkpoint`) and ``models/model.pt`` (the bare state
dict that ``CheckpointSaver`` writes). Every output must keep its input's format and brightness.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medgen.cli import main
from medgen.networks.utils import save_checkpoint
from medgen.registry import create_network


@pytest.fixture
def bundle_root(tmp_path):
    torch.manual_seed(0)
    net = create_network("srcnn", scale=4, width=8)  # non-default kwargs: must come from teacher.pt
    save_checkpoint(tmp_path / "models" / "teacher.pt", net)
    torch.save(net.state_dict(), tmp_path / "models" / "model.pt")
    return tmp_path


def test_inference_workflow_keeps_format_and_brightness(bundle_root, tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    y, x = np.mgrid[:32, :40]
    grey = np.round(255 * (0.5 + 0.3 * np.sin(x / 6.0) * np.cos(y / 5.0))).astype(np.uint8)
    Image.fromarray(grey).save(data / "eight.png")
    Image.fromarray(grey).convert("RGB").save(data / "sub" / "rgb.png")
    Image.fromarray(grey).save(data / "sub" / "eight.png")  # same name, other folder: must not overwrite
    args = ["run", "cxr_sr_distillation", "inference", "--bundle-root", str(bundle_root)]
    assert main([*args, "--set", f"dataset_dir={data}", "--set", "tile_size=16"]) == 0
    out = bundle_root / "runs" / "inference"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == [
        "eight_sr.png",
        "sub/eight_sr.png",
        "sub/rgb_sr.png",
    ]
    for name in ("eight_sr.png", "sub/rgb_sr.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.mode == "L" and im.size == (160, 128)
            sr = np.asarray(im).astype(np.float64)
        # an untrained residual SRCNN is about bicubic: its mean must stay near the input's (not dark)
        assert abs(sr.mean() - grey.mean()) < 0.1 * grey.mean(), (name, sr.mean(), grey.mean())
