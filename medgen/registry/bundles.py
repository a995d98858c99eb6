"""MONAI bundles known to the registry: discovery and lookup (name -> folder, metadata, workflows, configs).

Running and verifying a bundle is :mod:`medgen.bundle` (the top layer); this module only reads folders and JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from medgen.registry import REGISTRY
from medgen.registry.core import RegistryError, _closest

# configs/ (shared overlays) is the data package medgen.configs: the repository's top-level folder in an editable
# install, a folder inside the wheel otherwise (setup.py); found through the import system either way.
CONFIGS_DIR = Path(str(files("medgen.configs")))
METADATA_SCHEMA = Path(__file__).resolve().parent / "schema" / "meta_schema.json"
DEFAULT_WORKFLOWS = {
    "train": ["train.yaml"],
    "evaluate": ["train.yaml", "evaluate.yaml"],
    "inference": ["inference.yaml"],
}


class BundleError(ValueError):
    """A bundle, workflow, config or override is wrong; the message says how to fix it."""


@dataclass
class Bundle:
    name: str
    path: Path
    owner: str

    @property
    def configs(self) -> Path:
        return self.path / "configs"

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads((self.configs / "metadata.json").read_text())

    @property
    def workflows(self) -> dict[str, list[str]]:
        declared = self.metadata.get("medgen_workflows")
        if declared:
            return {k: list(v) for k, v in declared.items()}
        return {k: v for k, v in DEFAULT_WORKFLOWS.items() if all((self.configs / f).is_file() for f in v)}

    @property
    def default_workflow(self) -> str:
        return self.metadata.get("medgen_default_workflow") or next(iter(self.workflows), "train")

    def config_path(self, name: str) -> Path:
        """A config of this bundle by file name or stem (``smoke`` -> ``configs/smoke.yaml``), or any path."""
        as_path = Path(name)
        if as_path.is_file():
            return as_path.resolve()
        for candidate in (name, f"{name}.yaml", f"{name}.yml", f"{name}.json"):
            if (self.configs / candidate).is_file():
                return self.configs / candidate
        repo_overlay = CONFIGS_DIR / f"{name}.yaml"
        if repo_overlay.is_file():
            return repo_overlay
        options = sorted(p.stem for p in self.configs.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        raise BundleError(
            f"config {name!r} is neither a file nor a config of bundle {self.name!r}.{_closest(name, options)}"
        )


def get_bundle(name: str) -> Bundle:
    try:
        entry = REGISTRY.entry("bundle", name)
    except RegistryError as exc:
        raise BundleError(f"{exc} List them with `medgen list`.") from None
    return Bundle(name=name, path=Path(entry.target), owner=entry.owner)


def iter_bundles() -> Iterator[Bundle]:
    for entry in REGISTRY.entries("bundle"):
        yield Bundle(name=entry.name, path=Path(entry.target), owner=entry.owner)
