"""train_classifier: gradient clipping happens between backward and the optimiser step; options are checked."""

import pytest
import torch

from medgen.engines.classifier import train_classifier
from medgen.networks.nets.vit_classifier import ViTClassifier


def _norms_at_step(monkeypatch, grad_clip):
    seen = []

    class Recording(torch.optim.AdamW):
        def step(self, closure=None):
            grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
            seen.append(
                float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in grads])))
            )
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    torch.manual_seed(0)
    net = ViTClassifier(
        ("a", "b"), img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, head="csra"
    )
    x = torch.rand(8, 1, 32, 32)
    y = (torch.rand(8, 2) > 0.5).float()
    train_classifier(
        net, x, y, epochs=2, batch_size=4, lr=1e-2, grad_clip=grad_clip, progress=False, augment=False
    )
    return seen


def test_grad_clip_bounds_the_gradient_norm_the_optimiser_sees(monkeypatch):
    free = _norms_at_step(monkeypatch, None)
    assert (
        len(free) == 4 and max(free) > 0.05
    )  # 2 epochs x 2 batches; this net's raw gradients exceed the clip
    clipped = _norms_at_step(monkeypatch, 0.05)
    assert len(clipped) == 4 and max(clipped) <= 0.05 + 1e-6


def test_bad_training_options_are_named():
    net = ViTClassifier(("a",), img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2)
    x, y = torch.rand(2, 1, 32, 32), torch.zeros(2, 1)
    with pytest.raises(ValueError, match="grad_clip"):
        train_classifier(net, x, y, grad_clip=0, progress=False)
    with pytest.raises(ValueError, match="warmup"):
        train_classifier(net, x, y, warmup=1.5, progress=False)


def test_gradient_clip_handler_from_a_bundle_config_clips():
    from monai.bundle import ConfigParser
    from monai.engines import SupervisedTrainer

    handler = ConfigParser(
        {"h": {"_target_": "medgen.handlers.gradient.GradientClipHandler", "max_norm": 0.01}}
    )
    handler = handler.get_parsed_content("h")
    net = torch.nn.Linear(4, 1)
    seen = []
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[{"image": torch.rand(8, 4) * 10, "label": torch.rand(8, 1)}],
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=torch.nn.MSELoss(),
        train_handlers=[handler],
        decollate=False,
    )
    from monai.engines.utils import IterationEvents

    trainer.add_event_handler(  # registered after the clip: sees what the optimiser will see
        IterationEvents.BACKWARD_COMPLETED,
        lambda e: seen.append(float(torch.stack([p.grad.norm() for p in net.parameters()]).norm())),
    )
    trainer.run()
    assert seen and seen[0] <= 0.01 + 1e-6
    with pytest.raises(ValueError, match="max_norm"):
        from medgen.handlers.gradient import GradientClipHandler

        GradientClipHandler(0)


def test_augmentations_draw_the_same_pixels_without_meta_tracking():
    """train_classifier runs its augmentations with MONAI metadata tracking off (speed); the pixels must not change."""
    from monai.data import MetaTensor, get_track_meta

    from medgen.engines.classifier import classifier_train_transforms, without_meta_tracking

    x = torch.rand(1, 48, 48, generator=torch.Generator().manual_seed(3))
    outs = []
    for off in (False, True):
        t = classifier_train_transforms(size=48, hflip_prob=0.5).set_random_state(7)
        if off:
            with without_meta_tracking():
                assert not get_track_meta()
                got = [t({"image": x.clone()})["image"] for _ in range(6)]
            assert get_track_meta(), "tracking must be restored after the block"
        else:
            got = [t({"image": x.clone()})["image"] for _ in range(6)]
        outs.append(got)
    assert all(isinstance(o, MetaTensor) for o in outs[0])
    assert not any(isinstance(o, MetaTensor) for o in outs[1])
    changed = sum(not torch.equal(o, x) for o in outs[1])
    assert changed >= 3, "the augmentations should change most draws"
    for a, b in zip(outs[0], outs[1], strict=True):
        torch.testing.assert_close(a.as_tensor(), b, rtol=0, atol=1e-6)
