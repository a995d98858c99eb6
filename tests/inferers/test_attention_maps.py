"""Attention maps of a tiny timm ViT: shapes, [0, 1] range, fused == unfused logits, rollout, and the
class-specific maps (gradient-weighted rollout, Grad-CAM): formula, class selectivity on a hand-built ViT, errors."""

import pytest
import torch

from medgen.inferers.attention import (
    attention_rollout,
    cls_attention_maps,
    combine_class_maps,
    compute_attention_maps,
    compute_class_attention_maps,
    gradient_rollout,
    head_class_maps,
    normalize_maps,
    record_attention,
)
from medgen.metrics.localization import localization_report
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


# ---- class-specific maps (gradient-weighted rollout, Grad-CAM) ----


def _tiny_classes(n=3, depth=3):
    torch.manual_seed(0)
    return ViTClassifier(
        tuple("abcdefgh"[:n]), img_size=32, patch_size=8, embed_dim=32, depth=depth, num_heads=2
    ).eval()


@pytest.mark.parametrize("method", ["grad_rollout", "gradcam"])
def test_class_maps_shape_range_batching_and_distinct_classes(method):
    net = _tiny_classes()
    x = torch.rand(5, 1, 32, 32)
    with torch.no_grad():
        ref_logits = net(x)
    logits, maps = compute_class_attention_maps(net, x, method=method, batch_size=2)
    assert torch.allclose(logits, ref_logits, atol=1e-5)
    assert maps.shape == (5, 3, 32, 32)
    assert maps.min() >= 0 and maps.max() <= 1
    # chunking does not change the maps (the per-sample gradients do not mix across the batch)
    _, whole = compute_class_attention_maps(net, x, method=method, batch_size=32)
    assert torch.allclose(maps, whole, atol=1e-5)
    # different classes explain different things
    assert (maps[:, 0] - maps[:, 1]).abs().mean() > 0.05
    # a subset of classes returns those channels, in the order asked
    _, sub = compute_class_attention_maps(net, x, method=method, classes=[2, 0])
    assert torch.allclose(sub, whole[:, [2, 0]], atol=1e-5)
    # nothing is left behind: no parameter gradients, hooks removed, fused attention restored
    assert all(p.grad is None for p in net.parameters())
    assert all(len(blk.attn.attn_drop._forward_hooks) == 0 for blk in net.blocks)
    assert len(net.vit.blocks[-1]._forward_pre_hooks) == 0


def test_grad_rollout_matches_chefer_formula_computed_by_hand():
    net = _tiny_classes(n=2)
    x = torch.rand(2, 1, 32, 32)
    _, maps = gradient_rollout(net, x)
    for c in range(2):
        xi = x.clone().requires_grad_(True)
        with record_attention(net, keep_graph=True) as rec:
            logits = net(xi)
        assert all(a.requires_grad for a in rec)
        grads = torch.autograd.grad(logits[:, c].sum(), rec)
        r = torch.eye(17).repeat(2, 1, 1)
        for a, g in zip(rec, grads):
            r = r + (g * a).clamp(min=0).mean(1) @ r
        ref = torch.nn.functional.interpolate(
            r[:, 0, 1:].reshape(2, 1, 4, 4).detach(), size=(32, 32), mode="bilinear", align_corners=False
        )[:, 0]
        lo = ref.flatten(1).min(1).values[:, None, None]
        hi = ref.flatten(1).max(1).values[:, None, None]
        assert torch.allclose(maps[:, c], (ref - lo) / (hi - lo), atol=1e-5)


def _hand_built_vit():
    """1 block, 2-d tokens, no norms, uniform attention (q = k = 0), values = tokens, MLP off, head = identity.

    Token features: (mean intensity - 0.5, 0.5 - mean intensity) per 4x4 patch, so a bright patch is (+, -) and a
    dark patch (-, +); logit 0 = "bright" reads feature 0, logit 1 = "dark" reads feature 1. The attention prefers
    nothing; only the gradient weighting can tell which token matters for which class.
    """
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(
        img_size=16,
        patch_size=4,
        in_chans=1,
        num_classes=2,
        embed_dim=2,
        depth=1,
        num_heads=1,
        norm_layer=torch.nn.Identity,
        mlp_ratio=1.0,
    ).eval()
    with torch.no_grad():
        for p in vit.parameters():
            p.zero_()
        vit.patch_embed.proj.weight[0] = 1 / 16
        vit.patch_embed.proj.weight[1] = -1 / 16
        vit.patch_embed.proj.bias[:] = torch.tensor([-0.5, 0.5])
        blk = vit.blocks[0]
        blk.attn.qkv.weight[4:6] = torch.eye(2)  # v = x; q = k = 0 -> uniform attention
        blk.attn.proj.weight[:] = torch.eye(2)
        vit.head.weight[:] = torch.eye(2)
    return vit


def test_gradient_weighting_selects_the_class_relevant_token():
    vit = _hand_built_vit()
    x = torch.full((1, 1, 16, 16), 0.5)
    x[..., 0:4, 8:12] = 1.0  # bright patch: token (0, 2)
    x[..., 12:16, 4:8] = 0.0  # dark patch: token (3, 1)
    masks = [{"bright": torch.zeros(16, 16, dtype=torch.bool), "dark": torch.zeros(16, 16, dtype=torch.bool)}]
    masks[0]["bright"][0:4, 8:12] = True
    masks[0]["dark"][12:16, 4:8] = True
    _, maps = compute_class_attention_maps(vit, x)
    rep = localization_report(maps[0][None], masks, labels=["bright", "dark"])
    assert rep["per_finding"]["bright"]["pointing_game"] == 1.0
    assert rep["per_finding"]["dark"]["pointing_game"] == 1.0
    # each class's map puts all its mass on its own token and none on the other class's token
    assert maps[0, 0][masks[0]["dark"]].max() < 0.3 and maps[0, 1][masks[0]["bright"]].max() < 0.3
    # the attention itself is uniform (prefers no token), so no attention-only map can point at either finding
    with record_attention(vit) as rec, torch.no_grad():
        vit(x)
    assert torch.allclose(rec[0], torch.full_like(rec[0], 1 / 17))
    # the combined (class-agnostic) grad_rollout map covers both findings
    _, comb = compute_attention_maps(vit, x, method="grad_rollout")
    assert comb[0][masks[0]["bright"]].mean() > 0.5 and comb[0][masks[0]["dark"]].mean() > 0.5


def test_combined_map_is_probability_weighted_class_maps():
    net = _tiny_classes()
    x = torch.rand(3, 1, 32, 32)
    logits, per_class = compute_class_attention_maps(net, x)
    _, comb = compute_attention_maps(net, x, method="grad_rollout")
    w = torch.sigmoid(logits)
    w = w / w.sum(1, keepdim=True)
    ref = normalize_maps((w[:, :, None, None] * per_class).sum(1))
    assert comb.shape == (3, 32, 32) and torch.allclose(comb, ref, atol=1e-6)
    assert torch.allclose(combine_class_maps(logits, per_class), ref, atol=1e-6)


def test_grad_rollout_options_change_the_maps_and_work_with_frozen_weights():
    net = _tiny_classes()
    x = torch.rand(2, 1, 32, 32)
    _, base = compute_class_attention_maps(net, x)
    _, last = compute_class_attention_maps(net, x, start_layer=-1)
    _, mx = compute_class_attention_maps(net, x, head_fusion="max")
    _, ab = compute_class_attention_maps(net, x, weighting="abs")
    for other in (last, mx, ab):
        assert other.shape == base.shape and not torch.allclose(other, base, atol=1e-3)
    for p in net.parameters():
        p.requires_grad_(False)
    with torch.no_grad():  # callers inside no_grad still get gradient maps
        _, frozen = compute_class_attention_maps(net, x)
    assert torch.allclose(frozen, base, atol=1e-6)


def test_class_map_errors():
    net = _tiny_classes()
    x = torch.rand(1, 1, 32, 32)
    with pytest.raises(ValueError, match="choose one of"):
        compute_class_attention_maps(net, x, method="rollout")
    with pytest.raises(ValueError, match="unknown"):
        compute_attention_maps(net, x, method="gradrollout")
    with pytest.raises(ValueError, match=r"class indices \[3\] out of range"):
        compute_class_attention_maps(net, x, classes=[0, 3])
    with pytest.raises(ValueError, match="start_layer=5"):
        compute_class_attention_maps(net, x, start_layer=5)
    with pytest.raises(ValueError, match="head_fusion"):
        compute_class_attention_maps(net, x, head_fusion="median")
    with pytest.raises(ValueError, match="weighting"):
        compute_class_attention_maps(net, x, weighting="negative")
    with pytest.raises(ValueError, match="batch_size"):
        compute_class_attention_maps(net, x, batch_size=0)
    with pytest.raises(TypeError, match="timm VisionTransformer"):
        compute_class_attention_maps(torch.nn.Linear(2, 2), x)


def test_class_attention_figure_writes_png_and_checks_lengths(tmp_path):
    from medgen.visualize.attention import save_class_attention_figure

    imgs = torch.rand(2, 1, 16, 16)
    maps = torch.rand(2, 16, 16)
    masks = [torch.zeros(16, 16, dtype=torch.bool), torch.ones(16, 16, dtype=torch.bool)]
    out = save_class_attention_figure(imgs, [maps, maps], tmp_path / "f.png", masks=masks, titles=["a", "b"])
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="2 images need 2 maps per row"):
        save_class_attention_figure(imgs, [maps[:1]], tmp_path / "g.png", masks=masks)


def test_head_maps_are_the_csra_token_scores():
    torch.manual_seed(0)
    net = ViTClassifier(
        ("a", "b", "c"), img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, head="csra"
    ).eval()
    x = torch.rand(3, 1, 32, 32)
    logits, maps = compute_class_attention_maps(net, x, method="head", batch_size=2, shifts=1)
    with torch.no_grad():
        torch.testing.assert_close(logits, net(x))
        s = net.class_token_scores(x)  # (3, 3, 16)
    assert maps.shape == (3, 3, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    # each class map peaks at the 8-px token with that class's highest score (bilinear upsampling keeps the argmax
    # inside the token's cell)
    for b in range(3):
        for c in range(3):
            t = int(s[b, c].argmax())
            y, xx = divmod(int(maps[b, c].argmax()), 32)
            assert (y // 8, xx // 8) == divmod(t, 4)
    # combined map for region selection works too, and a CLS-head model is refused with the fix named
    assert compute_attention_maps(net, x, method="head")[1].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="head='csra'"):
        compute_class_attention_maps(_tiny_classes(), x, method="head")
    # gradient rollout reads the CLS row, which a csra head never uses: refused instead of flat maps
    with pytest.raises(ValueError, match="never read the CLS token"):
        compute_class_attention_maps(net, x, method="grad_rollout")


class _CentreWeightedTokens(torch.nn.Module):
    """A stand-in csra classifier: each 16-px token scores the brightness near its centre (Gaussian weights)."""

    head = "csra"

    def __init__(self):
        super().__init__()
        self.vit = torch.nn.Module()
        self.vit.blocks = torch.nn.ModuleList()
        self.vit.patch_embed = torch.nn.Module()
        self.vit.patch_embed.grid_size = (4, 4)
        r = torch.arange(16) - 7.5
        g = torch.exp(-(r[:, None] ** 2 + r[None] ** 2) / 18.0)
        self.register_buffer("kernel", g[None, None])

    def class_token_scores(self, x):
        return torch.nn.functional.conv2d(x, self.kernel, stride=16).flatten(2)  # (B, 1, 16)

    def pool_token_scores(self, s):
        return s.amax(-1)


@pytest.mark.parametrize("stitch", ["interleave", "mean"])
def test_head_maps_shift_and_stitch_point_between_token_centres(stitch):
    model = _CentreWeightedTokens()
    x = torch.zeros(1, 1, 64, 64)
    x[..., 30:34, 30:34] = 1.0  # a 4-px spot centred on a token *corner*, 8 px from every token centre
    mask = x[0, 0] > 0
    _, coarse = head_class_maps(model, x, shifts=1)
    _, fine = head_class_maps(model, x, shifts=2, stitch=stitch)
    peak = lambda m: divmod(int(m.argmax()), 64)  # noqa: E731
    assert not mask[peak(coarse[0, 0])]  # the token grid peaks at a token centre, outside the spot
    assert mask[peak(fine[0, 0])]  # the half-token samples of the shifted passes land on it
    # shifts=2 keeps the unshifted pass's values: the coarse token argmax cell is still bright in the fine map
    assert fine.shape == coarse.shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match="shifts must divide"):
        head_class_maps(model, x, shifts=3)
    with pytest.raises(ValueError, match="stitch must be"):
        head_class_maps(model, x, stitch="max")
