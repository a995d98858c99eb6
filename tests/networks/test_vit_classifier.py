"""ViT multi-label classifier: logits shape, label-list checkpoint refusal, loss, registry."""

import pytest
import torch

import medgen
from medgen.losses.classification import MultiLabelBCELoss, pos_weight_from_labels
from medgen.networks.nets.vit_classifier import (
    ViTClassifier,
    load_classifier_checkpoint,
    save_classifier_checkpoint,
)
from medgen.networks.utils import read_checkpoint

LABELS = ("Mass", "Nodule", "Effusion")


def _tiny(labels=LABELS, **kwargs):
    return ViTClassifier(
        labels, **{"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, **kwargs}
    )


def test_forward_returns_logits_tensor():
    net = _tiny().eval()
    out = net(torch.rand(2, 1, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)
    assert net.grid_size == (4, 4)


def test_registry_front_door_builds_small_vit():
    net = medgen.create_network("vit_phantom_small", labels=LABELS, img_size=32, patch_size=8, depth=1)
    assert net(torch.rand(1, 1, 32, 32)).shape == (1, 3)


def test_checkpoint_roundtrip_and_label_mismatch_refused(tmp_path):
    net = _tiny()
    path = save_classifier_checkpoint(tmp_path / "clf.pt", net)
    ckpt = read_checkpoint(path)  # the one medgen format, labels as an extra
    assert {"arch", "scale", "config", "state_dict"} <= set(ckpt) and ckpt["labels"] == list(net.labels)
    other = _tiny()
    load_classifier_checkpoint(path, other)
    x = torch.rand(1, 1, 32, 32)
    assert torch.allclose(net.eval()(x), other.eval()(x))
    with pytest.raises(ValueError, match=r"Nodule.*Mass|trained for labels"):
        load_classifier_checkpoint(path, _tiny(("Nodule", "Mass", "Effusion")))


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        ViTClassifier(LABELS, timm_name="vit_tiny_patch16_224", pretrained_path=tmp_path / "nope.pth")


def test_pos_weight_and_bce():
    y = torch.tensor([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.float32)
    pw = pos_weight_from_labels(y, max_weight=10)
    assert torch.allclose(pw, torch.tensor([1.0, 3.0, 10.0]))
    logits = torch.randn(4, 3)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, pos_weight=pw)
    assert torch.allclose(MultiLabelBCELoss(pos_weight=pw.tolist())(logits, y), ref)
    with pytest.raises(ValueError, match="targets"):
        MultiLabelBCELoss()(logits, y[:, :2])


def test_pretrained_path_loads_local_weights_only(tmp_path):
    import timm

    # an ImageNet-style RGB checkpoint (3 input channels, 1000-class head) into the 1-channel radiograph ViT
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=1000, in_chans=3)
    torch.save(source.state_dict(), tmp_path / "vit_tiny.pth")
    net = ViTClassifier(
        LABELS, timm_name="vit_tiny_patch16_224", pretrained_path=tmp_path / "vit_tiny.pth", in_chans=1
    )
    assert torch.equal(net.vit.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    rgb = source.patch_embed.proj.weight
    assert net.vit.patch_embed.proj.weight.shape[1] == 1
    # timm's adapt_input_conv: the RGB kernels summed, so a grey image x gives what RGB (x, x, x) gave
    torch.testing.assert_close(net.vit.patch_embed.proj.weight, rgb.sum(dim=1, keepdim=True))
    from safetensors.torch import save_file

    save_file(source.state_dict(), str(tmp_path / "vit_tiny.safetensors"))
    net2 = ViTClassifier(
        LABELS,
        timm_name="vit_tiny_patch16_224",
        pretrained_path=tmp_path / "vit_tiny.safetensors",
        in_chans=1,
    )
    assert torch.equal(net2.vit.patch_embed.proj.weight, net.vit.patch_embed.proj.weight)
    assert net.vit.head.out_features == len(LABELS)  # the head follows the config's labels, not the file's
    # full.yaml's combination: pretrained timm ViT + csra head (+ local attention) from the same local file
    csra = ViTClassifier(
        LABELS,
        timm_name="vit_tiny_patch16_224",
        pretrained_path=tmp_path / "vit_tiny.pth",
        in_chans=1,
        head="csra",
        local_attention=2,
    ).eval()
    assert torch.equal(csra.vit.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    with torch.no_grad():
        assert csra.class_token_scores(torch.rand(1, 1, 224, 224)).shape == (1, len(LABELS), 196)
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not fit this ViT"):
        ViTClassifier(
            LABELS, timm_name="vit_tiny_patch16_224", pretrained_path=tmp_path / "other.pth", in_chans=1
        )


def test_conv_stem_width_and_depth_keep_the_token_grid():
    kw = dict(img_size=64, patch_size=16, embed_dim=32, depth=1, num_heads=2, conv_stem=True)
    plain = medgen.create_network("vit_phantom_small", **kw)
    deep = medgen.create_network("vit_phantom_small", stem_width=24, stem_depth=2, **kw)
    convs = [m for m in deep.vit.patch_embed.modules() if isinstance(m, torch.nn.Conv2d)]
    # 3 stages x 2 convs + the 2x2 patchify; widths 24 -> 32 (capped at embed_dim)
    assert len(convs) == 7 and convs[0].out_channels == 24 and convs[1].stride == (1, 1)
    assert sum(p.numel() for p in deep.parameters()) > sum(p.numel() for p in plain.parameters())
    x = torch.rand(2, 1, 64, 64)
    assert deep(x).shape == (2, len(deep.labels))
    assert tuple(deep.vit.patch_embed.grid_size) == tuple(plain.vit.patch_embed.grid_size) == (4, 4)
    with pytest.raises(ValueError, match="stem_depth"):
        medgen.create_network("vit_phantom_small", stem_depth=0, **kw)


def test_csra_head_pools_token_scores_as_in_the_paper():
    net = _tiny(depth=1, head="csra", csra_lambda=0.5, csra_temperature=3.0).eval()
    x = torch.rand(2, 1, 32, 32)
    s = net.class_token_scores(x)
    assert s.shape == (2, 3, 16)  # one score per class per patch token (4 x 4 grid)
    # Zhu & Wu 2021: mean over tokens + lambda * softmax(T s)-weighted sum, computed here by hand
    w = torch.exp(3.0 * s) / torch.exp(3.0 * s).sum(-1, keepdim=True)
    expected = s.mean(-1) + 0.5 * (w * s).sum(-1)
    torch.testing.assert_close(net(x), expected)
    # a huge temperature turns the attention term into max pooling
    net.csra_temperature = 1e6
    torch.testing.assert_close(net(x), s.mean(-1) + 0.5 * s.amax(-1))


def test_csra_head_options_are_checked_and_cls_head_has_no_token_scores():
    with pytest.raises(ValueError, match="head must be"):
        _tiny(depth=1, head="avg")
    with pytest.raises(ValueError, match="csra_temperature"):
        _tiny(depth=1, head="csra", csra_temperature=0)
    with pytest.raises(ValueError, match="only the 'csra' head"):
        _tiny().class_token_scores(torch.rand(1, 1, 32, 32))


def test_local_attention_limits_each_tokens_receptive_field():
    torch.manual_seed(0)
    kw = dict(img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, head="csra")
    local = ViTClassifier(LABELS, local_attention=1, **kw).eval()  # patchify stem: no spill between tokens
    glob = ViTClassifier(LABELS, **kw).eval()
    glob.load_state_dict(local.state_dict())  # same weights, only the attention mask differs
    x = torch.rand(1, 1, 64, 64)
    y = x.clone()
    y[..., :8, :8] = 1 - y[..., :8, :8]  # change token (0, 0) only
    with torch.no_grad():
        changed_local = (local.class_token_scores(y) - local.class_token_scores(x)).abs().sum(1).reshape(
            8, 8
        ) > 1e-6
        changed_glob = (glob.class_token_scores(y) - glob.class_token_scores(x)).abs().sum(1).reshape(
            8, 8
        ) > 1e-6
    # 2 blocks x radius 1: tokens within 2 grid steps of (0, 0) see the change, no others
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[:3, :3] = True
    assert torch.equal(changed_local, expected)
    assert changed_glob.all()  # global attention: every token sees it
    # the CLS token still attends everywhere (prefix rows of the mask are all True)
    assert local.attn_mask[0].all() and not local.attn_mask[1:, 0].any()
    with pytest.raises(ValueError, match="local_attention"):
        ViTClassifier(LABELS, local_attention=0, **kw)
