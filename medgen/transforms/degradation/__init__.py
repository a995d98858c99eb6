"""Super-resolution pairs (HR -> LR with blur and Poisson-Gaussian noise) and interpolation baselines."""

from medgen.transforms.degradation.array import (
    DOWNSAMPLE_METHODS,
    UPSAMPLE_METHODS,
    PairedDegradation,
    check_divisible,
    downsample,
    resize,
    upsample,
)
from medgen.transforms.degradation.dictionary import PairedDegradationd

__all__ = [
    "DOWNSAMPLE_METHODS",
    "UPSAMPLE_METHODS",
    "PairedDegradation",
    "PairedDegradationd",
    "check_divisible",
    "downsample",
    "resize",
    "upsample",
]
