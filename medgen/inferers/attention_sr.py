"""Attention-guided region super-resolution: image -> classifier -> attention -> regions -> SR backend -> blend.

One inference pipeline with the loop written out (diffusers' pipeline idea). The enhanced image comes back at the
working resolution (SR regions resized back into their boxes) and, with ``return_scaled=True``, also at ``scale``
times the resolution (bicubic background, SR regions pasted at full detail).

Why a feathered blend: a pasted region never matches its surroundings exactly, and a hard edge is a
high-contrast artefact a classifier can learn as a shortcut. The blend weight rises from 0 at the box edge to 1
over ``feather`` pixels with a smoothstep, whose zero slope at both ends leaves no gradient jump at the border.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medgen.inferers.attention import compute_attention_maps
from medgen.inferers.region_sr import RegionSRBackend
from medgen.transforms.regions import select_attention_regions

__all__ = [
    "AttentionSROutput",
    "AttentionSRPipeline",
    "blend_region",
    "classifier_preprocess",
    "classifier_preprocessd",
    "feather_weights",
    "infer_attention_sr",
    "pad_square",
    "square_offset",
]


def feather_weights(height: int, width: int, feather: float) -> torch.Tensor:
    """(height, width) blend weights: smoothstep ramp from the box edge over ``feather`` pixels, 1 inside."""

    def ramp(n: int) -> torch.Tensor:
        if feather <= 0:
            return torch.ones(n)
        d = torch.minimum(torch.arange(n) + 0.5, n - torch.arange(n) - 0.5)  # distance to the nearer edge
        t = (d / feather).clamp(0, 1)
        return t * t * (3 - 2 * t)

    return ramp(height)[:, None] * ramp(width)[None, :]


def blend_region(
    image: torch.Tensor, patch: torch.Tensor, box: tuple[int, int, int, int], feather: float
) -> torch.Tensor:
    """Blend ``patch`` (C, y1-y0, x1-x0) into ``image`` (C, H, W) at ``box`` (x0, y0, x1, y1); returns a new tensor."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if patch.shape[-2:] != (y1 - y0, x1 - x0):
        raise ValueError(f"blend_region: patch {tuple(patch.shape[-2:])} does not fit box {box}")
    out = image.clone()
    w = feather_weights(y1 - y0, x1 - x0, feather).to(image)
    out[..., y0:y1, x0:x1] = w * patch.to(image) + (1 - w) * image[..., y0:y1, x0:x1]
    return out


@dataclass
class AttentionSROutput:
    """What :class:`AttentionSRPipeline` returns."""

    images: torch.Tensor  # (B, 1, H, W) enhanced at working resolution
    logits: torch.Tensor  # (B, num_labels) of the classifier on the input images
    attention: torch.Tensor  # (B, H, W) maps in [0, 1]
    boxes: list[torch.Tensor]  # per image, int64 (K, 4) (x0, y0, x1, y1) at working resolution
    scaled_images: torch.Tensor | None = None  # (B, 1, H*scale, W*scale) when requested


class AttentionSRPipeline:
    """Enhance the most-attended regions of each image with a region SR backend.

    Args:
        classifier: a (timm) ViT classifier whose attention picks the regions.
        backend: an ``sr_backend`` (``backend(patches, scale)``).
        scale: SR factor passed to the backend.
        k, percentile, min_size, max_size, nms_iou: region selection (:func:`select_attention_regions`).
        attention: any method of ``compute_attention_maps``: ``rollout``, ``cls`` (last-layer CLS attention
            averaged over heads), or a class-specific one (``head`` for a csra classifier, ``grad_rollout``,
            ``gradcam``) whose class maps are combined by the sigmoid probabilities.
        feather: blend ramp width in working-resolution pixels.
    """

    def __init__(
        self,
        classifier: nn.Module,
        backend: RegionSRBackend,
        scale: int = 4,
        k: int = 3,
        percentile: float = 95.0,
        min_size: int = 32,
        max_size: int = 32,
        nms_iou: float = 0.3,
        attention: str = "rollout",
        feather: float = 4.0,
    ) -> None:
        self.classifier = classifier
        self.backend = backend
        self.scale = int(scale)
        self.region_kwargs = dict(
            k=k, percentile=percentile, min_size=min_size, max_size=max_size, nms_iou=nms_iou
        )
        self.attention = attention
        self.feather = float(feather)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, return_scaled: bool = False) -> AttentionSROutput:
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"AttentionSRPipeline: images must be (B, 1, H, W), got {tuple(images.shape)}")
        s = self.scale
        # 1. classifier + attention
        logits, maps = compute_attention_maps(self.classifier, images, method=self.attention)
        # 2. regions
        boxes = select_attention_regions(maps, **self.region_kwargs)
        # 3. crop every region of the batch; same-sized regions go to the backend in one call
        crops = [(b, tuple(box.tolist())) for b, bx in enumerate(boxes) for box in bx]
        sr_patches: list[torch.Tensor | None] = [None] * len(crops)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, (_, (x0, y0, x1, y1)) in enumerate(crops):
            by_shape.setdefault((y1 - y0, x1 - x0), []).append(i)
        for idx in by_shape.values():
            patches = torch.stack(
                [
                    images[crops[i][0], :, crops[i][1][1] : crops[i][1][3], crops[i][1][0] : crops[i][1][2]]
                    for i in idx
                ]
            )
            out = self.backend(patches, s)
            for j, i in enumerate(idx):
                sr_patches[i] = out[j]
        # 4. blend back at working resolution (area-resized SR region) and optionally at x scale
        enhanced = images.clone()
        scaled = (
            F.interpolate(images, scale_factor=s, mode="bicubic", align_corners=False).clamp(0, 1)
            if return_scaled
            else None
        )
        for (b, box), sr in zip(crops, sr_patches):
            x0, y0, x1, y1 = box
            small = F.interpolate(sr[None], size=(y1 - y0, x1 - x0), mode="area")[0]
            enhanced[b] = blend_region(enhanced[b], small, box, self.feather)
            if scaled is not None:
                scaled[b] = blend_region(scaled[b], sr, (x0 * s, y0 * s, x1 * s, y1 * s), self.feather * s)
        return AttentionSROutput(enhanced, logits, maps, boxes, scaled)


def pad_square(img: Any) -> torch.Tensor:
    """Zero-pad a (C, H, W) image to a centred square (to the longer side) as a plain tensor.

    A plain tensor: the radiograph's 2-D affine does not survive MONAI's spatial-pad metadata tracking.
    """
    img = torch.as_tensor(img.as_tensor() if hasattr(img, "as_tensor") else img)
    h, w = int(img.shape[-2]), int(img.shape[-1])
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return F.pad(img, (left, side - w - left, top, side - h - top))


def square_offset(height: int, width: int) -> tuple[int, int, int]:
    """``(side, top, left)`` of :func:`pad_square` for an image of ``height`` x ``width``."""
    side = max(int(height), int(width))
    return side, (side - int(height)) // 2, (side - int(width)) // 2


def classifier_preprocess(size: int) -> Any:
    """File -> (1, ``size``, ``size``) float tensor in [0, 1]: the same path training data takes.

    MONAI ``Compose``: :class:`~medgen.transforms.io.LoadRadiograph` (DICOM with its modality/VOI LUT and
    MONOCHROME1 inversion, 8/16-bit PNG, NIfTI; scaled by the stored bit depth), zero padding of a non-square
    image to a centred square (to the longer side: the anatomy keeps its aspect ratio instead of
    being stretched), then area resizing to ``size``. The phantom training images are square renders at
    ``size``, for which the last two steps are no-ops. :func:`classifier_preprocessd` is the same chain on
    dictionary items (the bundle's train / evaluate data).
    """
    from monai.transforms import Compose, Lambda, Resize

    from medgen.transforms.io import LoadRadiograph

    return Compose([LoadRadiograph(), Lambda(pad_square), Resize((size, size), mode="area")])


def classifier_preprocessd(size: int, keys: str | Sequence[str] = "image") -> Any:
    """Dictionary form of :func:`classifier_preprocess`: ``LoadRadiographd`` (file paths, or in-memory phantom
    arrays passed through), centred square padding and area resizing to ``size`` on ``keys``."""
    from monai.transforms import Compose, Lambdad, Resized

    from medgen.transforms.io import LoadRadiographd

    return Compose(
        [
            LoadRadiographd(keys=keys),
            Lambdad(keys=keys, func=pad_square),
            Resized(keys=keys, spatial_size=(size, size), mode="area"),
        ]
    )


def infer_attention_sr(
    files: Sequence[str | Path],
    classifier: nn.Module,
    out_dir: str | Path,
    backend: RegionSRBackend | None = None,
    scale: int = 4,
    attention: str = "rollout",
    feather: float = 4.0,
    save_scaled: bool = False,
    **region_kwargs: Any,
) -> list[dict[str, Any]]:
    """One radiograph file (PNG, DICOM or NIfTI) at a time -> probabilities, attention overlay, enhanced image.

    Writes per input ``<stem>_probabilities.json`` (``{label: probability}``, the boxes and the input file),
    ``<stem>_attention.png`` (image | attention with the selected regions) and ``<stem>_enhanced.png`` (16-bit, at
    the classifier's working resolution; ``<stem>_enhanced_x{scale}.png`` too with ``save_scaled``). Returns the
    per-file records. ``backend`` defaults to bicubic; any ``sr_backend`` works.
    """
    import json

    from medgen.inferers.region_sr import BicubicBackend
    from medgen.transforms.io.writers import write_png16
    from medgen.visualize.attention import save_attention_overlay

    size = int(getattr(classifier, "img_size", 0) or classifier.vit.patch_embed.img_size[0])
    labels = list(getattr(classifier, "labels", []))
    pre = classifier_preprocess(size)
    device = next(classifier.parameters()).device
    pipe = AttentionSRPipeline(
        classifier.eval(),
        backend or BicubicBackend(),
        scale=scale,
        attention=attention,
        feather=feather,
        **region_kwargs,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for f in files:
        image = torch.as_tensor(pre(str(f))).float()[None].to(device)  # (1, 1, size, size)
        res = pipe(image, return_scaled=save_scaled)
        image = image.cpu()
        stem = Path(f).name.split(".")[0]
        probs = torch.sigmoid(res.logits[0]).cpu().tolist()
        rec = {
            "file": str(f),
            "probabilities": dict(zip(labels, probs)) if labels else probs,
            "boxes_xyxy": res.boxes[0].cpu().tolist(),
            "attention": attention,
            "working_size": size,
            "enhanced": str(out / f"{stem}_enhanced.png"),
        }
        write_png16(out / f"{stem}_enhanced.png", res.images[0, 0].clamp(0, 1).cpu().numpy())
        if save_scaled and res.scaled_images is not None:
            rec["enhanced_scaled"] = str(out / f"{stem}_enhanced_x{scale}.png")
            write_png16(rec["enhanced_scaled"], res.scaled_images[0, 0].clamp(0, 1).cpu().numpy())
        save_attention_overlay(
            image, res.attention.cpu(), out / f"{stem}_attention.png", boxes=res.boxes, titles=[stem]
        )
        rec["attention_overlay"] = str(out / f"{stem}_attention.png")
        (out / f"{stem}_probabilities.json").write_text(json.dumps(rec, indent=1))
        records.append(rec)
    return records
