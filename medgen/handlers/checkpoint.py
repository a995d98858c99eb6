"""Exact resume for Ignite engines: per-epoch checkpoints, resume from the newest, per-epoch reseeding.

Saving uses Ignite's ``Checkpoint`` (files ``checkpoint_epoch=N.pt``, the names MONAI's ``CheckpointSaver``
uses); reading goes through the one safe reader, :func:`medgen.networks.utils.read_checkpoint`
(``weights_only=True``, the file named on error). Network checkpoints themselves (format, saving, loading into
a model) live in :mod:`medgen.networks.utils`.
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

from medgen.networks.utils import read_checkpoint

logger = logging.getLogger("medgen.checkpoint")

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
        import torch.distributed as dist
        from ignite.engine import Events
        from ignite.handlers import Checkpoint, DiskSaver

        to_save = {**self.save_dict, "trainer": engine}
        distributed = dist.is_available() and dist.is_initialized()
        if distributed:
            # Ignite's DiskSaver (built below on rank 0 only) sets up Ignite's distributed model on first use,
            # which creates process groups: a collective. Done here on every rank, or rank 0 waits for ranks
            # already inside DDP's all-reduce (a deadlock when nothing else synced Ignite before).
            import ignite.distributed as idist

            idist.sync()
        save = self.save
        if save is None:
            save = not (distributed and dist.get_rank() > 0)
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
        ckpt = read_checkpoint(path)
        max_epochs = engine.state.max_epochs
        Checkpoint.load_objects(to_load={**self.save_dict, "trainer": engine}, checkpoint=ckpt)
        if max_epochs is not None:
            engine.state.max_epochs = max(max_epochs, engine.state.epoch)  # resume may extend a finished run
        logger.info("resumed from %s at epoch %s of %s", path, engine.state.epoch, engine.state.max_epochs)
