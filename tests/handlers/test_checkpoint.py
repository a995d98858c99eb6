"""Checkpoint loading errors, metadata checks, and exact resume of an interrupted bundle run."""

from __future__ import annotations

import pytest
import torch

from medgen.cli import main
from medgen.handlers.checkpoint import (
    CheckpointError,
    check_checkpoint_meta,
    latest_checkpoint,
    load_checkpoint,
    load_network_weights,
    save_checkpoint,
)


def test_load_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "truncated.pt"
    save_checkpoint(bad, {"network": {"w": torch.ones(100)}})
    bad.write_bytes(bad.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(bad)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"network": torch.nn.Linear(2, 2)}, path)  # a module object, not a state_dict
    with pytest.raises(CheckpointError, match="pickled.pt.*state_dict"):
        load_checkpoint(path)


def test_safetensors_round_trip(tmp_path):
    from safetensors.torch import save_file

    net = torch.nn.Linear(3, 2)
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    other = torch.nn.Linear(3, 2)
    load_network_weights(other, tmp_path / "w.safetensors", key=None)
    assert torch.equal(other.weight, net.weight)


def test_meta_mismatch_names_both(tmp_path):
    path = save_checkpoint(
        tmp_path / "m.pt", {"network": {}}, meta={"arch": "rdn", "scale": 4, "labels": ["a", "b"]}
    )
    ckpt = load_checkpoint(path)
    with pytest.raises(
        CheckpointError, match=r"arch: checkpoint has 'rdn', config has 'srcnn'.*scale: checkpoint has 4"
    ):
        check_checkpoint_meta(ckpt, {"arch": "srcnn", "scale": 2}, path)
    check_checkpoint_meta(ckpt, {"arch": "rdn", "labels": ("a", "b")}, path)  # tuples and lists compare equal


def test_wrong_architecture_weights(tmp_path):
    path = save_checkpoint(
        tmp_path / "n.pt", {"network": torch.nn.Linear(4, 4).state_dict()}, meta={"arch": "lin4"}
    )
    with pytest.raises(CheckpointError, match=r"n.pt.*'lin4'.*Linear"):
        load_network_weights(torch.nn.Linear(3, 3), path)


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
    a = load_checkpoint(latest_checkpoint(straight / "runs" / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(resumed / "runs" / "checkpoints"))
    assert a["trainer"]["iteration"] == b["trainer"]["iteration"] == 3 * a["trainer"]["epoch_length"]
    for key, value in a["network"].items():
        assert torch.equal(value, b["network"][key]), key
    # and the run really trained: weights moved away from their initial values
    _run(tmp_path / "one", 1)
    c = load_checkpoint(latest_checkpoint(tmp_path / "one" / "runs" / "checkpoints"))
    assert any(not torch.equal(v, c["network"][k]) for k, v in a["network"].items())
