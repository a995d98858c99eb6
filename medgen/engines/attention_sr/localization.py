"""Attention localisation scoring: the one loop that computes maps and scores them against finding masks.

Used by the pipeline and by ``benchmarks/attention_localization.py`` / ``benchmarks/attention_classifier_probe.py``.
Class-specific methods (``head``, ``grad_rollout``, ``gradcam``) are scored with the map of the finding's own
class, class-agnostic ones (``rollout``, ``cls``) with the image's single map.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch

__all__ = ["MapScores", "score_maps"]


class MapScores(NamedTuple):
    """What :func:`score_maps` returns, each keyed like its ``methods``."""

    reports: dict[
        str, dict[str, Any]
    ]  # localization_report at the first tolerance + pointing at every tolerance
    maps: dict[str, torch.Tensor]  # (N, H, W) class-agnostic or (N, C, H, W) class-specific maps
    seconds: dict[str, float]  # wall time of computing each map (0 for maps passed in)


def score_maps(
    model: torch.nn.Module,
    images: torch.Tensor,
    masks: Sequence[Mapping[str, Any]],
    methods: Sequence[str] | Mapping[str, Mapping[str, Any]],
    labels: Sequence[str],
    tolerances: Sequence[float] = (0.0,),
    maps: Mapping[str, torch.Tensor] | None = None,
) -> MapScores:
    """Compute each attention map of ``model`` on ``images`` and score it against ``masks``.

    Args:
        masks: per image ``{finding: bool (H, W)}``.
        methods: method names, or ``{key: options}`` where options are keyword arguments of the map function plus
            ``method`` (the map method, default the key) and ``combined`` (a class-specific method as the single
            class-agnostic map that selects regions, ``compute_attention_maps(method=...)``).
        labels: class names, in the order of a class-specific map's channels.
        tolerances: pointing-game tolerances in px; the first gives the full report.
        maps: maps already computed, by key (not recomputed).

    Returns:
        :class:`MapScores`; each report is :func:`medgen.metrics.localization.localization_report` at the first
        tolerance with ``pointing_game_at`` / ``uniform_pointing_at``: ``{f"{t:g}": value}`` for every tolerance.
    """
    from medgen.inferers.attention import CLASS_METHODS, compute_attention_maps, compute_class_attention_maps
    from medgen.metrics.localization import localization_report

    specs = dict(methods) if isinstance(methods, Mapping) else {m: {} for m in methods}
    out = MapScores({}, dict(maps or {}), {})
    for key, options in specs.items():
        opts = dict(options)
        method, combined = opts.pop("method", key), bool(opts.pop("combined", False))
        class_specific = method in CLASS_METHODS and not combined
        start = time.perf_counter()
        if key not in out.maps:
            fn = compute_class_attention_maps if class_specific else compute_attention_maps
            out.maps[key] = fn(model, images, method=method, **opts)[1]
        out.seconds[key] = time.perf_counter() - start if key not in (maps or {}) else 0.0
        lab = list(labels) if class_specific else None
        reports = [localization_report(out.maps[key], masks, tolerance=t, labels=lab) for t in tolerances]
        rep = reports[0]
        rep["pointing_game_at"] = {
            f"{t:g}": r["overall"]["pointing_game"] for t, r in zip(tolerances, reports)
        }
        rep["uniform_pointing_at"] = {
            f"{t:g}": r["overall"]["uniform_pointing_baseline"] for t, r in zip(tolerances, reports)
        }
        out.reports[key] = rep
    return out
