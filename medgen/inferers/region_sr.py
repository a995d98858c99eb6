"""Region super-resolution backends (registry kind ``sr_backend``).

Interface: ``backend(patches, scale) -> Tensor`` with ``patches`` (N, 1, h, w) in [0, 1] and the result
(N, 1, h*scale, w*scale) in [0, 1]. All regions of a batch go through one call.

* ``bicubic``: the baseline every learned backend must beat.
* ``network``: any registered SR network (``medgen.create_network(name, scale=...)``) with a local checkpoint.
* ``latent_diffusion``: :class:`medgen.networks.nets.ldm_sr.LDMSuperResolution` sampled with DDIM (loop written out).
* ``diffusers``: the CompVis ``LDMSuperResolutionPipeline`` from a local folder (optional ``diffusers``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from monai.utils import optional_import

from medgen.networks.utils import load_checkpoint, read_checkpoint
from medgen.registry import REGISTRY

__all__ = [
    "BicubicBackend",
    "FAST_SR_NETWORK",
    "DiffusersBackend",
    "LatentDiffusionBackend",
    "NetworkBackend",
    "RegionSRBackend",
    "check_patches",
    "create_sr_backend",
]

logger = logging.getLogger(__name__)

#: The fast backend's default network (``NetworkBackend(**FAST_SR_NETWORK, checkpoint=...)``): an RDN of the
#: cxr_sr_distillation student size (84K parameters); three 48-px regions x4 take about 70 ms at one CPU thread.
FAST_SR_NETWORK: dict[str, Any] = {
    "network": "rdn",
    "network_kwargs": {"num_features": 16, "growth": 16, "num_blocks": 4, "num_layers": 3},
}


class RegionSRBackend(Protocol):
    def __call__(self, patches: torch.Tensor, scale: int) -> torch.Tensor: ...


def check_patches(patches: torch.Tensor, scale: int, backend: str) -> None:
    """Raise a clear error for anything but (N, 1, h, w) patches and an integer scale >= 1."""
    if not isinstance(patches, torch.Tensor) or patches.ndim != 4 or patches.shape[1] != 1:
        shape = tuple(patches.shape) if isinstance(patches, torch.Tensor) else type(patches).__name__
        raise ValueError(f"sr_backend {backend!r}: patches must be a (N, 1, h, w) tensor, got {shape}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"sr_backend {backend!r}: scale must be an integer >= 1, got {scale}")


def create_sr_backend(name: str, **kwargs: Any) -> RegionSRBackend:
    """Registry front door: ``create_sr_backend("bicubic")``."""
    return REGISTRY.create("sr_backend", name, **kwargs)


class BicubicBackend:
    """Bicubic interpolation (PyTorch, ``align_corners=False``), clamped to [0, 1]."""

    def __call__(self, patches: torch.Tensor, scale: int) -> torch.Tensor:
        check_patches(patches, scale, "bicubic")
        if scale == 1:
            return patches.clone()
        return F.interpolate(
            patches.float(), scale_factor=int(scale), mode="bicubic", align_corners=False
        ).clamp(0, 1)


class NetworkBackend:
    """A registered SR network (LR in, x``scale`` out) from a local checkpoint.

    Args:
        network: registry name (``srcnn``, ``vdsr``, ``rdn``, ``srdensenet``, ``swift_srgan``, ...) or a module.
        checkpoint: file written by :func:`medgen.networks.utils.save_checkpoint` (architecture and scale are
            checked against the network); ``None`` only for a module passed in already trained.
        scale: the factor the network was built for; a call with another scale is refused.
        network_kwargs: extra constructor arguments.
    """

    def __init__(
        self,
        network: str | torch.nn.Module,
        checkpoint: str | Path | None = None,
        scale: int = 4,
        device: str | torch.device = "cpu",
        network_kwargs: dict | None = None,
    ) -> None:
        import medgen

        self.scale = int(scale)
        self.device = torch.device(device)
        if isinstance(network, str):
            self.net = medgen.create_network(network, scale=self.scale, **(network_kwargs or {}))
            if checkpoint is None:
                raise ValueError(
                    f"sr_backend 'network': network {network!r} needs `checkpoint` (a trained state_dict); "
                    f"train one with the cxr_sr_distillation bundle or use backend 'bicubic'"
                )
        else:
            self.net = network
        if checkpoint is not None:
            path = Path(checkpoint)
            if not path.is_file():
                raise FileNotFoundError(f"sr_backend 'network': checkpoint {str(path)!r} does not exist")
            load_checkpoint(path, self.net)
        self.net.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, patches: torch.Tensor, scale: int) -> torch.Tensor:
        check_patches(patches, scale, "network")
        if int(scale) != self.scale:
            raise ValueError(f"sr_backend 'network': built for scale {self.scale}, called with scale {scale}")
        out = self.net(patches.float().to(self.device))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.clamp(0, 1).to(patches.device)


class LatentDiffusionBackend:
    """LDM-SR sampling: noise latent at LR size, DDIM steps on ``cat(latent, LR)``, decode.

    Args:
        model: a trained :class:`~medgen.networks.nets.ldm_sr.LDMSuperResolution`, or ``None`` with ``checkpoint``.
        checkpoint: file written by :func:`~medgen.engines.ldm_sr.train_ldm_sr` (``save_path``).
        num_inference_steps: DDIM steps.
        eta: DDIM stochasticity (0 = deterministic given the initial noise).
        seed: seed of the initial latent noise (results are reproducible per call).
        num_samples: samples drawn per patch (from independent initial noise) and averaged. 1 returns one
            posterior sample (sharp, but its expected squared error is about twice that of the posterior mean:
            the perception-distortion trade-off); N > 1 returns a Monte-Carlo estimate of the posterior mean
            (expected squared error ~(1 + 1/N) x the mean's), i.e. an MSE/PSNR-oriented output that is smoother
            than any single sample. Costs N x the sampling time.
        model_kwargs: constructor arguments when loading from ``checkpoint`` (over the checkpoint's config; a
            mismatch with the saved weights is refused).
    """

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        checkpoint: str | Path | None = None,
        num_inference_steps: int = 20,
        eta: float = 0.0,
        seed: int = 0,
        device: str | torch.device = "cpu",
        model_kwargs: dict | None = None,
        num_samples: int = 1,
    ) -> None:
        from medgen.networks.nets.ldm_sr import LDMSuperResolution

        if int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(
                f"sr_backend 'latent_diffusion': num_samples must be an integer >= 1 (1 = one posterior sample, "
                f"N = average of N samples), got {num_samples}"
            )

        if model is None:
            if checkpoint is None or not Path(checkpoint).is_file():
                raise FileNotFoundError(
                    f"sr_backend 'latent_diffusion': checkpoint {checkpoint!r} not found; train one with "
                    f"medgen.engines.ldm_sr.train_ldm_sr(..., save_path=...)"
                )
            ckpt = read_checkpoint(checkpoint)
            model = LDMSuperResolution(scale=ckpt["scale"], **(ckpt["config"] | dict(model_kwargs or {})))
            load_checkpoint(checkpoint, model)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.num_inference_steps = int(num_inference_steps)
        self.eta = float(eta)
        self.seed = int(seed)
        self.num_samples = int(num_samples)

    @torch.no_grad()
    def __call__(self, patches: torch.Tensor, scale: int) -> torch.Tensor:
        from monai.networks.schedulers import DDIMScheduler

        check_patches(patches, scale, "latent_diffusion")
        model = self.model
        if int(scale) != model.scale:
            raise ValueError(
                f"sr_backend 'latent_diffusion': model is x{model.scale}, called with scale {scale}"
            )
        lr = patches.float().to(self.device)
        n, _, h, w = lr.shape
        k = self.num_samples
        latent_c = model.unet.out_channels
        # latents are unit-variance (latent_scale), so DDIM must not clip them to [-1, 1]
        scheduler = DDIMScheduler(
            num_train_timesteps=model.num_train_timesteps,
            clip_sample=False,
            prediction_type=model.prediction_type,
        )
        scheduler.set_timesteps(self.num_inference_steps)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        # the k samples of every patch run as one batch: sample j of patch i is row j * n + i
        latents = torch.randn((k * n, latent_c, h, w), generator=gen).to(self.device)
        lr_k = lr.repeat(k, 1, 1, 1)
        cond = model.condition(lr_k)
        for t in scheduler.timesteps:
            timesteps = torch.full((k * n,), int(t), device=self.device, dtype=torch.long)
            model_out = model.unet(torch.cat([latents, cond], dim=1), timesteps=timesteps)
            latents, _ = scheduler.step(model_out, int(t), latents, eta=self.eta, generator=gen)
        out = model.decode(latents, lr_k).reshape(k, n, 1, h * model.scale, w * model.scale).mean(0)
        return out.to(patches.device)


class DiffusersBackend:
    """CompVis LDM x4 (``LDMSuperResolutionPipeline``) loaded from a local folder only; needs ``diffusers``.

    Grey patches are repeated to 3 channels and scaled to [-1, 1] as the pipeline expects; the output is averaged
    back to one channel.
    """

    def __init__(
        self,
        model_dir: str | Path,
        num_inference_steps: int = 50,
        eta: float = 1.0,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        diffusers, has = optional_import("diffusers")
        if not has:
            raise ImportError("sr_backend 'diffusers' needs the diffusers package: pip install 'medgen[ldm]'")
        path = Path(model_dir)
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(
                f"sr_backend 'diffusers': {str(path)!r} is not a diffusers pipeline folder (no model_index.json); "
                f"point model_dir at a local copy of CompVis/ldm-super-resolution-4x-openimages"
            )
        self.pipe = diffusers.LDMSuperResolutionPipeline.from_pretrained(str(path), local_files_only=True).to(
            device
        )
        self.num_inference_steps, self.eta, self.seed, self.device = (
            int(num_inference_steps),
            float(eta),
            seed,
            device,
        )

    @torch.no_grad()
    def __call__(self, patches: torch.Tensor, scale: int) -> torch.Tensor:
        check_patches(patches, scale, "diffusers")
        if int(scale) != 4:
            raise ValueError(
                f"sr_backend 'diffusers': the CompVis LDM super-resolves x4 only, got scale {scale}"
            )
        x = (patches.float().repeat(1, 3, 1, 1) * 2 - 1).to(self.device)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        out = self.pipe(
            image=x,
            num_inference_steps=self.num_inference_steps,
            eta=self.eta,
            generator=gen,
            output_type="np",
        ).images
        out = torch.as_tensor(out).permute(0, 3, 1, 2).mean(1, keepdim=True)
        return out.clamp(0, 1).to(patches.device)
