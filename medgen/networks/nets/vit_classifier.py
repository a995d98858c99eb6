"""Vision Transformer multi-label chest X-ray classifiers (timm ViT with a multi-label logits head).

The attention-guided SR system (bundle ``cxr_attention_sr_classifier``) needs a classifier whose attention can be
read out. timm's ``VisionTransformer`` gives that (``medgen.inferers.attention``) and its ``forward`` returns the
logits tensor, so MONAI ``verify_net_in_out`` and TorchScript export work unchanged.

Two registered variants:

* ``vit_phantom_small``: a small ViT trained from scratch on the embedded phantom (trains in minutes on 2 CPU
  cores).
* ``vit_base_patch16_224``: ViT-B/16 initialised from a *local* timm/ImageNet checkpoint when
  ``pretrained_path`` is given. Nothing is ever downloaded; without a path it trains from scratch and says so
  with a warning.

Checkpoints use the one medgen format (:func:`medgen.networks.utils.save_checkpoint`) with the label list as the
``labels`` extra; :func:`medgen.networks.utils.load_checkpoint` refuses a checkpoint whose labels differ from the
model's, naming both lists (a silent label-order mismatch would make every per-class figure wrong).
:func:`save_classifier_checkpoint` / :func:`load_classifier_checkpoint` are those two calls with the labels
filled in.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medgen.networks.utils import apply_checkpoint, read_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)

__all__ = [
    "ViTClassifier",
    "load_classifier_checkpoint",
    "save_classifier_checkpoint",
    "vit_base_patch16_224",
    "vit_phantom_small",
]


def _conv_stem_embed(
    stem_patch: int,
    img_size: int,
    patch_size: int,
    in_chans: int,
    embed_dim: int,
    stem_width: int | None = None,
    stem_depth: int = 1,
    **kwargs: Any,
) -> nn.Module:
    """timm ``HybridEmbed`` over ``log2(stem_patch) - 1`` stages and a 2x2 patchify.

    Each stage is a stride-2 3x3 conv-BN-ReLU followed by ``stem_depth - 1`` stride-1 3x3 conv-BN-ReLU layers;
    widths start at ``stem_width`` (default ``max(16, embed_dim // 2**(stages))``) and double per stage up to
    ``embed_dim``.
    """
    from timm.layers import HybridEmbed

    n = int(math.log2(stem_patch))
    if 2**n != stem_patch or n < 2:
        raise ValueError(
            f"ViTClassifier(conv_stem=True): patch_size must be a power of two >= 4, got {stem_patch}"
        )
    layers: list[nn.Module] = []
    if int(stem_depth) < 1:
        raise ValueError(f"ViTClassifier: stem_depth must be >= 1, got {stem_depth}")
    ch, width = in_chans, int(stem_width or max(16, embed_dim // 2 ** (n - 1)))
    for _ in range(n - 1):
        layers += [nn.Conv2d(ch, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        for _ in range(int(stem_depth) - 1):
            layers += [
                nn.Conv2d(width, width, 3, 1, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
        ch, width = width, min(width * 2, embed_dim)
    kwargs.pop("bias", None)
    return HybridEmbed(
        nn.Sequential(*layers),
        img_size=img_size,
        patch_size=2,
        in_chans=in_chans,
        embed_dim=embed_dim,
        **kwargs,
    )


class ViTClassifier(nn.Module):
    """A timm Vision Transformer with one logit per label (multi-label, use with BCE-with-logits).

    Args:
        labels: finding names, in logit order; stored in checkpoints and checked on load.
        img_size: square input side in pixels (must be a multiple of ``patch_size``).
        patch_size: ViT patch side; the attention map has ``img_size // patch_size`` cells per side.
        embed_dim: token width.
        depth: number of transformer blocks.
        num_heads: attention heads per block.
        in_chans: image channels (1 for radiographs).
        drop_rate: dropout before the head and in the MLPs.
        timm_name: build ``timm.create_model(timm_name, ...)`` instead of a custom-sized ViT (the size arguments
            are then ignored, except ``img_size`` and ``in_chans``).
        pretrained_path: local timm-format checkpoint for ``timm_name`` (e.g. ImageNet-21k ViT-B/16 weights);
            timm adapts the first convolution to ``in_chans`` and drops the old head. Never downloaded.
        conv_stem: replace the patchify convolution by stride-2 3x3 conv stages (Xiao et al. 2021); same token grid.
        stem_width: channels of the first stem stage (doubling per stage up to ``embed_dim``).
        stem_depth: 3x3 convolutions per stem stage (the first strided).
        head: ``cls`` (timm's default: a linear head on the CLS token) or ``csra``: class-specific residual
            attention pooling over the patch tokens (Zhu & Wu, "Residual Attention: A Simple but Effective Method
            for Multi-Label Recognition", ICCV 2021). A shared linear layer scores every patch token for every
            class, ``s[b, n, c]``; the logit is ``mean_n s + csra_lambda * sum_n softmax_n(csra_temperature * s) s``.
            The per-class token scores are a class map read straight from the head (``class_token_maps``, map
            method ``head``), and each class's attention over the tokens is that softmax.
        csra_lambda: weight of the attention-pooled term (``head="csra"``).
        csra_temperature: softmax temperature of the attention pooling; large = max pooling (``head="csra"``).
        reg_tokens: extra learned "register" tokens (Darcet et al., "Vision Transformers Need Registers", ICLR
            2024; timm's ``reg_tokens``): without them a ViT stores global information in low-content patch tokens,
            whose attention and class scores then light up away from the evidence. Not part of any map.
        local_attention: ``None`` (global self-attention) or a radius ``r`` in tokens: each patch token attends
            only to the patch tokens within ``r`` grid steps (Chebyshev distance) of itself, while the prefix
            tokens (CLS, registers) still attend to everything. A patch token's features, and so its ``csra`` class
            scores, then depend on a window of ``2 * r * depth + 1`` tokens per side (plus the conv stem's
            receptive field) instead of the whole image: the class maps can only light up where the evidence is.
    """

    def __init__(
        self,
        labels: Sequence[str],
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 192,
        depth: int = 6,
        num_heads: int = 3,
        in_chans: int = 1,
        drop_rate: float = 0.0,
        timm_name: str | None = None,
        pretrained_path: str | Path | None = None,
        conv_stem: bool = False,
        stem_width: int | None = None,
        stem_depth: int = 1,
        head: str = "cls",
        csra_lambda: float = 1.0,
        csra_temperature: float = 1.0,
        reg_tokens: int = 0,
        local_attention: int | None = None,
    ) -> None:
        import timm  # a core dependency, imported here so that `import medgen.networks` stays light

        super().__init__()
        if head not in ("cls", "csra"):
            raise ValueError(f"ViTClassifier: head must be 'cls' or 'csra', got {head!r}")
        if head == "csra" and (csra_lambda < 0 or csra_temperature <= 0):
            raise ValueError(
                f"ViTClassifier: csra_lambda must be >= 0 and csra_temperature > 0, got {csra_lambda}, "
                f"{csra_temperature}"
            )
        self.head = head
        self.csra_lambda = float(csra_lambda)
        self.csra_temperature = float(csra_temperature)
        # timm with global_pool='' applies its head to every token: (B, T, C) per-token class scores
        pool: dict[str, Any] = {"global_pool": ""} if head == "csra" else {}
        if int(reg_tokens) < 0:
            raise ValueError(f"ViTClassifier: reg_tokens must be >= 0, got {reg_tokens}")
        if reg_tokens:
            pool["reg_tokens"] = int(reg_tokens)
        labels = tuple(str(n) for n in labels)
        if not labels:
            raise ValueError("ViTClassifier: `labels` is empty; pass the finding names in logit order")
        if img_size % patch_size:
            raise ValueError(
                f"ViTClassifier: img_size={img_size} is not a multiple of patch_size={patch_size}; "
                f"choose e.g. img_size={img_size // patch_size * patch_size}"
            )
        self.labels = labels
        self.img_size = int(img_size)
        self.in_chans = int(in_chans)
        if timm_name is None:
            if pretrained_path is not None:
                raise ValueError(
                    "ViTClassifier: `pretrained_path` needs `timm_name` (the checkpoint's architecture)"
                )
            from timm.models.vision_transformer import VisionTransformer

            extra: dict[str, Any] = {}
            if conv_stem:
                extra["embed_layer"] = partial(
                    _conv_stem_embed, stem_patch=patch_size, stem_width=stem_width, stem_depth=stem_depth
                )
            self.vit = VisionTransformer(
                img_size=img_size,
                patch_size=patch_size,
                in_chans=in_chans,
                num_classes=len(labels),
                embed_dim=embed_dim,
                depth=depth,
                num_heads=num_heads,
                drop_rate=drop_rate,
                **extra,
                **pool,
            )
        else:
            kwargs: dict[str, Any] = dict(
                img_size=img_size, in_chans=in_chans, num_classes=len(labels), drop_rate=drop_rate, **pool
            )
            if pretrained_path is not None:
                path = Path(pretrained_path)
                if not path.is_file():
                    raise FileNotFoundError(
                        f"ViTClassifier: pretrained_path {str(path)!r} does not exist; point it at a local "
                        f"{timm_name} checkpoint (.pth/.safetensors/.npz) or leave it empty to train from scratch"
                    )
                self.vit = timm.create_model(timm_name, pretrained=False, **kwargs)
                _load_local_vit_weights(self.vit, path)
                logger.info("ViTClassifier: %s initialised from local checkpoint %s", timm_name, path)
            else:
                self.vit = timm.create_model(timm_name, pretrained=False, **kwargs)
                logger.warning(
                    "ViTClassifier: NO PRETRAINED WEIGHTS for %s (no `pretrained_path` configured): training from "
                    "scratch. Set pretrained_path to a local checkpoint to fine-tune as the paper does.",
                    timm_name,
                )
        self.patch_size = int(patch_size) if timm_name is None else int(self.vit.patch_embed.patch_size[0])
        self.local_attention = None if local_attention is None else int(local_attention)
        if self.local_attention is not None:
            import inspect

            if self.local_attention < 1:
                raise ValueError(
                    f"ViTClassifier: local_attention must be a radius >= 1 or None, got {local_attention}"
                )
            if "attn_mask" not in inspect.signature(self.vit.forward_features).parameters:
                raise ImportError(
                    f"ViTClassifier(local_attention=...) needs a timm whose VisionTransformer.forward_features takes "
                    f"attn_mask (timm {getattr(timm, '__version__', '?')} does not); upgrade with `pip install -U timm`"
                )
            self.register_buffer("attn_mask", self._local_mask(self.local_attention), persistent=False)

    def _local_mask(self, radius: int) -> torch.Tensor:
        """(T, T) bool, True = may attend: prefix rows see all; patch rows see patches within ``radius``."""
        gh, gw = self.grid_size
        p = self.num_prefix_tokens
        yy, xx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        yy, xx = yy.flatten(), xx.flatten()
        near = ((yy[:, None] - yy[None]).abs() <= radius) & ((xx[:, None] - xx[None]).abs() <= radius)
        mask = torch.zeros(p + gh * gw, p + gh * gw, dtype=torch.bool)
        mask[:p] = True
        mask[p:, p:] = near
        return mask

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch-token grid (rows, cols) of the attention maps."""
        return tuple(self.vit.patch_embed.grid_size)  # type: ignore[return-value]

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.vit.num_prefix_tokens)

    @property
    def blocks(self) -> nn.Sequential:
        return self.vit.blocks

    def class_token_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Per-class patch-token scores (B, num_labels, grid_h * grid_w) of the ``csra`` head."""
        if self.head != "csra":
            raise ValueError(
                "ViTClassifier.class_token_scores: only the 'csra' head scores patch tokens; this model has "
                f"head={self.head!r} (use the attention maps: rollout, grad_rollout, gradcam)"
            )
        return self._vit(x)[:, self.num_prefix_tokens :].transpose(1, 2)

    def _vit(self, x: torch.Tensor) -> torch.Tensor:
        if self.local_attention is None:
            return self.vit(x)
        return self.vit.forward_head(self.vit.forward_features(x, attn_mask=self.attn_mask))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_labels) for images (B, in_chans, img_size, img_size)."""
        if self.head == "cls":
            return self._vit(x)
        return self.pool_token_scores(self.class_token_scores(x))

    def pool_token_scores(self, s: torch.Tensor) -> torch.Tensor:
        """CSRA pooling of (B, C, N) token scores into (B, C) logits."""
        att = torch.softmax(self.csra_temperature * s, dim=-1)
        return s.mean(-1) + self.csra_lambda * (att * s).sum(-1)


def vit_phantom_small(
    labels: Sequence[str] | None = None,
    img_size: int = 128,
    patch_size: int = 8,
    embed_dim: int = 192,
    depth: int = 6,
    num_heads: int = 3,
    **kwargs: Any,
) -> ViTClassifier:
    """Small ViT (dim 192, depth 6, 3 heads, ~2.7M parameters) trained from scratch on the phantom.

    Defaults to 128 px with 8-px patches (a 16x16 attention grid, fine enough for pointing-game localisation)
    so that training fits in minutes on a 2-core CPU; use ``img_size=224, patch_size=16`` for the paper's size.
    """
    if labels is None:
        from medgen.data.labels import PHANTOM_LABELS

        labels = PHANTOM_LABELS
    return ViTClassifier(
        labels,
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        **kwargs,
    )


def vit_base_patch16_224(
    labels: Sequence[str] | None = None,
    img_size: int = 224,
    pretrained_path: str | Path | None = None,
    **kwargs: Any,
) -> ViTClassifier:
    """ViT-B/16 (86M parameters), initialised from a local checkpoint when ``pretrained_path`` is set."""
    if labels is None:
        from medgen.data.labels import PHANTOM_LABELS

        labels = PHANTOM_LABELS
    return ViTClassifier(
        labels, img_size=img_size, timm_name="vit_base_patch16_224", pretrained_path=pretrained_path, **kwargs
    )


def save_classifier_checkpoint(path: str | Path, model: ViTClassifier, **extra: Any) -> Path:
    """:func:`~medgen.networks.utils.save_checkpoint` with ``labels`` (the logit order) as an extra."""
    return save_checkpoint(path, model, labels=list(model.labels), **extra)


def load_classifier_checkpoint(
    path: str | Path, model: ViTClassifier, map_location: str | torch.device = "cpu"
) -> dict:
    """Load a classifier checkpoint into ``model`` and return the checkpoint (its ``labels``, ``seed``...).

    Raises:
        ValueError: the checkpoint has no label list, or its labels differ from ``model.labels`` (both named).
    """
    ckpt = read_checkpoint(path, map_location=map_location)
    if "labels" not in ckpt:
        raise ValueError(
            f"checkpoint {str(path)!r} has no 'labels' entry; write it with "
            f"medgen.networks.nets.vit_classifier.save_classifier_checkpoint"
        )
    apply_checkpoint(ckpt, model, source=str(path))  # checks arch and the label list, naming both
    return ckpt


def _load_local_vit_weights(vit: nn.Module, path: Path) -> None:
    """Initialise a timm ViT from a local file only (never a hub), through timm's own loading path.

    ``.npz``: the original JAX ImageNet-21k release, through timm's converter. ``.pth`` / ``.safetensors``:
    ``timm.models.load_state_dict`` (``weights_only``; ``state_dict`` / ``model`` / EMA entries and ``module.``
    prefixes cleaned), the ViT's ``checkpoint_filter_fn`` (position embeddings and patch kernel resampled to this
    ViT's grid) and ``adapt_input_conv`` when the checkpoint's input channels differ (an ImageNet RGB stem into
    a 1-channel radiograph ViT: timm sums the RGB kernels, as its ``_builder.load_pretrained`` does). The
    classification head is left out: its size follows this config's label list.
    """
    if path.suffix == ".npz":
        vit.load_pretrained(str(path))  # timm's converter for the original JAX checkpoints
        return
    from timm.models import load_state_dict
    from timm.models._manipulate import adapt_input_conv
    from timm.models.vision_transformer import checkpoint_filter_fn

    if not path.is_file():
        raise ValueError(
            f"ViTClassifier: pretrained_path {str(path)!r} does not exist; point it at a local file."
        )
    try:
        state = load_state_dict(str(path), weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"ViTClassifier: cannot read pretrained_path {str(path)!r} ({type(exc).__name__}: {exc}); it must be a "
            "timm/PyTorch state dict (.pth) or .safetensors file of plain tensors."
        ) from exc
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    first = vit.pretrained_cfg.get("first_conv", "patch_embed.proj") + ".weight"
    own = dict(vit.state_dict())
    if (
        first in state
        and first in own
        and state[first].ndim == 4
        and state[first].shape[1] != own[first].shape[1]
    ):
        state[first] = adapt_input_conv(own[first].shape[1], state[first])
    if "pos_embed" in state or "patch_embed.proj.weight" in state:
        state = checkpoint_filter_fn(state, vit)
    missing, unexpected = vit.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("head.")]
    if missing or unexpected:
        raise ValueError(
            f"ViTClassifier: checkpoint {str(path)!r} does not fit this ViT (missing {missing[:5]}, "
            f"unexpected {list(unexpected)[:5]}); point pretrained_path at a checkpoint of the same architecture"
        )
