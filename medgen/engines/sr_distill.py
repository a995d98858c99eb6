"""Knowledge distillation for SR: a frozen teacher guides a width/depth-compressed student.

The student minimises ``alpha * pixel(student, HR) + beta * pixel(student, teacher) + gamma * feature``, where
the feature term matches student features (through trainable 1x1 adapters) to teacher features. It runs on
MONAI's :class:`~monai.engines.SupervisedTrainer` through its ``iteration_update`` hook
(:class:`DistillationStep`), so handlers, checkpointing and ``--tracking`` work as for plain training.
The optimizer must hold the student's *and* the adapters' parameters (:func:`create_distillation_trainer`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.engines import SupervisedTrainer
from monai.utils.enums import CommonKeys as Keys
from torch import nn

from medgen.engines.sr import SRPrepareBatch

# Width/depth compression presets: the teacher, its student, and the loss weights used in the bundle.
DISTILLATION_PRESETS: dict[str, dict[str, Any]] = {
    "rdn_to_rdn_half": {"teacher": "rdn", "student": "rdn_half", "alpha": 1.0, "beta": 1.0, "gamma": 0.1},
    "rdn_to_swift_srgan_tiny": {
        "teacher": "rdn",
        "student": "swift_srgan_tiny",
        "alpha": 1.0,
        "beta": 1.0,
        "gamma": 0.1,
    },
    "swift_srgan_to_tiny": {
        "teacher": "swift_srgan",
        "student": "swift_srgan_tiny",
        "alpha": 1.0,
        "beta": 1.0,
        "gamma": 0.1,
    },
}


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``, always including the last (deepest) one."""
    return sorted({int(round(i)) for i in np.linspace(n - 1, 0, k)[::-1]}) if k < n else list(range(n))


FEATURE_NORMS = ("channel", "relative")


class FeatureAdapters(nn.Module):
    """Trainable 1x1 convs mapping selected student features onto the teacher's channel count.

    Pairs are chosen by relative depth (``num_pairs`` evenly spread over each network's feature list) and
    found by one probe forward pass. A student feature of another spatial size (e.g. an upsample-first
    student against an LR-space teacher) is resized bilinearly to the teacher's size.

    Args:
        student, teacher: SR networks with ``forward_features``.
        num_pairs: how many feature pairs to match.
        probe_size: LR size of the probe input.
        normalize: ``"channel"`` (default): each teacher channel is standardised over batch and space
            (zero mean, unit std) and the adapted student feature is matched to it by MSE, so every channel
            counts alike, whatever its scale, and the term is about 1 for an uninformed student (0 = perfect);
            ``"relative"``: ``||A(s) - t||^2 / ||t||^2`` on the raw features (dominated by the
            largest-magnitude channels).
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        num_pairs: int = 2,
        probe_size: int = 16,
        normalize: str = "channel",
    ) -> None:
        super().__init__()
        if normalize not in FEATURE_NORMS:
            raise ValueError(f"FeatureAdapters: normalize={normalize!r}; use one of {FEATURE_NORMS}.")
        self.normalize = normalize
        probe = torch.zeros(1, getattr(student, "in_channels", 1), probe_size, probe_size)
        device = next(student.parameters()).device
        with torch.no_grad():
            s_feats = student.forward_features(probe.to(device))
            t_feats = teacher.forward_features(probe.to(next(teacher.parameters()).device))
        k = max(1, min(num_pairs, len(s_feats), len(t_feats)))
        self.student_idx, self.teacher_idx = _spread(len(s_feats), k), _spread(len(t_feats), k)
        self.adapters = nn.ModuleList(
            nn.Conv2d(s_feats[i].shape[1], t_feats[j].shape[1], 1)
            for i, j in zip(self.student_idx, self.teacher_idx)
        ).to(device)

    def forward(self, student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor]) -> torch.Tensor:
        """Mean over pairs of the feature-matching loss chosen by ``normalize``."""
        total = 0.0
        for adapter, i, j in zip(self.adapters, self.student_idx, self.teacher_idx):
            s, t = adapter(student_feats[i]), teacher_feats[j].detach()
            if s.shape[-2:] != t.shape[-2:]:
                s = F.interpolate(s, size=t.shape[-2:], mode="bilinear", align_corners=False)
            if self.normalize == "channel":
                mean = t.mean(dim=(0, 2, 3), keepdim=True)
                std = t.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
                total = total + F.mse_loss(s, (t - mean) / (std + 1e-6))
            else:
                total = total + F.mse_loss(s, t) / (t.pow(2).mean() + 1e-8)
        return total / len(self.adapters)


class DistillationStep:
    """``iteration_update`` for :class:`~monai.engines.SupervisedTrainer`: one distillation step.

    ``engine.network`` is the student and ``engine.optimizer`` updates the student and the adapters; the
    teacher is frozen (``requires_grad=False``, eval mode, no graph). The returned dict has the usual
    ``image``/``label``/``pred``/``loss`` keys plus the three loss terms, for handlers.
    """

    def __init__(
        self,
        teacher: nn.Module,
        adapters: FeatureAdapters | None = None,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.1,
        pixel_loss: nn.Module | None = None,
    ) -> None:
        from medgen.losses.sr import PixelLoss

        if gamma and adapters is None:
            raise ValueError(
                "DistillationStep: gamma > 0 (feature matching) needs adapters=FeatureAdapters(...)."
            )
        self.teacher = teacher.requires_grad_(False).eval()
        self.adapters = adapters
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.pixel = pixel_loss or PixelLoss("l1")

    def __call__(self, engine: SupervisedTrainer, batchdata: dict[str, torch.Tensor]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("DistillationStep: must provide batch data for the current iteration.")
        lr, hr = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        student = engine.network
        student.train()
        self.teacher.eval()  # stays frozen even if a handler toggles train mode on modules
        with torch.no_grad():
            t_out, t_feats = _with_features(self.teacher, lr)
        s_out, s_feats = _with_features(student, lr)
        hr_term = self.pixel(s_out, hr)
        teacher_term = self.pixel(s_out, t_out)
        feat_term = (
            self.adapters(s_feats, t_feats) if (self.gamma and self.adapters is not None) else hr_term * 0
        )
        loss = self.alpha * hr_term + self.beta * teacher_term + self.gamma * feat_term
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        loss.backward()
        engine.optimizer.step()
        return {
            Keys.IMAGE: lr,
            Keys.LABEL: hr,
            Keys.PRED: s_out.detach(),
            Keys.LOSS: loss.detach(),
            "loss_hr": hr_term.item(),
            "loss_teacher": teacher_term.item(),
            "loss_feature": float(feat_term.detach()),
        }


LOSS_TERMS = (str(Keys.LOSS), "loss_hr", "loss_teacher", "loss_feature")


def distillation_loss_terms(output: Any) -> dict[str, float]:
    """``output_transform`` for MONAI ``StatsHandler`` / metric loggers on a distillation trainer.

    :class:`DistillationStep` returns one dict per iteration (or, after decollation, one per sample with the
    same values); MONAI's ``from_engine(["loss"], first=True)`` turns a dict into a tuple, which
    ``StatsHandler`` skips, so the distillation stage logged nothing. This returns the total loss and its
    three terms as floats, which ``StatsHandler`` logs as ``loss: ... loss_hr: ...``.
    """
    if isinstance(output, (list, tuple)):
        if not output:
            raise ValueError("distillation_loss_terms: empty engine output (no iteration has run).")
        output = output[0]
    missing = [k for k in LOSS_TERMS if k not in output]
    if missing:
        raise KeyError(
            f"distillation_loss_terms: engine output has no {missing} (keys: {sorted(map(str, output))}); "
            "use it only on a trainer whose iteration_update is DistillationStep."
        )
    return {k: float(torch.as_tensor(output[k]).detach().float().mean()) for k in LOSS_TERMS}


def _with_features(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    module = getattr(net, "module", net)  # DistributedDataParallel wraps the network
    if hasattr(module, "forward_with_features"):
        return module.forward_with_features(x)
    return module(x), module.forward_features(x)


def create_distillation_trainer(
    student: nn.Module,
    teacher: nn.Module,
    train_data_loader: Any,
    max_epochs: int = 1,
    lr: float = 2e-4,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 0.1,
    num_pairs: int = 2,
    device: str | torch.device = "cpu",
    epoch_length: int | None = None,
    train_handlers: list | None = None,
    **kwargs: Any,
) -> SupervisedTrainer:
    """A ``SupervisedTrainer`` running :class:`DistillationStep`; Adam over student + adapter parameters."""
    student, teacher = student.to(device), teacher.to(device)
    adapters = FeatureAdapters(student, teacher, num_pairs=num_pairs) if gamma else None
    params = list(student.parameters()) + (list(adapters.parameters()) if adapters is not None else [])
    trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=max_epochs,
        epoch_length=epoch_length,
        train_data_loader=train_data_loader,
        network=student,
        optimizer=torch.optim.Adam(params, lr=lr),
        loss_function=nn.L1Loss(),  # unused by DistillationStep; SupervisedTrainer requires one
        prepare_batch=SRPrepareBatch(),
        iteration_update=DistillationStep(teacher, adapters, alpha, beta, gamma),
        train_handlers=list(train_handlers or []),
        **kwargs,
    )
    trainer.adapters = adapters  # kept so checkpoints / tests can reach them
    return trainer
