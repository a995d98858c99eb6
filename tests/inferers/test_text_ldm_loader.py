"""Loading the text-to-X-ray LDM from the bundle's two checkpoints (``load_text_ldm``, ``from_checkpoints``).

Tiny random networks saved through ``save_checkpoint`` (no training): a 2-level autoencoder (x2 down, 2 latent
channels) for 16 px images, a 2-level UNet with a 1-layer scratch text encoder, a 10-step schedule.
:func:`write_tiny_models` is also used by ``test_text_ldm_io.py`` and ``test_cli_generate.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from medgen.inferers.text_ldm import TextLatentDiffusionSampler, load_text_ldm
from medgen.networks.utils import save_checkpoint

REPORTS = ["Heart size is normal. Lungs are clear.", "Small right pleural effusion.", "No pneumothorax."]
IMAGE_SIZE, TRAIN_STEPS = 16, 10


def tiny_networks(latent_channels: int = 2, ae_latent_channels: int | None = None, seed: int = 0):
    """(autoencoder, unet): random weights, MONAI's zero-initialised layers randomised so outputs vary."""
    import medgen
    from medgen.networks.nets.text_ldm import text_conditioned_unet
    from medgen.networks.text.scratch import build_vocab

    torch.manual_seed(seed)
    ae = medgen.create_network(
        "cxr_ldm_autoencoder",
        channels=(8, 8),
        latent_channels=ae_latent_channels or latent_channels,
        num_res_blocks=1,
        norm_num_groups=8,
    )
    encoder = {
        "name": "scratch_transformer",
        "kwargs": {"vocab": build_vocab(REPORTS), "dim": 16, "depth": 1, "heads": 2, "max_tokens": 16},
    }
    unet = text_conditioned_unet(
        encoder, latent_channels=latent_channels, channels=(8, 16), attention_levels=(False, True),
        num_res_blocks=1, num_head_channels=8, norm_num_groups=8,
    )  # fmt: skip
    with torch.no_grad():
        for p in unet.parameters():
            if p.ndim > 1 and not p.any():
                p.normal_(0.0, 0.1)
        ae.scale_factor.fill_(0.8)
    return ae.eval(), unet.eval()


def write_tiny_models(
    folder: str | Path,
    prediction_type: str = "epsilon",
    drop: tuple[str, ...] = (),
    ae_latent_channels: int | None = None,
    **extras,
):
    """``<folder>/autoencoder.pt`` and ``unet.pt`` as the bundle writes them; ``extras`` override the UNet's
    extras (``latent_shape``, ``image_size``, ``autoencoder_scale_factor``...), ``drop`` removes some."""
    ae, unet = tiny_networks(ae_latent_channels=ae_latent_channels)
    folder = Path(folder)
    save_checkpoint(folder / "autoencoder.pt", ae)
    saved = {
        "num_train_timesteps": TRAIN_STEPS,
        "prediction_type": prediction_type,
        "null_prob": 0.1,
        "null_share": 0.1,
        "final_loss": 0.5,
        "ema_decay": 0.999,
        "image_size": IMAGE_SIZE,
        "latent_shape": [2, IMAGE_SIZE // 2, IMAGE_SIZE // 2],
        "autoencoder_scale_factor": 0.8,
        **extras,
    }
    save_checkpoint(folder / "unet.pt", unet, **{k: v for k, v in saved.items() if k not in drop})
    return ae, unet


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    ae, unet = write_tiny_models(folder)
    return folder, ae, unet


def test_loads_a_sampler_that_samples_like_the_networks_it_was_saved_from(models):
    folder, ae, unet = models
    sampler = load_text_ldm(folder)
    assert isinstance(sampler, TextLatentDiffusionSampler)
    assert sampler.image_size == IMAGE_SIZE and sampler.latent_shape == (2, 8, 8)
    assert sampler.scale_factor == pytest.approx(0.8)
    assert sampler.model_name == "cxr_text_ldm (autoencoder.pt, unet.pt)"
    assert sampler.checkpoints == {
        "autoencoder": str((folder / "autoencoder.pt").resolve()),
        "unet": str((folder / "unet.pt").resolve()),
    }
    assert sampler.training["final_loss"] == 0.5 and sampler.device == torch.device("cpu")
    sched = sampler.scheduler
    assert isinstance(sched, DDIMScheduler) and not sched.clip_sample
    assert sched.num_train_timesteps == TRAIN_STEPS and sched.prediction_type == "epsilon"
    # the DDIM runs on the betas of training (train_text_diffusion's DDPMScheduler defaults)
    torch.testing.assert_close(sched.betas, DDPMScheduler(num_train_timesteps=TRAIN_STEPS).betas)

    images = sampler.generate(REPORTS[:2], steps=3, guidance=3.0, seed=5)
    assert images.shape == (2, 1, IMAGE_SIZE, IMAGE_SIZE) and 0 <= images.min() and images.max() <= 1
    by_hand = TextLatentDiffusionSampler(
        unet.text_encoder, unet, ae.vae, DDIMScheduler(TRAIN_STEPS, clip_sample=False), 0.8, (2, 8, 8)
    )
    torch.testing.assert_close(images, by_hand.generate(REPORTS[:2], steps=3, guidance=3.0, seed=5))


def test_from_checkpoints_names_and_v_prediction(tmp_path):
    write_tiny_models(tmp_path, prediction_type="v_prediction")
    sampler = TextLatentDiffusionSampler.from_checkpoints(
        tmp_path / "autoencoder.pt", tmp_path / "unet.pt", device="cpu", model_name="mine"
    )
    assert sampler.scheduler.prediction_type == "v_prediction"
    assert sampler.model_name == "mine (autoencoder.pt, unet.pt)"


def test_missing_folder_and_files_name_the_training_command(tmp_path, models):
    folder = models[0]
    with pytest.raises(FileNotFoundError, match="models folder .*nope.* train_autoencoder"):
        load_text_ldm(tmp_path / "nope")
    with pytest.raises(
        FileNotFoundError, match="autoencoder checkpoint .*ae.pt.*cxr_text_ldm train_autoencoder"
    ):
        TextLatentDiffusionSampler.from_checkpoints(tmp_path / "ae.pt", folder / "unet.pt")
    with pytest.raises(FileNotFoundError, match="UNet checkpoint .*u.pt.*cxr_text_ldm train_diffusion"):
        TextLatentDiffusionSampler.from_checkpoints(folder / "autoencoder.pt", tmp_path / "u.pt")


def test_swapped_files_are_refused(models):
    folder = models[0]
    with pytest.raises(
        ValueError, match="unet.pt.*holds a 'text_conditioned_unet'.*expected 'cxr_ldm_autoencoder'"
    ):
        TextLatentDiffusionSampler.from_checkpoints(folder / "unet.pt", folder / "autoencoder.pt")


@pytest.mark.parametrize("key", ["num_train_timesteps", "prediction_type", "image_size", "latent_shape"])
def test_missing_extras_name_the_file_and_the_fix(tmp_path, key):
    write_tiny_models(tmp_path, drop=(key,))
    with pytest.raises(
        ValueError, match=rf"unet.pt.*lacks the sampling settings \['{key}'\].*train_diffusion"
    ):
        load_text_ldm(tmp_path)


@pytest.mark.parametrize(
    "extras, message",
    [
        ({"latent_shape": [2, 8]}, "latent_shape=.* is not"),
        ({"prediction_type": "sample"}, "prediction_type='sample' is not one of"),
        ({"image_size": 0}, "image_size=0 is not a positive integer"),
        ({"autoencoder_scale_factor": "x"}, "autoencoder_scale_factor='x' is not a number"),
    ],
)
def test_malformed_extras(tmp_path, extras, message):
    write_tiny_models(tmp_path, **extras)
    with pytest.raises(ValueError, match=message):
        load_text_ldm(tmp_path)


def test_latent_channels_of_another_autoencoder(tmp_path):
    write_tiny_models(tmp_path, ae_latent_channels=3)
    with pytest.raises(
        ValueError, match="disagree on latent channels.*another latent shape.*train_diffusion"
    ):
        load_text_ldm(tmp_path)


@pytest.mark.parametrize(
    "extras, message",
    [
        (
            {"latent_shape": [2, 4, 4]},
            r"trained on latents \[2, 4, 4\] but the autoencoder makes \[2, 8, 8\]",
        ),
        ({"image_size": 32}, r"trained on latents \[2, 8, 8\] but the autoencoder makes \[2, 16, 16\]"),
        ({"image_size": 15}, "image_size=15 of the UNet does not fit"),
        ({"latent_shape": [3, 8, 8]}, "disagree on latent channels"),
    ],
)
def test_latent_shape_of_another_checkpoint(tmp_path, extras, message):
    write_tiny_models(tmp_path, **extras)
    with pytest.raises(ValueError, match=message):
        load_text_ldm(tmp_path)


def test_retrained_autoencoder_is_refused_and_an_unknown_factor_warns(tmp_path, caplog):
    write_tiny_models(tmp_path, autoencoder_scale_factor=0.5)
    with pytest.raises(
        ValueError, match="scaled by 0.5 but the autoencoder's scale_factor is 0.8.*retrain the UNet"
    ):
        load_text_ldm(tmp_path)
    write_tiny_models(tmp_path, drop=("autoencoder_scale_factor",))
    with caplog.at_level(logging.WARNING, logger="medgen.inferers.text_ldm"):
        assert load_text_ldm(tmp_path).scale_factor == pytest.approx(0.8)
    assert "no autoencoder_scale_factor" in caplog.text


def test_loads_what_train_text_diffusion_saves(tmp_path):
    """The contract with the engine: its checkpoint extras plus the bundle's are what the loader needs."""
    from medgen.engines.text_ldm import train_text_diffusion

    ae, unet = tiny_networks()
    save_checkpoint(tmp_path / "autoencoder.pt", ae)
    latents = torch.randn(4, 2, 8, 8)
    extras = {"image_size": IMAGE_SIZE, "latent_shape": [2, 8, 8], "autoencoder_scale_factor": 0.8}
    train_text_diffusion(
        unet, latents, [REPORTS[i % 3] for i in range(4)], epochs=1, batch_size=4, num_train_timesteps=TRAIN_STEPS,
        prediction_type="v_prediction", save_path=tmp_path / "unet.pt", progress=False, extras=extras,
    )  # fmt: skip
    sampler = load_text_ldm(tmp_path)
    assert sampler.scheduler.prediction_type == "v_prediction" and sampler.training["ema_decay"] == 0.999
    assert sampler.generate(REPORTS[:1], steps=2).shape == (1, 1, IMAGE_SIZE, IMAGE_SIZE)
