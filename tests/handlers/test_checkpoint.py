"""Exact resume of an interrupted bundle run (TrainingCheckpoint + EpochSeed)."""

from __future__ import annotations

import torch

from medgen.cli import main
from medgen.handlers.checkpoint import latest_checkpoint
from medgen.networks.utils import read_checkpoint


def _run(root, epochs):
    argv = [
        "run",
        "minimal_bundle",
        "--config",
        "smoke",
        "--set",
        f"max_epochs={epochs}",
        "--bundle-root",
        str(root),
    ]
    assert main(argv) == 0


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _run(straight, 3)
    _run(resumed, 1)  # "interrupted" after epoch 1
    assert latest_checkpoint(resumed / "runs" / "checkpoints").endswith("checkpoint_epoch=1.pt")
    _run(resumed, 3)  # started again: continues at epoch 2
    a = read_checkpoint(latest_checkpoint(straight / "runs" / "checkpoints"))
    b = read_checkpoint(latest_checkpoint(resumed / "runs" / "checkpoints"))
    assert a["trainer"]["iteration"] == b["trainer"]["iteration"] == 3 * a["trainer"]["epoch_length"]
    for key, value in a["network"].items():
        assert torch.equal(value, b["network"][key]), key
    # and the run really trained: weights moved away from their initial values
    _run(tmp_path / "one", 1)
    c = read_checkpoint(latest_checkpoint(tmp_path / "one" / "runs" / "checkpoints"))
    assert any(not torch.equal(v, c["network"][k]) for k, v in a["network"].items())
