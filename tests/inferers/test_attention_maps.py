"""Attention maps of a tiny timm ViT: shapes, [0, 1] range, fused == unfused logits, rollout."""

import torch

from medgen.inferers.attention import (
    attention_rollout,
    cls_attention_maps,
    compute_attention_maps,
    record_attention,
)
from medgen.networks.nets.vit_classifier import ViTClassifier


def _tiny():
    torch.manual_seed(0)
    return ViTClassifier(("a", "b"), img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2).eval()


def test_cls_maps_shape_range_and_fused_logits_equal():
    net = _tiny()
    fused_flags = [blk.attn.fused_attn for blk in net.blocks]
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        fused = net(x)
    logits, maps = cls_attention_maps(net, x, per_head=True)
    assert torch.allclose(fused, logits, atol=1e-5)
    assert maps.shape == (3, 2, 32, 32)
    assert maps.min() >= 0 and maps.max() <= 1
    assert torch.allclose(maps.flatten(-2).amax(-1), torch.ones(3, 2))
    # hooks removed and fused attention restored afterwards
    assert [blk.attn.fused_attn for blk in net.blocks] == fused_flags
    assert all(len(blk.attn.attn_drop._forward_hooks) == 0 for blk in net.blocks)


def test_recorded_attention_rows_are_distributions():
    net = _tiny()
    with record_attention(net) as rec, torch.no_grad():
        net(torch.rand(2, 1, 32, 32))
    assert len(rec) == 3
    assert rec[0].shape == (2, 2, 17, 17)
    assert torch.allclose(rec[0].sum(-1), torch.ones(2, 2, 17))


def test_rollout_matches_manual_product():
    net = _tiny()
    x = torch.rand(2, 1, 32, 32)
    with record_attention(net) as rec, torch.no_grad():
        net(x)
    r = None
    for a in rec:
        a = 0.5 * torch.eye(17) + 0.5 * a.mean(1)
        a = a / a.sum(-1, keepdim=True)
        r = a if r is None else a @ r
    cls = r[:, 0, 1:].reshape(2, 1, 4, 4)
    ref = torch.nn.functional.interpolate(cls, size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    lo = ref.flatten(1).min(1).values[:, None, None]
    hi = ref.flatten(1).max(1).values[:, None, None]
    _, maps = attention_rollout(net, x)
    assert torch.allclose(maps, (ref - lo) / (hi - lo), atol=1e-5)


def test_compute_attention_maps_batches_and_restores_mode():
    net = _tiny().train()
    logits, maps = compute_attention_maps(net, torch.rand(5, 1, 32, 32), method="cls", batch_size=2)
    assert logits.shape == (5, 2) and maps.shape == (5, 32, 32)
    assert net.training
