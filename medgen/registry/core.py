"""One registry for every kind of medgen component, fed by plugin manifests.

First-party code and third-party plugins both arrive through :meth:`Registry.load_manifest`: a manifest is the
one list of what a distribution contributes (medgen's own is ``medgen/plugin.py``). Manifest entries are
``"module:attr"`` strings, imported only when the component is first used (npe2 / MLflow style). The
``register`` decorator is for code that belongs to no distribution (a notebook, a test); medgen and its plugins
never use it, so no component has two sources.
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("medgen.registry")

PLUGIN_API_VERSION = 1
ENTRY_POINT_GROUP = "medgen.plugins"
KINDS = (
    "network",
    "dataset",
    "data_source",
    "transform",
    "sr_backend",
    "text_encoder",
    "metric",
    "loss",
    "engine",
    "bundle",
)


class RegistryError(LookupError):
    """A registry lookup or registration failed; the message says what to do."""


@dataclass
class Entry:
    """A registered component: ``target`` is the object or a lazy ``"module:attr"`` string."""

    kind: str
    name: str
    target: Any
    owner: str

    @property
    def loaded(self) -> bool:
        return not isinstance(self.target, str) or self.kind == "bundle"


@dataclass
class PluginRecord:
    """What ``medgen plugins`` shows for one manifest."""

    name: str
    version: str = ""
    api_version: Any = None
    source: str = ""
    components: list[str] = field(default_factory=list)
    bundles: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _closest(name: str, options: Iterable[str]) -> str:
    options = sorted(options)
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"{hint} Available: {', '.join(options) if options else '(none)'}."


def import_target(target: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute."""
    if ":" not in target:
        raise RegistryError(f"target {target!r} is not of the form 'module:attr'")
    module_name, attr = target.split(":", 1)
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise RegistryError(f"unknown component kind {kind!r}.{_closest(kind, KINDS)}")


class Registry:
    """Name -> component tables, one per kind, with plugin bookkeeping."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self.plugins: dict[str, PluginRecord] = {}
        self._loaded = False

    # -- registration -------------------------------------------------------------------------------------
    def add(self, kind: str, name: str, target: Any, owner: str) -> None:
        """Register ``target`` as ``kind`` ``name``; a second owner of the same name raises naming both."""
        _check_kind(kind)
        table = self._entries[kind]
        old = table.get(name)
        if old is not None and not self._same(old, target):
            raise RegistryError(
                f"{kind} {name!r} is registered twice: by {old.owner!r} and by {owner!r}. "
                f"Rename one of them (plugin components are namespaced '<plugin>.<name>')."
            )
        if old is None:
            table[name] = Entry(kind, name, target, owner)

    @staticmethod
    def _same(old: Entry, target: Any) -> bool:
        return old.target is target or old.target == target

    def register(self, kind: str, name: str | None = None, owner: str | None = None) -> Callable[[Any], Any]:
        """Decorator for session-local components (a notebook, a test): ``@register("network", "mynet")``.

        Distributions list their components in a manifest instead, so that ``medgen list`` knows them without
        importing their code.
        """

        def deco(obj: Any) -> Any:
            self.add(kind, name or obj.__name__, obj, owner or obj.__module__.split(".")[0])
            return obj

        return deco

    # -- lookup -------------------------------------------------------------------------------------------
    def ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            from medgen.registry.plugins import load_all_plugins

            load_all_plugins(self)

    def entry(self, kind: str, name: str) -> Entry:
        _check_kind(kind)
        self.ensure_loaded()
        table = self._entries[kind]
        if name not in table:
            broken = [p for p in self.plugins.values() if not p.ok and name.startswith(p.name + ".")]
            extra = f" Plugin {broken[0].name!r} failed to load: {broken[0].error}" if broken else ""
            raise RegistryError(f"unknown {kind} {name!r}.{_closest(name, table)}{extra}")
        return table[name]

    def get(self, kind: str, name: str) -> Any:
        """The component object, importing plugin code on first use."""
        entry = self.entry(kind, name)
        if isinstance(entry.target, str) and kind != "bundle":
            try:
                entry.target = import_target(entry.target)
            except Exception as exc:  # report which plugin and target failed, keep the registry usable
                raise RegistryError(
                    f"{kind} {name!r} from {entry.owner!r} could not be imported from {entry.target!r}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        return entry.target

    def names(self, kind: str) -> list[str]:
        _check_kind(kind)
        self.ensure_loaded()
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> list[Entry]:
        _check_kind(kind)
        self.ensure_loaded()
        return [self._entries[kind][n] for n in sorted(self._entries[kind])]

    def create(self, kind: str, name: str, **kwargs: Any) -> Any:
        return self.get(kind, name)(**kwargs)

    # -- manifests ----------------------------------------------------------------------------------------
    def load_manifest(self, manifest: dict, source: str = "", root: Path | None = None) -> PluginRecord:
        """Register a manifest's components and bundle folders; errors are recorded, never raised.

        Manifest keys: ``name``, ``version``, ``api_version``, ``components`` (``{"kind.name": "module:attr"}``;
        third-party names get the ``<plugin>.`` prefix automatically when missing), ``bundles`` (folders
        relative to ``root``, each holding bundle directories).
        """
        name = str(manifest.get("name") or source or "?")
        record = PluginRecord(
            name=name,
            version=str(manifest.get("version", "")),
            api_version=manifest.get("api_version"),
            source=source,
        )
        self.plugins[name] = record
        try:
            api = manifest.get("api_version")
            if api is None or int(str(api).split(".")[0]) != PLUGIN_API_VERSION:
                raise RegistryError(
                    f"plugin {name!r} declares api_version {api!r} but medgen supports {PLUGIN_API_VERSION}; "
                    f"update the plugin or install a matching medgen"
                )
            staged: list[tuple[str, str, Any]] = []
            for key, target in (manifest.get("components") or {}).items():
                kind, _, comp = key.partition(".")
                _check_kind(kind)
                if name != "medgen" and not comp.startswith(name + "."):
                    comp = f"{name}.{comp}"
                staged.append((kind, comp, target))
            for folder in manifest.get("bundles") or []:
                base = (root / folder) if root else Path(folder)
                if not base.is_dir():
                    raise RegistryError(
                        f"plugin {name!r} names bundle folder {str(base)!r}, which does not exist"
                    )
                for bdir in sorted(p for p in base.iterdir() if (p / "configs" / "metadata.json").is_file()):
                    staged.append(("bundle", bdir.name, str(bdir.resolve())))
            for kind, comp, target in staged:  # all-or-nothing: a failing manifest registers nothing
                old = self._entries[kind].get(comp)
                if old is not None and not self._same(old, target):
                    raise RegistryError(
                        f"{kind} {comp!r} is registered twice: by {old.owner!r} and by {name!r}. "
                        f"Rename one of them."
                    )
            for kind, comp, target in staged:
                self.add(kind, comp, target, name)
                (record.bundles if kind == "bundle" else record.components).append(f"{kind}:{comp}")
        except Exception as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            logger.warning("medgen plugin %r skipped: %s", name, record.error)
        return record


def read_manifest_file(path: Path) -> dict:
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def plugins_disabled() -> bool:
    return os.environ.get("MEDGEN_DISABLE_PLUGINS", "").strip().lower() in ("1", "true", "yes", "on")
