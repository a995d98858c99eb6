import pytest
import torch
from monai.data import DataLoader, Dataset

from medgen.engines.sr import (
    InterpolationSR,
    SRPrepareBatch,
    create_sr_evaluator,
    create_sr_trainer,
    per_image_metrics,
    phantom_sr_items,
    sr_patch_transform,
    sr_whole_image_transform,
)
from medgen.engines.sr_distill import DISTILLATION_PRESETS, FeatureAdapters, create_distillation_trainer
from medgen.engines.sr_gan import SRGANTrainer
from medgen.losses.sr import AdversarialLoss, PixelLoss
from medgen.metrics.image import psnr, ssim
from medgen.registry import create_network


@pytest.fixture(scope="module")
def items():
    from medgen.data.phantom import PhantomDataset

    ds = PhantomDataset(3, size=128, seed=0)
    return [{k: ds[i][k] for k in ("image", "patient_id", "index")} for i in range(3)]


def _patch_loader(items, batch=3):
    ds = Dataset(items, transform=sr_patch_transform(scale=2, lr_patch=12, gaussian_std=0.01))
    return DataLoader(ds, batch_size=batch, shuffle=False, num_workers=0)


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def _changed(before, net):
    return any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_patch_pairs_are_aligned(items):
    batch = next(iter(_patch_loader(items)))
    assert batch["lr"].shape == (3, 1, 12, 12) and batch["hr"].shape == (3, 1, 24, 24)
    lr, hr = SRPrepareBatch()(batch)
    # LR is the degraded HR patch: its 2x2 block means track the HR patch closely
    assert (torch.nn.functional.avg_pool2d(hr, 2) - lr).abs().mean() < 0.05


def test_prepare_batch_names_missing_keys():
    with pytest.raises(KeyError, match="PairedDegradationd"):
        SRPrepareBatch()({"image": torch.zeros(1)})


def test_trainer_updates_network_and_evaluator_matches_direct_metrics(items):
    torch.manual_seed(0)
    net = create_network("swift_srgan_tiny", scale=2)
    before = _params(net)
    trainer = create_sr_trainer(net, _patch_loader(items), max_epochs=2)
    trainer.run()
    assert _changed(before, net)

    whole = DataLoader(Dataset(items, transform=sr_whole_image_transform(scale=2)), batch_size=2)
    for model in (net, InterpolationSR(2, "bicubic")):
        ev = create_sr_evaluator(model, whole)
        ev.run()
        got = per_image_metrics(ev)
        assert len(got["psnr"]) == 3
        with torch.no_grad():
            lr = torch.cat([b["lr"] for b in whole])
            hr = torch.cat([b["hr"] for b in whole])
            pred = model.eval()(lr)
        assert torch.allclose(torch.tensor(got["psnr"]), psnr(pred, hr), atol=1e-3)
        assert torch.allclose(torch.tensor(got["ssim"]), ssim(pred, hr), atol=1e-4)
        assert abs(ev.state.metrics["psnr"] - psnr(pred, hr).mean().item()) < 1e-3


@pytest.mark.parametrize("preset", sorted(DISTILLATION_PRESETS))
def test_distillation_updates_student_and_adapters_not_teacher(items, preset):
    cfg = DISTILLATION_PRESETS[preset]
    teacher = create_network(cfg["teacher"], scale=2)
    student = create_network(cfg["student"], scale=2)
    t_before, s_before = _params(teacher), _params(student)
    trainer = create_distillation_trainer(
        student, teacher, _patch_loader(items), max_epochs=1, gamma=cfg["gamma"]
    )
    a_before = _params(trainer.adapters)
    trainer.run()
    assert _changed(s_before, student)
    assert _changed(a_before, trainer.adapters)
    assert not _changed(t_before, teacher)
    assert not any(p.requires_grad for p in teacher.parameters())
    out = trainer.state.output
    assert out["loss_feature"] > 0 and out["loss_teacher"] > 0


def test_feature_adapters_pair_depths_and_resize():
    teacher, student = create_network("rdn", scale=2), create_network("srcnn", scale=2)
    adapters = FeatureAdapters(student, teacher, num_pairs=2)
    assert adapters.teacher_idx[-1] == len(teacher.forward_features(torch.zeros(1, 1, 8, 8))) - 1
    x = torch.rand(1, 1, 8, 8)
    value = adapters(
        student.forward_features(x), teacher.forward_features(x)
    )  # HR-size student vs LR teacher
    assert value > 0


def test_gan_trainer_updates_both_networks(items):
    torch.manual_seed(0)
    g = create_network("swift_srgan_tiny", scale=2)
    d = create_network("swift_srgan_discriminator", width=8, num_blocks=4)
    g_before, d_before = _params(g), _params(d)
    trainer = SRGANTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=_patch_loader(items),
        generator=g,
        discriminator=d,
        g_optimizer=torch.optim.Adam(g.parameters(), 1e-4),
        d_optimizer=torch.optim.Adam(d.parameters(), 1e-4),
        pixel_loss=PixelLoss(),
        adversarial_loss=AdversarialLoss("relativistic"),
    )
    trainer.run()
    assert _changed(g_before, g) and _changed(d_before, d)
    assert trainer.state.output["d_loss"] > 0


def test_phantom_items_split_by_patient():
    train, val, test = phantom_sr_items(12, hr_size=128, fractions=(0.5, 0.25, 0.25))
    assert len(train) + len(val) + len(test) == 12
    groups = [{it["patient_id"] for it in split} for split in (train, val, test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert train[0]["image"].shape == (1, 128, 128)


def test_phantom_items_low_noise_hr_reference():
    """``hr_noise_scale`` lowers the HR reference's quantum noise; split, patients and anatomy stay the same."""
    import numpy as np

    from medgen.data.phantom import render_phantom

    kw = dict(n=8, hr_size=256, fractions=(0.5, 0.25, 0.25), split=0)
    noisy, low = phantom_sr_items(**kw), phantom_sr_items(**kw, hr_noise_scale=0.25)
    assert [it["index"] for it in noisy] == [it["index"] for it in low]
    assert [it["patient_id"] for it in noisy] == [it["patient_id"] for it in low]
    for a, b in zip(noisy, low):
        noiseless = render_phantom(a["index"], 256, noise_scale=0.0).image
        err_default = np.abs(a["image"][0] - noiseless).mean()
        err_low = np.abs(b["image"][0] - noiseless).mean()
        assert err_default > 1e-3 and err_low < 0.4 * err_default  # noise std x 0.25 (clipping aside)
