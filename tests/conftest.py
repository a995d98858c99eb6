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
