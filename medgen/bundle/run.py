"""Run a registered bundle: workflow -> stacked config files, overrides, tracking, then ``monai.bundle.run``.

:func:`run_bundle` maps one-to-one onto ``python -m monai.bundle run --config_file ... --bundle_root ...``;
:meth:`RunPlan.monai_command` prints that equivalent command so users can always drop down to plain MONAI.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from medgen.registry.bundles import CONFIGS_DIR, Bundle, BundleError, get_bundle
from medgen.registry.core import _closest

TRACKING_SETTINGS = CONFIGS_DIR / "tracking.yaml"


def parse_override(text: str) -> tuple[str, Any]:
    """``a#b=value`` -> (``a#b``, YAML-parsed value). Raises BundleError on a malformed override."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(c.isspace() for c in key) or key.startswith("#") or key.endswith("#"):
        raise BundleError(
            f"malformed --set {text!r}: write KEY=VALUE with a config id as KEY, e.g. --set max_epochs=2 "
            f"or --set train#dataloader#batch_size=8"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _iter_targets(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for k, v in node.items():
            if k == "_target_" and isinstance(v, str):
                yield v
            else:
                yield from _iter_targets(v)
    elif isinstance(node, list):
        for v in node:
            yield from _iter_targets(v)


def _load_config_file(path: Path) -> dict:
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except Exception as exc:
        raise BundleError(f"cannot read config {str(path)!r}: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise BundleError(f"config {str(path)!r} must hold a mapping of ids, not {type(data).__name__}")
    return data


def check_config_references(config_files: Sequence[Path]) -> None:
    """Fail early, with the plugin to install, when a ``_target_`` names a module that is not installed."""
    for path in config_files:
        for target in _iter_targets(_load_config_file(path)):
            if "." not in target and ":" not in target:
                continue  # MONAI short names such as SupervisedTrainer
            top = target.replace(":", ".").split(".")[0]
            if importlib.util.find_spec(top) is None:
                raise BundleError(
                    f"config {str(path)!r} uses {target!r}, but Python package {top!r} is not installed: install "
                    f"the plugin that provides it (e.g. `uv pip install -e plugins/<plugin>`), then see "
                    f"`medgen plugins`"
                )


def check_dataset_dir(config_files: Sequence[Path], overrides: Mapping[str, Any]) -> None:
    value: Any = None
    for path in config_files:
        value = _load_config_file(path).get("dataset_dir", value)
    value = overrides.get("dataset_dir", value)
    if isinstance(value, str) and not value.startswith(("$", "@", "%")) and not Path(value).exists():
        raise BundleError(
            f"dataset_dir {value!r} does not exist: pass an existing folder with --set dataset_dir=/path/to/data, "
            f"or --set dataset_dir=null for the embedded phantom data"
        )


@dataclass
class RunPlan:
    bundle: Bundle
    workflow: str
    config_files: list[Path]
    overrides: dict[str, Any]
    bundle_root: Path
    tracking: str | None

    def monai_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "config_file": [str(p) for p in self.config_files],
            "meta_file": str(self.bundle.configs / "metadata.json"),
            "bundle_root": str(self.bundle_root),
        }
        logging_conf = self.bundle.configs / "logging.conf"
        if logging_conf.is_file():
            kwargs["logging_file"] = str(logging_conf)
        if self.tracking:
            kwargs["tracking"] = self.tracking
        kwargs.update(self.overrides)
        return kwargs

    def monai_command(self) -> str:
        kw = self.monai_kwargs()
        files = ",".join(f"'{f}'" for f in kw.pop("config_file"))
        parts = ["python -m monai.bundle run", f'--config_file "[{files}]"']
        for key, value in kw.items():
            parts.append(f"--{key} {shlex.quote(value if isinstance(value, str) else json.dumps(value))}")
        return " ".join(parts)


def plan_run(
    bundle_name: str,
    workflow: str | None = None,
    configs: Sequence[str] = (),
    overrides: Sequence[str] = (),
    tracking: str | bool | None = None,
    bundle_root: str | Path | None = None,
) -> RunPlan:
    bundle = get_bundle(bundle_name)
    workflows = bundle.workflows
    workflow = workflow or bundle.default_workflow
    if workflow not in workflows:
        raise BundleError(
            f"bundle {bundle.name!r} has no workflow {workflow!r}.{_closest(workflow, workflows)}"
        )
    files = [bundle.config_path(f) for f in workflows[workflow]] + [bundle.config_path(c) for c in configs]
    parsed = dict(parse_override(o) for o in overrides)
    check_config_references(files)
    check_dataset_dir(files, parsed)
    if tracking is True:
        tracking = str(TRACKING_SETTINGS)
    if tracking and tracking != "mlflow":
        if not Path(str(tracking)).is_file():
            raise BundleError(f"--tracking {tracking!r}: give 'mlflow' or an existing settings file")
        parsed.setdefault(
            "tracking_params", _scalar_params(files, parsed) | {"bundle": bundle.name, "workflow": workflow}
        )
    return RunPlan(
        bundle,
        workflow,
        files,
        parsed,
        Path(bundle_root or bundle.path).resolve(),
        str(tracking) if tracking else None,
    )


def _scalar_params(files: Sequence[Path], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level literal hyper-parameters (numbers, booleans, short strings) of the stacked configs."""
    merged: dict[str, Any] = {}
    for path in files:
        merged.update(_load_config_file(path))
    merged.update({k: v for k, v in overrides.items() if "#" not in k})
    out = {}
    for key, value in merged.items():
        if key in ("bundle_root", "dataset_dir"):
            continue  # paths say where, not how; the executed config artifact has them
        if isinstance(value, bool | int | float) or (
            isinstance(value, str) and len(value) < 100 and not value.startswith(("$", "@", "%"))
        ):
            out[key] = value
    return out


def run_bundle(plan: RunPlan) -> Any:
    from monai.bundle import run

    return run(**plan.monai_kwargs())
