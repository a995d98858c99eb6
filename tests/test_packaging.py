"""The wheel carries the built-in bundles and shared configs: build it, install it into a scratch venv, use it
from outside the repository (no editable path, no checkout on sys.path)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _uv() -> list[str]:
    if shutil.which("uv"):
        return ["uv"]
    for python in ("python3", sys.executable):
        if subprocess.run([python, "-m", "uv", "--version"], capture_output=True).returncode == 0:
            return [python, "-m", "uv"]
    pytest.skip("uv is not installed (make install puts it beside python3); cannot build the wheel")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    uv = _uv()
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([*uv, "build", "--wheel", "-q", "--out-dir", str(tmp / "dist"), str(REPO)], check=True)
    (wheel,) = (tmp / "dist").glob("medgen-*.whl")
    venv = tmp / "venv"
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [*uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(wheel)], check=True
    )
    return wheel, venv


def _medgen(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MEDGEN_DISABLE_PLUGINS"] = "1"  # only what the wheel itself carries
    return subprocess.run(
        [str(venv / "bin" / "medgen"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_wheel_holds_bundles_and_configs(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for bundle in ("cxr_sr_distillation", "cxr_attention_sr_classifier"):
        assert f"medgen/bundles/{bundle}/configs/metadata.json" in names
        assert f"medgen/bundles/{bundle}/configs/train.yaml" in names or any(
            n.startswith(f"medgen/bundles/{bundle}/configs/train") for n in names
        )
    assert "medgen/configs/tracking.yaml" in names
    assert "medgen/registry/schema/meta_schema.json" in names
    assert not any(n.endswith(".pt") for n in names)


def test_installed_wheel_lists_and_verifies_outside_the_repo(installed, tmp_path):
    _, venv = installed
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import medgen.plugin as p; print(p.BUNDLES_DIR)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the wheel's copy, not the checkout
    out = _medgen(venv, tmp_path, "list")
    assert out.returncode == 0, out.stderr
    assert "cxr_sr_distillation" in out.stdout and "cxr_attention_sr_classifier" in out.stdout
    result = _medgen(
        venv,
        tmp_path,
        "verify",
        "cxr_sr_distillation",
        "--out",
        str(tmp_path / "verify"),
        "--bundle-root",
        str(tmp_path / "root"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report, report
