import json

import torch

from medgen.engines.sr import phantom_split_indices
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
    results = evaluate_sr(
        {"student": str(path)},
        n_studies=10,
        hr_size=128,
        scale=2,
        variants=("bicubic", "blur_noise"),
        out_dir=tmp_path / "eval",
        timing=False,
        teacher=None,
    )
    test_indices = phantom_split_indices(10)[2]
    assert results["setup"]["n_test_images"] == len(test_indices)
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
