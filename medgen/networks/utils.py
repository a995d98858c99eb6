"""Small helpers for medgen networks: factory bookkeeping and checkpoints with architecture metadata.

Checkpoints are written in the format of :mod:`medgen.handlers.checkpoint` (``{"network": state_dict,
"medgen_meta": {"arch", "scale", "config"}}``) and read back with ``torch.load(weights_only=True)``. A checkpoint of another architecture or scale
fails with an error naming both, instead of PyTorch's long list of missing keys.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> Path:
    """Save ``model``'s weights under ``"network"`` with ``arch``, ``scale`` and constructor ``config`` metadata.

    Uses the lead's :func:`medgen.handlers.checkpoint.save_checkpoint` format (metadata under ``medgen_meta``),
    so MONAI's ``CheckpointLoader`` with ``load_dict={"network": net}`` reads the weights too. ``extra``
    entries must be tensors or plain Python values (files are read back with ``weights_only=True``).
    """
    from medgen.handlers.checkpoint import save_checkpoint as _save

    meta = {
        "arch": getattr(model, "arch", "") or type(model).__name__,
        "scale": int(getattr(model, "scale", 0) or 0),
        "config": dict(getattr(model, "config", {}) or {}),
    }
    return _save(path, {"network": model.state_dict(), **extra}, meta=meta)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely and return ``{"arch", "scale", "config", "state_dict"}``.

    Raises:
        ValueError: the file carries no ``arch``/``scale`` metadata (not written by :func:`save_checkpoint`).
    """
    from medgen.handlers.checkpoint import META_KEY
    from medgen.handlers.checkpoint import load_checkpoint as _load

    ckpt = _load(path)
    meta = ckpt.get(META_KEY) or {}
    if "arch" not in meta or "scale" not in meta or "network" not in ckpt:
        raise ValueError(
            f"checkpoint {str(path)!r} has no arch/scale metadata or no 'network' weights: it was not written by "
            f"medgen.networks.utils.save_checkpoint. Re-save it with that function so its architecture and "
            f"scale can be checked."
        )
    return {
        "arch": meta["arch"],
        "scale": int(meta["scale"]),
        "config": dict(meta.get("config") or {}),
        "state_dict": ckpt["network"],
    }


def load_checkpoint(path: str | Path, model: nn.Module | None = None, strict: bool = True) -> nn.Module:
    """Load weights into ``model`` (checking arch and scale) or, without a model, rebuild it from the registry.

    Raises:
        ValueError: the checkpoint's architecture, scale or config differs from ``model``'s; the message names
            both.
    """
    ckpt = read_checkpoint(path)
    if model is None:
        from medgen.registry import create_network

        model = create_network(ckpt["arch"], **ckpt["config"])
    arch = getattr(model, "arch", "") or type(model).__name__
    scale = int(getattr(model, "scale", 0) or 0)
    if ckpt["arch"] != arch or ckpt["scale"] != scale:
        raise ValueError(
            f"checkpoint {str(path)!r} holds arch={ckpt['arch']!r} scale={ckpt['scale']} but the network is "
            f"arch={arch!r} scale={scale}; build the network named in the checkpoint "
            f"(load_checkpoint(path) without a model does that) or pick the matching checkpoint."
        )
    if ckpt["config"] and getattr(model, "config", None) and ckpt["config"] != model.config:
        raise ValueError(
            f"checkpoint {str(path)!r} was saved from {ckpt['arch']!r} with config {ckpt['config']} but the "
            f"network was built with {model.config}; build it with the checkpoint's config."
        )
    state = ckpt["state_dict"]
    if any(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    model.load_state_dict(state, strict=strict)
    return model
