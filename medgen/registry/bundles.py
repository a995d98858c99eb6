"""MONAI bundles known to the registry: lookup, workflow -> config files, run and verify.

``run_bundle`` maps one-to-one onto ``python -m monai.bundle run --config_file ... --bundle_root ...``;
:func:`monai_command` prints that equivalent command so users can always drop down to plain MONAI.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from medgen.registry import REGISTRY
from medgen.registry.core import RegistryError, _closest

# configs/ (shared overlays) is the data package medgen.configs: the repository's top-level folder in an editable
# install, a folder inside the wheel otherwise (setup.py); found through the import system either way.
CONFIGS_DIR = Path(str(files("medgen.configs")))
TRACKING_SETTINGS = CONFIGS_DIR / "tracking.yaml"
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


def verify_bundle(
    bundle_name: str, out_dir: str | Path | None = None, bundle_root: str | Path | None = None
) -> dict:
    """Check metadata against the shipped schema, run ``verify_net_in_out``, export TorchScript and reload it.

    Network weights come from ``models/model.pt`` when present; otherwise the freshly initialised network is
    exported (the check is about the graph and the metadata, not the weights).
    """
    import tempfile

    import torch
    from monai.bundle import ConfigParser, verify_metadata, verify_net_in_out
    from monai.data import load_net_with_metadata, save_net_with_metadata

    bundle = get_bundle(bundle_name)
    root = Path(bundle_root or bundle.path).resolve()
    meta = bundle.configs / "metadata.json"
    verify_metadata(meta_file=str(meta), filepath=str(METADATA_SCHEMA))
    inference = bundle.config_path("inference")
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(meta),
        config_file=str(inference),
        device="cpu",
        bundle_root=str(root),
    )
    parser = ConfigParser()
    parser.read_meta(str(meta))
    parser.read_config(str(inference))
    parser["bundle_root"] = str(root)
    net = parser.get_parsed_content("network_def")
    model_pt = root / "models" / "model.pt"
    if model_pt.is_file():
        from medgen.handlers.checkpoint import load_network_weights

        load_network_weights(net, model_pt, key=None)
    net.eval()
    fmt = bundle.metadata["network_data_format"]["inputs"]["image"]
    shape = [
        1,
        int(fmt.get("num_channels", 1)),
        *[int(s) if isinstance(s, int) else 64 for s in fmt["spatial_shape"]],
    ]
    example = torch.rand(*shape)
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix=f"medgen_verify_{bundle.name}_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    ts_path = out_dir / "model.ts"
    scripted = torch.jit.trace(net, example, check_trace=False)
    save_net_with_metadata(
        scripted,
        str(ts_path.with_suffix("")),
        meta_values=bundle.metadata,
        more_extra_files={"inference.yaml": inference.read_text().encode()},
    )
    loaded, meta_back, extra = load_net_with_metadata(str(ts_path), more_extra_files=("inference.yaml",))
    with torch.no_grad():
        diff = float((loaded(example) - net(example)).abs().max())
    if diff > 1e-4:
        raise BundleError(f"TorchScript export of {bundle.name!r} differs from the network by {diff:.2e}")
    return {
        "bundle": bundle.name,
        "metadata": "ok",
        "net_in_out": "ok",
        "torchscript": str(ts_path),
        "torchscript_max_abs_diff": diff,
        "weights": str(model_pt) if model_pt.is_file() else "initial",
    }
