"""Region selection from attention maps (boxes for attention-guided super-resolution)."""

from medgen.transforms.regions.array import SelectAttentionRegions, select_attention_regions
from medgen.transforms.regions.dictionary import SelectAttentionRegionsd

__all__ = ["SelectAttentionRegions", "SelectAttentionRegionsd", "select_attention_regions"]
