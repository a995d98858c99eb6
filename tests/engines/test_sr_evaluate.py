import json

import torch

from medgen.data.datalist import load_datalist
from medgen.engines.sr_evaluate import evaluate_sr, gflops
from medgen.networks.utils import count_parameters, save_checkpoint
from medgen.registry import create_network


def test_gflops_counts_convolutions():
    # SRCNN x2 at LR 256: bicubic to 512^2, then convs 9x9 (1->64), 5x5 (64->32), 5x5 (32->1), 2 FLOPs per MAC
    net = create_network("srcnn", scale=2)
    macs = 512 * 512 * (81 * 64 + 25 * 64 * 32 + 25 * 32)
    assert abs(gflops(net, 256) - 2 * macs / 1e9) < 0.01 * 2 * macs / 1e9


def test_evaluate_writes_tables_on_the_test_patients_only(tmp_path):
    torch.manual_seed(0)
    net = create_network("swift_srgan_tiny", scale=2)
    path = save_checkpoint(tmp_path / "student.pt", net)
    splits = load_datalist("phantom", None, {"n": 10, "size": 128})
    results = evaluate_sr(
        {"student": str(path)},
        splits[2],
        scale=2,
        data_info=splits.info,
        variants=("bicubic", "blur_noise"),
        out_dir=tmp_path / "eval",
        timing=False,
        teacher=None,
    )
    test_indices = [it["index"] for it in splits.test]
    assert results["setup"]["n_test_images"] == len(test_indices)
    assert results["setup"]["dataset"] == "phantom" and results["setup"]["n_studies"] == 10
    for variant in ("bicubic", "blur_noise"):
        scores = results["scores"][variant]
        assert set(scores) == {"bicubic", "lanczos", "student"}
        assert scores["bicubic"]["psnr"]["gain_over_bicubic"] == 0
        assert len(scores["student"]["psnr"]["per_image"]) == len(test_indices)
    # blur + noise makes the LR worse, so bicubic from it scores lower
    assert (
        results["scores"]["blur_noise"]["bicubic"]["psnr"]["mean"]
        < results["scores"]["bicubic"]["bicubic"]["psnr"]["mean"]
    )
    assert json.loads((tmp_path / "eval" / "sr_results.json").read_text())["models"]["student"][
        "params"
    ] == count_parameters(net)
    assert "| student |" in (tmp_path / "eval" / "sr_results.md").read_text()
    assert (tmp_path / "eval" / "sr_comparison.png").stat().st_size > 1000


def test_evaluate_real_images_at_their_own_size_tiled_matches_whole(tmp_path):
    """Real items (file paths) are loaded at their own size, cropped to a multiple of the scale; the tiled
    path (``eval_tile``) scores like the whole-image one, ``eval_crop`` centre-crops."""
    import numpy as np
    from PIL import Image

    items = []
    yy, xx = np.mgrid[0:130, 0:141] / 141
    for i in range(2):
        img = 0.5 + 0.3 * np.sin(2 * np.pi * (xx * (2 + i) + yy))
        p = tmp_path / f"p{i}" / "a.png"
        p.parent.mkdir()
        Image.fromarray((img * 255).astype(np.uint8), mode="L").save(p)
        items.append({"image": str(p), "patient_id": f"p{i}"})
    torch.manual_seed(0)
    net = create_network("swift_srgan_tiny", scale=2)
    kw = dict(scale=2, variants=("bicubic",), timing=False, teacher=None)
    whole = evaluate_sr({"m": net}, items, **kw)
    assert whole["setup"]["hr_size"] == [130, 140] and whole["setup"]["lr_size"] == [65, 70]
    assert whole["setup"]["dataset"] == "image files"
    tiled = evaluate_sr({"m": net}, items, tile=64, **kw)
    a, b = (r["scores"]["bicubic"]["m"]["psnr"]["per_image"] for r in (whole, tiled))
    assert np.allclose(a, b, atol=0.25)  # an untrained net: tile borders differ slightly (halo blend)
    cropped = evaluate_sr({"m": net}, items, crop=64, out_dir=tmp_path / "ev", **kw)
    assert cropped["setup"]["hr_size"] == 64
    assert "own size, centre crop 64" in (tmp_path / "ev" / "sr_results.md").read_text()
