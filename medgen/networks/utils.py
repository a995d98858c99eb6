"""Small helpers for medgen networks: factory bookkeeping and the one checkpoint format, reader and loader.

Every medgen checkpoint is ``{"arch", "scale", "config", "state_dict", **extras}`` (extras such as a
classifier's ``labels``), written by :func:`save_checkpoint` and read by :func:`read_checkpoint`, which uses
``torch.load(weights_only=True)`` (or safetensors) and names the file on any error. :func:`load_checkpoint`
rebuilds the network from the registry or loads into a given one; a checkpoint of another architecture, scale
or label list fails with an error naming both, instead of PyTorch's long list of missing keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

SR_TASK = "super_resolution"
SR_DISCRIMINATOR_TASK = "sr_discriminator"


def sr_factory(task: str = SR_TASK) -> Callable[[Callable], Callable]:
    """Mark a registered factory function with its task so tests/benchmarks can find every SR model."""

    def deco(fn: Callable) -> Callable:
        fn.task = task  # type: ignore[attr-defined]
        return fn

    return deco


def build(arch: str, cls: type[nn.Module], defaults: dict[str, Any], overrides: dict[str, Any]) -> nn.Module:
    """Instantiate ``cls(**defaults | overrides)`` and record ``arch``/``config`` on the module."""
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise TypeError(
            f"network {arch!r} got unknown argument(s) {sorted(unknown)}; valid arguments: {sorted(defaults)}."
        )
    config = {**defaults, **overrides}
    model = cls(**config)
    model.arch = arch
    model.config = dict(config)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------------------------------------- checkpoints
# One format for every medgen network checkpoint: {"arch", "scale", "config", "state_dict", **extras}.

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")
LEGACY_META_KEY = (
    "medgen_meta"  # files written before issue 12: {"network": sd, "medgen_meta": {...}, **extras}
)


class CheckpointError(RuntimeError):
    """A checkpoint could not be read or does not match what the config expects."""


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> Path:
    """Write ``{"arch", "scale", "config", "state_dict", **extra}`` for ``model`` to ``path``.

    ``arch``/``config`` are what :func:`build` recorded (the class name and ``{}`` for a network built
    otherwise), so :func:`load_checkpoint` can rebuild the network or refuse another one. ``extra`` entries
    (e.g. ``labels``, ``seed``) must be tensors or plain Python values: files are read with ``weights_only``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reserved = {"arch", "scale", "config", "state_dict"} & set(extra)
    if reserved:
        raise ValueError(f"save_checkpoint: {sorted(reserved)} are written from the model; pass other names")
    payload = {
        "arch": getattr(model, "arch", "") or type(model).__name__,
        "scale": int(getattr(model, "scale", 0) or 0),
        "config": dict(getattr(model, "config", {}) or {}),
        "state_dict": model.state_dict(),
        **extra,
    }
    torch.save(payload, str(path))
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a ``.pt``/``.pth``/``.ckpt`` (``torch.load(weights_only=True)``) or ``.safetensors`` file as a dict.

    The one reader: it never unpickles code. A file written by :func:`save_checkpoint` (or by its pre-issue-12
    format) comes back as ``{"arch", "scale", "config", "state_dict", **extras}``; any other file (a bare
    state dict, an Ignite/MONAI ``CheckpointSaver`` dict) comes back as stored.

    Raises:
        CheckpointError: naming the file, when it is missing, truncated, holds pickled code or is not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist; train first or fix the path in the config"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device=str(map_location))
        else:
            state = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:
        text = str(exc)
        first = text.splitlines()[0] if text else ""
        if "weights_only" in text or "Unpickler" in text:
            detail = next((ln.strip() for ln in text.splitlines() if "Unsupported global" in ln), first)
            raise CheckpointError(
                f"cannot load checkpoint {str(path)!r}: it holds pickled Python objects ({detail[:160]}). "
                "Re-save it as a plain state_dict (tensors, numbers, strings); medgen never unpickles code."
            ) from exc
        raise CheckpointError(
            f"cannot load checkpoint {str(path)!r}: {type(exc).__name__}: {first}. "
            f"The file may be truncated or not a PyTorch/safetensors checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})."
        ) from exc
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {type(state).__name__}, expected a dict of tensors"
        )
    state = dict(state)
    legacy = state.pop(LEGACY_META_KEY, None)
    if isinstance(legacy, Mapping) and "network" in state:
        state = {**legacy, "state_dict": state.pop("network"), **state}
    return state


def is_medgen_checkpoint(ckpt: Mapping[str, Any]) -> bool:
    """Whether a :func:`read_checkpoint` result carries the architecture metadata of :func:`save_checkpoint`."""
    return all(k in ckpt for k in ("arch", "scale", "state_dict"))


def load_checkpoint(path: str | Path, model: nn.Module | None = None, strict: bool = True) -> nn.Module:
    """Load weights into ``model`` or, without a model, rebuild the network from the registry.

    A :func:`save_checkpoint` file is checked against ``model``: architecture, scale, constructor config and,
    when both have one, the label list. A bare state dict (MONAI ``CheckpointSaver``'s ``model.pt``, a
    ``{"network": ...}`` dict, a ``.safetensors`` file) needs ``model``. ``module.`` prefixes (DDP) are removed.

    Raises:
        ValueError: the file has no architecture metadata and no model was given, or its architecture, scale,
            config or labels differ from ``model``'s; the message names both.
        CheckpointError: the file cannot be read, or its tensors do not fit ``model``.
    """
    return apply_checkpoint(read_checkpoint(path), model, strict, source=str(path))


def apply_checkpoint(
    ckpt: Mapping[str, Any], model: nn.Module | None = None, strict: bool = True, source: str = ""
) -> nn.Module:
    """:func:`load_checkpoint` on a dict that :func:`read_checkpoint` already returned (``source`` names it)."""
    where = repr(source)
    if not is_medgen_checkpoint(ckpt):
        if model is None:
            raise ValueError(
                f"checkpoint {where} has no arch/scale metadata: it was not written by "
                "medgen.networks.utils.save_checkpoint. Pass the network to load it into "
                "(load_checkpoint(path, model)) or re-save it with save_checkpoint."
            )
        _check_labels(ckpt, model, where)
        return _load_state(model, ckpt.get("network", ckpt.get("state_dict", ckpt)), strict, where, "unknown")
    if model is None:
        from medgen.registry import create_network

        model = create_network(ckpt["arch"], **ckpt["config"])
    _check_labels(ckpt, model, where)
    arch = getattr(model, "arch", "") or type(model).__name__
    scale = int(getattr(model, "scale", 0) or 0)
    if ckpt["arch"] != arch or int(ckpt["scale"]) != scale:
        raise ValueError(
            f"checkpoint {where} holds arch={ckpt['arch']!r} scale={ckpt['scale']} but the network is "
            f"arch={arch!r} scale={scale}; build the network named in the checkpoint "
            f"(load_checkpoint(path) without a model does that) or pick the matching checkpoint."
        )
    if ckpt.get("config") and getattr(model, "config", None) and ckpt["config"] != model.config:
        raise ValueError(
            f"checkpoint {where} was saved from {ckpt['arch']!r} with config {ckpt['config']} but the "
            f"network was built with {model.config}; build it with the checkpoint's config."
        )
    return _load_state(model, ckpt["state_dict"], strict, where, ckpt["arch"])


def _check_labels(ckpt: Mapping[str, Any], model: nn.Module | None, where: str) -> None:
    labels = getattr(model, "labels", None)
    if "labels" in ckpt and labels is not None and tuple(ckpt["labels"]) != tuple(labels):
        raise ValueError(
            f"checkpoint {where} was trained for labels {list(ckpt['labels'])} but the config asks for "
            f"{list(labels)}; use the same label list (and order) or retrain the classifier"
        )


def _load_state(model: nn.Module, state: Mapping[str, Any], strict: bool, where: str, arch: str) -> nn.Module:
    state = dict(state)
    if any(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {where} (arch {arch!r}) does not fit {type(model).__name__}: "
            f"{str(exc).splitlines()[0]} ..."
        ) from exc
    return model
