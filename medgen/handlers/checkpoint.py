"""Checkpoint loading, metadata checks and exact resume for Ignite engines.

Saving uses MONAI's ``CheckpointSaver`` (Ignite ``Checkpoint`` underneath; files ``checkpoint_epoch=N.pt``).
This module adds the three things it lacks: one loader for every checkpoint that refuses pickled code
(``weights_only=True``) and names the file on error, a resume handler that finds the newest epoch file, and
per-epoch reseeding so that a resumed run sees the same data order and augmentation as an uninterrupted one.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger("medgen.checkpoint")

META_KEY = "medgen_meta"


class CheckpointError(RuntimeError):
    """A checkpoint could not be read or does not match what the config expects."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a ``.pt``/``.pth``/``.ckpt`` (``torch.load(weights_only=True)``) or ``.safetensors`` file.

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
        if "weights_only" in text or "Unpickler" in text:
            detail = next(
                (ln.strip() for ln in text.splitlines() if "Unsupported global" in ln), text.splitlines()[0]
            )
            raise CheckpointError(
                f"cannot load checkpoint {str(path)!r}: it holds pickled Python objects ({detail[:160]}). "
                "Re-save it as a plain state_dict (tensors, numbers, strings); medgen never unpickles code."
            ) from exc
        raise CheckpointError(
            f"cannot load checkpoint {str(path)!r}: {type(exc).__name__}: {text.splitlines()[0] if text else ''}. "
            "The file may be truncated or not a PyTorch/safetensors checkpoint."
        ) from exc
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {type(state).__name__}, expected a dict of tensors"
        )
    return dict(state)


def save_checkpoint(
    path: str | Path, state: Mapping[str, Any], meta: Mapping[str, Any] | None = None
) -> Path:
    """Save ``state`` (e.g. ``{"network": sd}``) with ``meta`` (arch, scale, labels...) for later checks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(state)
    if meta:
        payload[META_KEY] = dict(meta)
    torch.save(payload, str(path))
    return path


def check_checkpoint_meta(
    checkpoint: Mapping[str, Any], expected: Mapping[str, Any], path: str | Path = ""
) -> None:
    """Refuse a checkpoint whose stored metadata (arch, scale, labels...) differs from the config's.

    Raises:
        CheckpointError: naming the checkpoint's value and the config's value for every mismatch.
    """
    meta = checkpoint.get(META_KEY) or {}
    problems = []
    for key, want in expected.items():
        if key not in meta:
            continue
        have = meta[key]
        if isinstance(want, (list, tuple)):
            want, have = list(want), list(have)
        if have != want:
            problems.append(f"{key}: checkpoint has {have!r}, config has {want!r}")
    if problems:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the config ({'; '.join(problems)}). "
            "Point the config at a checkpoint trained for this setting, or change the config to match."
        )


def load_network_weights(
    network: torch.nn.Module,
    path: str | Path,
    key: str | None = "network",
    expected_meta: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> torch.nn.Module:
    """Load weights into ``network`` from a medgen/MONAI checkpoint, with a clear error on mismatch."""
    ckpt = load_checkpoint(path)
    if expected_meta:
        check_checkpoint_meta(ckpt, expected_meta, path)
    state = ckpt.get(key, ckpt) if key else ckpt
    state = {k: v for k, v in state.items() if k != META_KEY}
    if any(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        network.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        meta = ckpt.get(META_KEY, {})
        raise CheckpointError(
            f"checkpoint {str(path)!r} (arch {meta.get('arch', 'unknown')!r}) does not fit "
            f"{type(network).__name__}: {str(exc).splitlines()[0]} ..."
        ) from exc
    return network


_EPOCH_RE = re.compile(r"epoch=(\d+)")


def latest_checkpoint(directory: str | Path, prefix: str = "checkpoint") -> str | None:
    """Path of the highest-epoch ``<prefix>_epoch=N.pt`` in ``directory``, or None when there is none."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = []
    for f in directory.glob(f"{prefix}*epoch=*.pt"):
        m = _EPOCH_RE.search(f.name)
        if m:
            found.append((int(m.group(1)), f))
    return str(max(found)[1]) if found else None


def seed_everything(seed: int, transforms: Any = None) -> None:
    """Seed Python, NumPy, torch and (when given) MONAI randomizable transforms."""
    seed = int(seed) % (2**32)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if transforms is not None and hasattr(transforms, "set_random_state"):
        transforms.set_random_state(seed=seed)


class EpochSeed:
    """Reseed every RNG at the start of each epoch from ``seed + epoch``.

    Ignite builds the epoch's data iterator after ``EPOCH_STARTED``, so shuffling, worker seeds, dropout and
    random transforms all depend only on (seed, epoch): a run resumed at epoch N sees what it would have seen.
    """

    def __init__(self, seed: int = 0, transforms: Any = None) -> None:
        self.seed = seed
        self.transforms = transforms

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        if not engine.has_event_handler(self, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Any) -> None:
        seed_everything(self.seed + 1000003 * engine.state.epoch, self.transforms)


class TrainingCheckpoint:
    """Save ``save_dict`` plus the trainer's state every epoch, and resume from the newest file at start.

    Files are ``checkpoint_epoch=N.pt`` (the names MONAI's ``CheckpointSaver`` uses), written through Ignite's
    ``Checkpoint``/``DiskSaver``. The trainer itself is added when the handler is attached, which keeps bundle
    configs free of the circular reference trainer -> handlers -> trainer. With no checkpoint present the run
    starts from scratch and the log says so.

    Args:
        directory: folder for the per-epoch files.
        save_dict: objects with ``state_dict`` (network, optimizer, scheduler...), keyed by name.
        resume: load the newest checkpoint of ``directory`` when the run starts.
        n_saved: how many epoch files to keep (None keeps all).
        save: whether to write files; None (default) writes on rank 0 only in a distributed run.
    """

    def __init__(
        self,
        directory: str | Path,
        save_dict: Mapping[str, Any],
        resume: bool = True,
        n_saved: int | None = 2,
        save: bool | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.save_dict = dict(save_dict)
        self.resume = resume
        self.n_saved = n_saved
        self.save = save
        self._checkpoint: Any = None

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events
        from ignite.handlers import Checkpoint, DiskSaver

        to_save = {**self.save_dict, "trainer": engine}
        save = self.save
        if save is None:
            import torch.distributed as dist

            save = not (dist.is_available() and dist.is_initialized() and dist.get_rank() > 0)
        if save and self._checkpoint is None:
            self._checkpoint = Checkpoint(
                to_save,
                DiskSaver(str(self.directory), require_empty=False, create_dir=True),
                score_function=lambda e: e.state.epoch,
                score_name="epoch",
                n_saved=self.n_saved,
            )
            engine.add_event_handler(Events.EPOCH_COMPLETED, self._checkpoint)
        if self.resume and not engine.has_event_handler(self.load, Events.STARTED):
            engine.add_event_handler(Events.STARTED, self.load)

    def load(self, engine: Any) -> None:
        from ignite.handlers import Checkpoint

        path = latest_checkpoint(self.directory)
        if path is None:
            logger.info("no checkpoint in %s: training starts from scratch", self.directory)
            return
        ckpt = load_checkpoint(path)
        max_epochs = engine.state.max_epochs
        Checkpoint.load_objects(to_load={**self.save_dict, "trainer": engine}, checkpoint=ckpt)
        if max_epochs is not None:
            engine.state.max_epochs = max(max_epochs, engine.state.epoch)  # resume may extend a finished run
        logger.info("resumed from %s at epoch %s of %s", path, engine.state.epoch, engine.state.max_epochs)
