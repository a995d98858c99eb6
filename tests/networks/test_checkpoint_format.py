"""The one checkpoint format: safe reading (clear errors), metadata checks, loading into or rebuilding a model."""

from __future__ import annotations

import pytest
import torch

from medgen.networks.utils import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from medgen.registry import create_network


def test_read_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")
    bad = save_checkpoint(tmp_path / "truncated.pt", torch.nn.Linear(10, 10))
    bad.write_bytes(bad.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        read_checkpoint(bad)


def test_pickled_code_and_non_dicts_are_refused(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"network": torch.nn.Linear(2, 2)}, path)  # a module object, not a state_dict
    with pytest.raises(CheckpointError, match="pickled.pt.*state_dict"):
        read_checkpoint(path)
    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="tensor.pt.*holds a Tensor"):
        read_checkpoint(tmp_path / "tensor.pt")


def test_format_is_flat_with_extras(tmp_path):
    net = create_network("srcnn", scale=2, width=8)
    ckpt = read_checkpoint(save_checkpoint(tmp_path / "s.pt", net, labels=["a", "b"], seed=3))
    assert {"arch", "scale", "config", "state_dict", "labels", "seed"} == set(ckpt)
    assert (ckpt["arch"], ckpt["scale"], ckpt["config"]["width"]) == ("srcnn", 2, 8)
    with pytest.raises(ValueError, match="state_dict"):
        save_checkpoint(tmp_path / "x.pt", net, state_dict={})


def test_pre_issue_12_format_still_reads(tmp_path):
    net = create_network("srcnn", scale=2, width=8)
    legacy = {"network": net.state_dict(), "medgen_meta": {"arch": "srcnn", "scale": 2, "config": net.config}}
    torch.save(legacy, tmp_path / "old.pt")
    rebuilt = load_checkpoint(tmp_path / "old.pt")
    assert rebuilt.config == net.config


def test_safetensors_and_bare_state_dicts_load_into_a_model(tmp_path):
    from safetensors.torch import save_file

    net = torch.nn.Linear(3, 2)
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    other = load_checkpoint(tmp_path / "w.safetensors", torch.nn.Linear(3, 2))
    assert torch.equal(other.weight, net.weight)
    torch.save({"network": net.state_dict()}, tmp_path / "monai.pt")  # MONAI CheckpointSaver layout
    assert torch.equal(load_checkpoint(tmp_path / "monai.pt", torch.nn.Linear(3, 2)).bias, net.bias)
    with pytest.raises(ValueError, match="monai.pt.*no arch/scale metadata"):
        load_checkpoint(tmp_path / "monai.pt")


def test_wrong_weights_name_file_and_arch(tmp_path):
    path = save_checkpoint(tmp_path / "n.pt", torch.nn.Linear(4, 4))
    with pytest.raises(CheckpointError, match=r"n.pt.*'Linear'.*does not fit Linear"):
        load_checkpoint(path, torch.nn.Linear(3, 3))


def test_arch_scale_mismatch_names_both(tmp_path):
    net = create_network("rdn_half", scale=4)
    path = save_checkpoint(tmp_path / "m.pt", net, labels=["a", "b"])
    with pytest.raises(ValueError, match=r"m.pt.*arch='rdn_half' scale=4.*arch='srcnn' scale=2"):
        load_checkpoint(path, create_network("srcnn", scale=2))
    assert read_checkpoint(path)["labels"] == ["a", "b"]  # extras travel at the top level
