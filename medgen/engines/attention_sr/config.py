"""The pipeline's configuration: read from the bundle's ``pipeline`` workflow, merged with overrides.

The defaults live in ``bundles/cxr_attention_sr_classifier/configs/pipeline.yaml`` (``pipeline_config``) and its
overlays only; :func:`load_pipeline_config` resolves them for Python callers (the demo, tests, benchmarks), so
there is no second copy of them in code. Also here: the small helpers every stage reads the config through.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["cache_key", "data_key", "load_pipeline_config", "merge_config", "pointing_tolerances"]

BUNDLE = "cxr_attention_sr_classifier"


def merge_config(base: Mapping[str, Any], over: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` with ``over`` merged in: nested dicts merge, ``kwargs`` dicts are replaced whole.

    Raises:
        KeyError: ``over`` names a key that ``base`` lacks (the message lists the valid ones).
    """
    out = copy.deepcopy(dict(base))
    for k, v in (over or {}).items():
        if k not in out:
            raise KeyError(f"run_pipeline: unknown config key {k!r}; valid keys: {sorted(out)}")
        nested = isinstance(out[k], dict) and isinstance(v, Mapping) and k != "kwargs"
        out[k] = merge_config(out[k], v) if nested else copy.deepcopy(v)
    return out


def load_pipeline_config(
    overrides: Mapping[str, Any] | None = None,
    configs: Sequence[str] = (),
    bundle_root: str | Path | None = None,
) -> dict[str, Any]:
    """The bundle's resolved ``pipeline_config`` (``pipeline.yaml`` + overlay ``configs``) merged with ``overrides``.

    Args:
        overrides: nested keys of ``pipeline_config`` (e.g. ``{"data": {"n_images": 24}}``); unknown keys raise.
        configs: overlay names of the bundle, applied in order (``"pipeline_smoke"``, ``"quick"``, ``"full"``).
        bundle_root: the bundle's ``bundle_root`` (``output_dir`` defaults to ``<bundle_root>/runs/pipeline``).
    """
    from monai.bundle import ConfigParser

    from medgen.registry.bundles import get_bundle

    bundle = get_bundle(BUNDLE)
    parser = ConfigParser()
    parser.read_config([str(bundle.config_path(c)) for c in ("pipeline", *configs)])
    parser["bundle_root"] = str(bundle_root or bundle.path)
    return merge_config(parser.get_parsed_content("pipeline_config"), overrides)


def cache_key(*parts: Any) -> str:
    """A short stable hash of JSON-able ``parts`` (cache file names)."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def data_key(cfg: Mapping[str, Any]) -> Any:
    """What identifies the data in cache keys: ``data`` on the phantom, + ``dataset`` on a folder."""
    return cfg["data"] if not cfg["dataset"]["dir"] else [cfg["data"], cfg["dataset"]]


def pointing_tolerances(tolerance: float | Sequence[float]) -> list[float]:
    """``attention.pointing_tolerance`` as a list of pixel tolerances (a number or a list; the first is primary)."""
    tols = [float(x) for x in (tolerance if isinstance(tolerance, (list, tuple)) else [tolerance])]
    if not tols or any(x < 0 for x in tols):
        raise ValueError(
            "run_pipeline: attention.pointing_tolerance must be a pixel distance >= 0 or a list of "
            f"them, got {tolerance!r}"
        )
    return tols
