import pytest
import torch
from monai.data import DataLoader, Dataset

from medgen.engines.sr import (
    DEGRADATIONS,
    InterpolationSR,
    SRPrepareBatch,
    create_sr_evaluator,
    create_sr_trainer,
    per_image_metrics,
    sr_patch_transform,
    sr_validation_items,
    sr_whole_image_transform,
)
from medgen.engines.sr_distill import (
    DISTILLATION_PRESETS,
    FeatureAdapters,
    create_distillation_trainer,
    distillation_loss_terms,
)
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


def _phantom(n, size, fractions, noise_scale=1.0):
    from medgen.data.datalist import load_datalist

    kwargs = {"n": n, "size": size, "noise_scale": noise_scale}
    return load_datalist("phantom", None, kwargs, {"fractions": fractions})


def test_phantom_items_split_by_patient():
    train, val, test = _phantom(12, 128, (0.5, 0.25, 0.25))
    assert len(train) + len(val) + len(test) == 12
    groups = [{it["patient_id"] for it in split} for split in (train, val, test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert train[0]["image"].shape == (1, 128, 128)


def test_phantom_items_low_noise_hr_reference():
    """``noise_scale`` (the bundle's ``hr_noise_scale``) lowers the HR reference's quantum noise; split,
    patients and anatomy stay the same."""
    import numpy as np

    from medgen.data.phantom import render_phantom

    noisy, low = _phantom(8, 256, (0.5, 0.25, 0.25))[0], _phantom(8, 256, (0.5, 0.25, 0.25), 0.25)[0]
    assert [it["index"] for it in noisy] == [it["index"] for it in low]
    assert [it["patient_id"] for it in noisy] == [it["patient_id"] for it in low]
    for a, b in zip(noisy, low):
        noiseless = render_phantom(a["index"], 256, noise_scale=0.0).image
        err_default = np.abs(a["image"][0] - noiseless).mean()
        err_low = np.abs(b["image"][0] - noiseless).mean()
        assert err_default > 1e-3 and err_low < 0.4 * err_default  # noise std x 0.25 (clipping aside)


def _is_clean_bicubic(lr, hr, scale):
    from medgen.transforms.degradation import downsample

    return torch.allclose(torch.as_tensor(lr), torch.as_tensor(downsample(hr, scale, "bicubic")), atol=1e-6)


def _mixed_lrs(items, seed, n=16):
    t = sr_patch_transform(scale=2, lr_patch=12, degradations=["bicubic", "blur_noise"]).set_random_state(
        seed
    )
    return [t(dict(items[i % len(items)])) for i in range(n)]


def test_mixed_degradations_use_both_variants_reproducibly(items):
    pairs = _mixed_lrs(items, seed=3)
    clean = [_is_clean_bicubic(p["lr"], p["hr"], 2) for p in pairs]
    # each patch is either exactly the clean bicubic LR of its HR patch or the blurred, noisy one; both occur
    assert 0 < sum(clean) < len(clean)
    for p, c in zip(pairs, clean):
        if not c:  # blur + noise: far from the clean LR (noise std >= 0.005, blur removes detail)
            from medgen.transforms.degradation import downsample

            assert (p["lr"] - torch.as_tensor(downsample(p["hr"], 2, "bicubic"))).abs().mean() > 2e-3
    again = _mixed_lrs(items, seed=3)
    assert all(torch.equal(a["lr"], b["lr"]) and torch.equal(a["hr"], b["hr"]) for a, b in zip(pairs, again))
    other = _mixed_lrs(items, seed=4)
    assert [_is_clean_bicubic(p["lr"], p["hr"], 2) for p in other] != clean or not all(
        torch.equal(a["lr"], b["lr"]) for a, b in zip(pairs, other)
    )


def test_mixed_degradations_weights_and_bad_options(items):
    only_clean = sr_patch_transform(
        scale=2, lr_patch=12, degradations=["bicubic", "blur_noise"], weights=[1.0, 0.0]
    ).set_random_state(0)
    assert all(_is_clean_bicubic(p["lr"], p["hr"], 2) for p in (only_clean(dict(items[0])) for _ in range(6)))
    with pytest.raises(ValueError, match="degradations: unknown degradation 'blurry'"):
        sr_patch_transform(degradations=["bicubic", "blurry"])
    with pytest.raises(ValueError, match="weights has 1 entries for 2 degradations"):
        sr_patch_transform(degradations=["bicubic", "blur_noise"], weights=[1.0])
    with pytest.raises(ValueError, match="not both"):
        sr_patch_transform(degradations=["bicubic"], gaussian_std=0.01)
    with pytest.raises(ValueError, match=r"degradations\[0\]: unknown keys \['sigma'\]"):
        sr_patch_transform(degradations=[{"sigma": 1.0}])


def test_validation_items_cover_every_degradation_with_fixed_noise(items):
    val = sr_validation_items(items, scale=2, degradations=["bicubic", "blur_noise"], seed=0)
    assert [v["degradation"] for v in val] == ["bicubic"] * 3 + ["blur_noise"] * 3
    assert [v["patient_id"] for v in val] == [it["patient_id"] for it in items] * 2
    for v in val[:3]:
        assert v["lr"].shape == (1, 64, 64) and _is_clean_bicubic(v["lr"], v["hr"], 2)
    for v in val[3:]:
        assert not _is_clean_bicubic(v["lr"], v["hr"], 2)
    again = sr_validation_items(items, scale=2, degradations=["bicubic", "blur_noise"], seed=0)
    assert all(torch.equal(a["lr"], b["lr"]) for a, b in zip(val, again))
    # the blur_noise LR is the one the evaluation uses for that variant (same transform, same seed)
    ref = sr_whole_image_transform(2, **DEGRADATIONS["blur_noise"], seed=0)(dict(items[0]))
    assert torch.equal(ref["lr"], val[3]["lr"])


def test_distillation_loss_terms_are_logged(items):
    import logging

    from monai.handlers import StatsHandler

    teacher, student = create_network("rdn", scale=2), create_network("swift_srgan_tiny", scale=2)
    trainer = create_distillation_trainer(student, teacher, _patch_loader(items), max_epochs=1, gamma=0.1)
    records: list[logging.LogRecord] = []
    sink = logging.Handler(logging.INFO)
    sink.emit = records.append
    logging.getLogger("distill_stats").addHandler(sink)
    StatsHandler(name="distill_stats", output_transform=distillation_loss_terms).attach(trainer)
    try:
        trainer.run()
    finally:
        logging.getLogger("distill_stats").removeHandler(sink)
    terms = distillation_loss_terms(trainer.state.output)
    assert set(terms) == {"loss", "loss_hr", "loss_teacher", "loss_feature"}
    assert terms["loss"] == pytest.approx(
        terms["loss_hr"] + terms["loss_teacher"] + 0.1 * terms["loss_feature"], rel=1e-4
    )
    logged = [r.getMessage() for r in records]
    assert any("loss_hr:" in m and "loss_feature:" in m for m in logged)
    with pytest.raises(KeyError, match="DistillationStep"):
        distillation_loss_terms({"loss": torch.tensor(1.0)})


def test_channel_normalised_feature_matching_is_scale_free():
    torch.manual_seed(0)
    teacher, student = create_network("rdn", scale=2), create_network("srcnn", scale=2)
    adapters = FeatureAdapters(student, teacher, num_pairs=2)
    x = torch.rand(2, 1, 8, 8)
    s_feats, t_feats = student.forward_features(x), teacher.forward_features(x)
    base = adapters(s_feats, t_feats)
    # a per-channel affine change of the teacher's features (scale 1000, shift 5) leaves the term unchanged
    scaled = [1000 * t + 5 for t in t_feats]
    assert torch.allclose(adapters(s_feats, scaled), base, rtol=1e-3)
    # an adapter that outputs zeros scores exactly 1 (the standardised target's variance) per pair
    for a in adapters.adapters:
        torch.nn.init.zeros_(a.weight), torch.nn.init.zeros_(a.bias)
    assert adapters(s_feats, t_feats).item() == pytest.approx(1.0, abs=1e-3)
    relative = FeatureAdapters(student, teacher, num_pairs=2, normalize="relative")
    assert not torch.allclose(relative(s_feats, scaled), relative(s_feats, t_feats), rtol=1e-3)
    with pytest.raises(ValueError, match="normalize='z'"):
        FeatureAdapters(student, teacher, normalize="z")


def test_bundle_gan_workflow_trains_generator_and_discriminator(tmp_path):
    """``train_gan.yaml`` through the bundle (smoke sizes): SRGANTrainer steps both networks and saves them."""
    from medgen.cli import main
    from medgen.networks.utils import load_checkpoint

    assert (
        main(["run", "cxr_sr_distillation", "train_gan", "--config", "smoke", "--bundle-root", str(tmp_path)])
        == 0
    )
    generator = load_checkpoint(tmp_path / "models" / "srgan.pt")
    assert generator.arch == "swift_srgan" and generator.scale == 4
    assert (tmp_path / "models" / "srgan_best.pt").is_file()  # best validation PSNR (CheckpointSaver)
    (ckpt,) = (tmp_path / "runs" / "checkpoints" / "srgan").glob("checkpoint_epoch=*.pt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    # the discriminator's optimizer holds Adam moments only if the discriminator was actually stepped
    assert state["d_optimizer"]["state"] and state["optimizer"]["state"]
    assert set(state["discriminator"]) == set(create_network("swift_srgan_discriminator").state_dict())
