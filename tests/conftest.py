"""Shared test set-up: test bundles on MEDGEN_BUNDLE_PATH, quiet MLflow, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_BUNDLES = REPO / "tests" / "bundles"

os.environ["MEDGEN_BUNDLE_PATH"] = os.pathsep.join(
    p for p in (str(TEST_BUNDLES), os.environ.get("MEDGEN_BUNDLE_PATH", "")) if p
)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # pytest-xdist workers share 2 cores


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 600):
    """Run ``python -m medgen ARGS`` in a subprocess; returns the CompletedProcess (text)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "medgen", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=str(cwd or REPO),
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


def tiny_pipeline(**extra) -> dict:
    """Overrides of the attention-SR pipeline config small enough for a test (one tiny ViT, 24 phantom studies
    at 128 px, one epoch); ``extra`` keys replace top-level sections."""
    return {
        "data": {"n_images": 24, "size": 128, "scale": 2},
        "classifier": {
            "kwargs": {
                "img_size": 128,
                "patch_size": 16,
                "embed_dim": 32,
                "depth": 1,
                "num_heads": 2,
                "conv_stem": True,
                "head": "csra",
            },
            "epochs": 1,
            "retrain_epochs": 1,
            "batch_size": 8,
        },
        "regions": {"k": 2, "min_size": 16, "max_size": 16},
        "sr_eval": {"n_images": 2},
        "n_boot": 10,
        **extra,
    }
