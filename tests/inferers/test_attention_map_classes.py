"""The attention-map classes of ``medgen.inferers.attention``: registry-generated shape/range/wrapper checks, the
name lookup errors, and each method against an independent re-implementation written from its definition."""

import pytest
import torch
import torch.nn.functional as F

from medgen.inferers.attention import (
    ATTENTION_MAPS,
    CLASS_METHODS,
    AttentionMapBase,
    ClsAttention,
    GradCAMAttention,
    HeadClassMaps,
    compute_attention_maps,
    compute_class_attention_maps,
    look_up_attention_map,
    record_attention,
)
from medgen.networks.nets.vit_classifier import ViTClassifier


def _net(head="cls"):
    torch.manual_seed(0)
    return ViTClassifier(
        ("a", "b", "c"), img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2, head=head
    ).eval()


def _minmax(m):
    lo = m.flatten(-2).amin(-1)[..., None, None]
    hi = m.flatten(-2).amax(-1)[..., None, None]
    return (m - lo) / (hi - lo)


@pytest.mark.parametrize("name", sorted(ATTENTION_MAPS))
def test_every_registered_method_shapes_range_batching_and_wrappers(name):
    cls = ATTENTION_MAPS[name]
    assert issubclass(cls, AttentionMapBase) and cls.name == name
    net = _net("csra" if name == "head" else "cls").train()
    x = torch.rand(5, 1, 32, 32)
    logits, maps = cls(net)(x, batch_size=2)
    assert net.training  # the training flag is restored
    assert logits.shape == (5, 3)
    assert maps.shape == ((5, 3, 32, 32) if cls.class_specific else (5, 32, 32))
    assert maps.min() >= 0 and maps.max() <= 1
    # __call__ is compute in eval mode over chunks; the functional front door gives the same tensors
    net.eval()
    torch.testing.assert_close(cls(net).compute(x), (logits, maps), rtol=0, atol=1e-6)
    if cls.class_specific:
        assert torch.equal(compute_class_attention_maps(net, x, method=name, batch_size=2)[1], maps)
        assert torch.equal(CLASS_METHODS[name](net, x)[1], cls(net).compute(x)[1])
        assert torch.equal(cls(net)(x, classes=[2, 0])[1], cls(net)(x)[1][:, [2, 0]])
    else:
        assert torch.equal(compute_attention_maps(net, x, method=name, batch_size=2)[1], maps)
        with pytest.raises(ValueError, match="class-agnostic"):
            cls(net)(x, classes=[0])


def test_class_methods_are_the_class_specific_registry_entries():
    assert set(CLASS_METHODS) == {n for n, c in ATTENTION_MAPS.items() if c.class_specific}
    assert set(ATTENTION_MAPS) == {"cls", "rollout", "grad_rollout", "gradcam", "head"}


def test_look_up_names_the_valid_methods_and_the_closest():
    assert look_up_attention_map("gradcam") is GradCAMAttention
    with pytest.raises(
        ValueError, match=r"'gradrollout' unknown; choose one of \[.*'rollout'.*did you mean 'grad_rollout'"
    ):
        look_up_attention_map("gradrollout")
    with pytest.raises(
        ValueError, match=r"compute_class_attention_maps: .*class-agnostic \['cls', 'rollout'\]"
    ):
        compute_class_attention_maps(_net(), torch.rand(1, 1, 32, 32), method="rollout")
    with pytest.raises(ValueError, match="stitch must be 'interleave' or 'mean'"):
        HeadClassMaps(_net("csra"), stitch="max")


def test_cls_attention_is_the_last_cls_row_upsampled():
    net = _net()
    x = torch.rand(2, 1, 32, 32)
    with record_attention(net) as rec, torch.no_grad():
        net(x)
    row = rec[-1][:, :, 0, 1:].reshape(2, 2, 4, 4)  # (B, heads, grid)
    up = F.interpolate(row, size=(32, 32), mode="bilinear", align_corners=False)
    _, per_head = ClsAttention(net, per_head=True).compute(x)
    _, mean = ClsAttention(net).compute(x)
    assert torch.allclose(per_head, _minmax(up), atol=1e-5)
    mean_up = F.interpolate(row.mean(1, keepdim=True), size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(mean, _minmax(mean_up[:, 0]), atol=1e-5)


def test_gradcam_matches_the_definition_computed_by_hand():
    net = _net()
    x = torch.rand(2, 1, 32, 32)
    feats = []
    h = net.vit.blocks[-1].register_forward_pre_hook(lambda _m, a: feats.append(a[0]))
    logits = net(x.clone().requires_grad_(True))
    h.remove()
    _, maps = GradCAMAttention(net).compute(x)
    for c in range(3):
        (g,) = torch.autograd.grad(logits[:, c].sum(), feats[0], retain_graph=True)
        cam = torch.relu((g[:, 1:].mean(1, keepdim=True) * feats[0][:, 1:]).sum(-1)).detach()
        up = F.interpolate(cam.reshape(2, 1, 4, 4), size=(32, 32), mode="bilinear", align_corners=False)
        assert torch.allclose(maps[:, c], _minmax(up[:, 0]), atol=1e-5)


def _shifted(x, dy, dx):
    """Content moved down/right by (dy, dx) px with the first row/column repeated (index clamping)."""
    rows = (torch.arange(x.shape[-2]) - dy).clamp(min=0)
    cols = (torch.arange(x.shape[-1]) - dx).clamp(min=0)
    return x[..., rows, :][..., cols]


def _lerp_matrix(centres, size):
    """(size, n) weights of linear interpolation at pixel centres between sample ``centres`` (sorted, px),
    constant beyond the first and last sample."""
    p = (torch.arange(size, dtype=torch.float64) + 0.5).clamp(centres[0], centres[-1])
    k = (torch.searchsorted(centres, p, right=True) - 1).clamp(max=len(centres) - 2)
    t = (p - centres[k]) / (centres[k + 1] - centres[k])
    w = torch.zeros(size, len(centres), dtype=torch.float64)
    w[torch.arange(size), k] = 1 - t
    w[torch.arange(size), k + 1] += t
    return w


@pytest.mark.parametrize("shifts", [2, 4])
@pytest.mark.parametrize("stitch", ["interleave", "mean"])
def test_head_shift_and_stitch_matches_a_geometric_reimplementation(shifts, stitch):
    """Every pass's token centres in pixels, interpolated linearly per axis: all passes' samples merged in
    position order (interleave), or each pass on its own centres and the maps averaged (mean)."""
    net = _net("csra")
    x = torch.rand(2, 1, 32, 32)
    patch, step = 8, 8 // shifts
    with torch.no_grad():
        passes = {
            (jy, jx): net.class_token_scores(_shifted(x, jy * step, jx * step)).reshape(2, 3, 4, 4).double()
            for jy in range(shifts)
            for jx in range(shifts)
        }
    centres = lambda j: patch * (torch.arange(4, dtype=torch.float64) + 0.5) - j * step  # noqa: E731
    if stitch == "mean":
        ref = sum(
            _lerp_matrix(centres(jy), 32) @ sc @ _lerp_matrix(centres(jx), 32).T
            for (jy, jx), sc in passes.items()
        )
    else:
        all_c = torch.cat([centres(j) for j in range(shifts)])
        order = all_c.argsort()
        fine = torch.zeros(2, 3, 4 * shifts, 4 * shifts, dtype=torch.float64)
        for (jy, jx), sc in passes.items():
            rank = order.argsort()  # position of each (pass, token) centre in the merged sorted list
            ry, rx = rank[jy * 4 : jy * 4 + 4], rank[jx * 4 : jx * 4 + 4]
            fine[:, :, ry[:, None], rx[None, :]] = sc
        w = _lerp_matrix(all_c[order], 32)
        ref = w @ fine @ w.T
    logits, maps = HeadClassMaps(net, shifts=shifts, stitch=stitch).compute(x)
    assert torch.allclose(maps.double(), _minmax(ref), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(logits, net(x), atol=1e-6)
