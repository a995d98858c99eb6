"""Name -> attention-map class, with MONAI ``look_up_option``-style errors (valid names and the closest one)."""

from __future__ import annotations

import difflib
from types import MappingProxyType

from medgen.inferers.attention.base import AttentionMapBase
from medgen.inferers.attention.gradient import GradCAMAttention, GradRollout
from medgen.inferers.attention.head import HeadClassMaps
from medgen.inferers.attention.rollout import ClsAttention, Rollout

__all__ = ["ATTENTION_MAPS", "look_up_attention_map"]

#: every attention-map method by its ``name`` (read-only)
ATTENTION_MAPS: MappingProxyType[str, type[AttentionMapBase]] = MappingProxyType(
    {cls.name: cls for cls in (ClsAttention, Rollout, GradRollout, GradCAMAttention, HeadClassMaps)}
)


def look_up_attention_map(
    method: str, class_specific: bool | None = None, caller: str = "attention maps"
) -> type[AttentionMapBase]:
    """The class registered as ``method``, optionally restricted to class-specific (or class-agnostic) methods.

    Raises:
        ValueError: naming ``caller``, the valid methods and the closest match, and where a method of the other
            kind can be used instead.
    """
    table = {
        n: c
        for n, c in ATTENTION_MAPS.items()
        if class_specific is None or c.class_specific == class_specific
    }
    if method in table:
        return table[method]
    valid = sorted(table)
    close = difflib.get_close_matches(str(method), valid, n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    others = sorted(set(ATTENTION_MAPS) - set(table))
    where = "compute_attention_maps" if class_specific else "compute_class_attention_maps"
    kind = "class-agnostic" if class_specific else "class-specific"
    note = f" ({kind} {others} are in {where})" if others else ""
    raise ValueError(f"{caller}: method {method!r} unknown; choose one of {valid}{hint}{note}")
