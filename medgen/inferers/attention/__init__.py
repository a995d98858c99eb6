"""Attention maps of a timm Vision Transformer: last-layer CLS attention, rollout, and class-specific maps.

Layout (after ``monai.visualize.class_activation_maps``: hooks -> a base -> one small class per method):

* :mod:`~medgen.inferers.attention.hooks`: :func:`record_attention` records each block's softmaxed attention
  (fused attention off for the pass), detached or in the autograd graph.
* :mod:`~medgen.inferers.attention.base`: :class:`AttentionMapBase`, the shared call
  ``method(images, classes=None, batch_size=32) -> (logits, maps)`` (eval mode, chunked), upsampling to the image
  size and class selection; :mod:`~medgen.inferers.attention.maps` the tensor post-processing.
* one class per method, each registered under its ``name`` in :data:`ATTENTION_MAPS`
  (:func:`look_up_attention_map` names the valid methods and the closest one for an unknown name):

  - ``cls`` (:class:`ClsAttention`) and ``rollout`` (:class:`Rollout`): class-agnostic, one map per image, read
    from the attention alone; an image with several findings cannot have its map point at each of them.
  - ``grad_rollout`` (:class:`GradRollout`): gradient-weighted attention rollout (Chefer, Gur & Wolf, ICCV
    2021): ``R <- R + mean_heads(clamp(dlogit_c/dA * A, min=0)) @ R`` from ``R = I``, the CLS row over the
    patch tokens; CLS-token heads only.
  - ``gradcam`` (:class:`GradCAMAttention`): Grad-CAM on the patch tokens entering the last block.
  - ``head`` (:class:`HeadClassMaps`): the per-class patch-token scores of a token-scoring head
    (``ViTClassifier(head="csra")``), sampled at half-token steps by shift-and-stitch (``shifts``, ``stitch``).

* :mod:`~medgen.inferers.attention.functional`: the functions the rest of medgen calls
  (:func:`compute_attention_maps`, :func:`compute_class_attention_maps`, one function per method), thin wrappers
  over the classes.

All maps come back at the image resolution, (B, H, W) (or (B, heads, H, W), or (B, classes, H, W) for class
maps), min-max normalised to [0, 1] per map; a perfectly flat map (no preference anywhere) is returned as all
zeros so callers can detect it.
"""

from medgen.inferers.attention.base import AttentionMapBase
from medgen.inferers.attention.functional import (
    CLASS_METHODS,
    attention_rollout,
    class_gradcam,
    cls_attention_maps,
    compute_attention_maps,
    compute_class_attention_maps,
    gradient_rollout,
    head_class_maps,
)
from medgen.inferers.attention.gradient import GradCAMAttention, GradRollout
from medgen.inferers.attention.head import HeadClassMaps
from medgen.inferers.attention.hooks import record_attention
from medgen.inferers.attention.maps import combine_class_maps, normalize_maps, tokens_to_maps
from medgen.inferers.attention.registry import ATTENTION_MAPS, look_up_attention_map
from medgen.inferers.attention.rollout import ClsAttention, Rollout

__all__ = [
    "ATTENTION_MAPS",
    "CLASS_METHODS",
    "AttentionMapBase",
    "ClsAttention",
    "GradCAMAttention",
    "GradRollout",
    "HeadClassMaps",
    "Rollout",
    "attention_rollout",
    "class_gradcam",
    "cls_attention_maps",
    "combine_class_maps",
    "compute_attention_maps",
    "compute_class_attention_maps",
    "gradient_rollout",
    "head_class_maps",
    "look_up_attention_map",
    "normalize_maps",
    "record_attention",
    "tokens_to_maps",
]
