"""One test module for every bundle the registry discovers: no per-bundle test code.

For each bundle: metadata against the shipped schema, network in/out, TorchScript export and reload
(``medgen verify``), a smoke run of its default workflow, inference on a small input, and a two-process
``torchrun`` smoke run of ``multi_gpu_train.yaml`` on CPU (gloo).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from medgen.cli import main
from medgen.registry.bundles import iter_bundles

BUNDLES = sorted(b.name for b in iter_bundles())


def _bundle(name):
    return next(b for b in iter_bundles() if b.name == name)


def test_harness_finds_bundles():
    assert "minimal_bundle" in BUNDLES and "espcn_sr_example" in BUNDLES


@pytest.fixture(scope="module")
def trained_roots(tmp_path_factory):
    return {}


def _smoke_train(name, trained_roots, tmp_path_factory):
    if name not in trained_roots:
        root = tmp_path_factory.mktemp(f"{name}_root")
        assert main(["run", name, "--config", "smoke", "--bundle-root", str(root)]) == 0
        trained_roots[name] = root
    return trained_roots[name]


@pytest.mark.parametrize("name", BUNDLES)
def test_smoke_train_then_inference_then_verify(name, trained_roots, tmp_path_factory, capsys):
    bundle = _bundle(name)
    root = _smoke_train(name, trained_roots, tmp_path_factory)
    # one model file (MONAI Label reads models/model.pt), or the files a multi-network bundle names in metadata
    networks = bundle.metadata.get("medgen_verify_networks") or {"": "models/model.pt"}
    for weights in networks.values():
        assert (root / weights).is_file(), f"training must write {weights}"
    assert "inference" in bundle.workflows, "every bundle needs an inference workflow"
    started = time.time()
    assert main(["run", name, "inference", "--config", "smoke", "--bundle-root", str(root)]) == 0
    # the zoo convention: predictions under <output_dir>/inference, written by this run (the phantom/synthetic
    # inputs an inference config writes first live in inference_inputs/ and do not count)
    out_dir = root / "runs" / "inference"
    outputs = (
        [p for p in out_dir.rglob("*") if p.is_file() and p.stat().st_mtime >= started - 1]
        if out_dir.is_dir()
        else []
    )
    inputs = [p for p in (root / "runs" / "inference_inputs").glob("*") if p.is_file()]
    assert not inputs or len(outputs) >= len(inputs), (outputs, inputs)
    assert outputs, f"inference wrote nothing under {out_dir}"
    capsys.readouterr()
    assert main(["verify", name, "--out", str(root / "export"), "--bundle-root", str(root)]) == 0
    report = capsys.readouterr().out
    assert '"torchscript_max_abs_diff"' in report
    for net_id, weights in networks.items():
        assert '"weights": "' + str(root / weights) in report
        assert (root / "export" / f"{net_id or 'model'}.ts").is_file()


@pytest.mark.parametrize("name", BUNDLES)
def test_multi_gpu_overlay_with_torchrun_on_cpu(name, tmp_path):
    bundle = _bundle(name)
    if not (bundle.configs / "multi_gpu_train.yaml").is_file():
        pytest.fail(f"bundle {name} has no configs/multi_gpu_train.yaml (required by docs/bundles.md)")
    files = [str(bundle.configs / f) for f in bundle.workflows[bundle.default_workflow]]
    files += [str(bundle.configs / "multi_gpu_train.yaml"), str(bundle.configs / "smoke.yaml")]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        repr(files).replace(" ", ""),
        "--meta_file",
        str(bundle.configs / "metadata.json"),
        "--bundle_root",
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    ckpts = list((tmp_path).rglob("checkpoint_epoch=*.pt"))
    assert ckpts, "rank 0 must write per-epoch checkpoints"
