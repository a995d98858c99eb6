"""Plugin discovery: the built-in manifest, then every entry point in group ``medgen.plugins``."""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import importlib.resources
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medgen.registry.core import (
    ENTRY_POINT_GROUP,
    PluginRecord,
    import_target,
    plugins_disabled,
    read_manifest_file,
)

if TYPE_CHECKING:
    from medgen.registry.core import Registry


def _manifest_from_entry_point(ep: Any) -> tuple[dict, Path | None]:
    """An entry point names either ``module:ATTR`` (a dict or a function returning one) or ``package:file.yaml``."""
    value: str = ep.value
    module, _, attr = value.partition(":")
    if attr.endswith((".yaml", ".yml", ".json")):
        resource = importlib.resources.files(module) / attr
        path = Path(str(resource))
        return read_manifest_file(path), path.parent
    obj = import_target(value)
    manifest = obj() if callable(obj) else obj
    mod = importlib.import_module(module)
    root = Path(mod.__file__).parent if getattr(mod, "__file__", None) else None
    return manifest, root


def load_entry_point(registry: Registry, ep: Any) -> PluginRecord:
    dist = getattr(getattr(ep, "dist", None), "name", None) or ep.name
    try:
        manifest, root = _manifest_from_entry_point(ep)
        if not isinstance(manifest, dict):
            raise TypeError(
                f"entry point {ep.value!r} must give a dict manifest, got {type(manifest).__name__}"
            )
    except Exception as exc:  # a plugin that cannot even be read is listed as broken, never fatal
        record = PluginRecord(
            name=dist, source=f"{ENTRY_POINT_GROUP}:{ep.value}", error=f"{type(exc).__name__}: {exc}"
        )
        registry.plugins[dist] = record
        return record
    manifest.setdefault("name", dist)
    return registry.load_manifest(manifest, source=f"{ENTRY_POINT_GROUP}:{ep.value}", root=root)


def load_all_plugins(registry: Registry) -> None:
    from medgen.plugin import MANIFEST, MANIFEST_ROOT

    registry.load_manifest(dict(MANIFEST), source="medgen (built-in)", root=MANIFEST_ROOT)
    extra = [p for p in os.environ.get("MEDGEN_BUNDLE_PATH", "").split(os.pathsep) if p.strip()]
    if extra:  # user bundle folders without a plugin distribution
        registry.load_manifest(
            {"name": "MEDGEN_BUNDLE_PATH", "version": "", "api_version": 1, "bundles": extra},
            source="environment variable MEDGEN_BUNDLE_PATH",
        )
    if plugins_disabled():
        return
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == "medgen" or ep.value.startswith("medgen.plugin:"):
            continue  # already loaded above, without relying on installed metadata
        load_entry_point(registry, ep)
