"""Tests generated from the registry: every network whose factory is marked ``task="super_resolution"``."""

from __future__ import annotations

import pytest
import torch

from medgen.networks.utils import (
    SR_DISCRIMINATOR_TASK,
    SR_TASK,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
)
from medgen.registry import REGISTRY, create_network


def _networks_with_task(task: str) -> list[str]:
    found = []
    for entry in REGISTRY.entries("network"):
        try:
            obj = REGISTRY.get("network", entry.name)
        except Exception:  # another component's import problem is reported by its own tests
            continue
        if getattr(obj, "task", None) == task:
            found.append(entry.name)
    return found


SR_NETS = _networks_with_task(SR_TASK)


def test_zoo_is_registered():
    assert {"srcnn", "vdsr", "rdn", "rdn_half", "srdensenet", "swift_srgan", "swift_srgan_tiny"} <= set(
        SR_NETS
    )
    assert "swift_srgan_discriminator" in _networks_with_task(SR_DISCRIMINATOR_TASK)


def _small(name: str, scale: int):
    return create_network(name, scale=scale).eval()


@pytest.mark.parametrize("name", SR_NETS)
@pytest.mark.parametrize("scale", [2, 4])
def test_output_shape_and_features(name, scale):
    net = _small(name, scale)
    x = torch.rand(2, 1, 12, 10)
    with torch.no_grad():
        y = net(x)
        feats = net.forward_features(x)
        y2, feats2 = net.forward_with_features(x)
    assert y.shape == (2, 1, 12 * scale, 10 * scale)
    assert torch.allclose(y, y2)
    assert isinstance(feats, list) and len(feats) >= 2
    assert all(f.ndim == 4 and f.shape[0] == 2 for f in feats)
    assert net.scale == scale and net.arch == name


@pytest.mark.parametrize("name", SR_NETS)
def test_wrong_input_shape_names_expected(name):
    net = _small(name, 4)
    with pytest.raises(ValueError, match="expects a \\(batch, 1, height, width\\)"):
        net(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize("name", SR_NETS)
def test_a_few_steps_reduce_loss(name):
    torch.manual_seed(0)
    net = create_network(name, scale=2).train()
    hr = torch.nn.functional.interpolate(torch.rand(2, 1, 6, 6), size=(12, 12), mode="bilinear")  # smooth
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.l1_loss(net(lr), hr)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_width_depth_presets_parameter_counts():
    teacher, student = create_network("rdn"), create_network("rdn_half")
    ratio = count_parameters(student) / count_parameters(teacher)
    assert ratio <= 0.25, ratio
    assert student.config["num_features"] * 2 == teacher.config["num_features"]
    assert student.config["num_blocks"] * 2 == teacher.config["num_blocks"]
    assert count_parameters(create_network("swift_srgan_tiny")) < 0.25 * count_parameters(
        create_network("swift_srgan")
    )
    # width is a real knob: doubling VDSR width roughly quadruples the hidden conv parameters
    p1, p2 = (
        count_parameters(create_network("vdsr", width=16)),
        count_parameters(create_network("vdsr", width=32)),
    )
    assert 3.5 < p2 / p1 < 4.1


def test_unknown_argument_lists_valid_ones():
    with pytest.raises(TypeError, match="num_blocks"):
        create_network("rdn", blocks=3)


def test_unsupported_scale_is_refused():
    with pytest.raises(ValueError, match="scale=3 is not supported"):
        create_network("srdensenet", scale=3)


def test_discriminator_logit_shape():
    d = create_network("swift_srgan_discriminator", width=8, num_blocks=4)
    assert d(torch.rand(3, 1, 32, 32)).shape == (3, 1)


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    net = create_network("rdn_half", scale=4)
    path = save_checkpoint(tmp_path / "rdn_half.pt", net)
    rebuilt = load_checkpoint(path)  # rebuilt from the registry using the stored arch/config
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), net.eval()(x))
    with pytest.raises(ValueError, match="arch='rdn_half' scale=4.*arch='rdn' scale=4"):
        load_checkpoint(path, create_network("rdn", scale=4))
    with pytest.raises(ValueError, match="arch='rdn_half' scale=4.*arch='rdn_half' scale=2"):
        load_checkpoint(path, create_network("rdn_half", scale=2))


@pytest.mark.parametrize("name", SR_NETS)
def test_torchscript_export_matches_eager(name):
    """Bundles export with TorchScript (``ckpt_export``); every SR network must script and agree."""
    net = _small(name, 2)
    scripted = torch.jit.script(net)
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(scripted(x), net(x), atol=1e-5)
