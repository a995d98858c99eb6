"""MLflow tracking: the embedded sqlite store and a real local `mlflow server`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medgen.cli import main
from medgen.handlers.tracking import run_params, scrub_patient_tags


def _runs(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("medgen")
    return client, client.search_runs([exp.experiment_id])


def _check_run(client, run):
    assert "val_mean_dice" in run.data.metrics
    assert client.get_metric_history(run.info.run_id, "train_loss")
    params = run.data.params
    assert params["bundle"] == "minimal_bundle" and params["max_epochs"] == "2"
    assert params["device_cpu"].strip() and int(params["device_torch_threads"]) >= 1
    import torch

    want_gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    assert params["device_gpu"].split(", ")[0] == want_gpu  # the machine the run used, stated
    assert not any("patient" in k.lower() for k in params)
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert any(a.startswith("config_") for a in artifacts), artifacts  # the executed config
    assert "validation_samples.png" in artifacts, artifacts  # <output_dir>/figures


def test_params_never_hold_patient_tags():
    params = run_params({"PatientName": "DOE^JOHN", "PatientID": "123", "lr": 0.1})
    assert "PatientName" not in params and "PatientID" not in params and params["lr"] == 0.1
    assert scrub_patient_tags({"x#patientname": 1}) == {}


def test_tracking_writes_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    argv = ["run", "minimal_bundle", "--config", "smoke", "--tracking", "--bundle-root", str(tmp_path)]
    assert main(argv) == 0
    db = tmp_path / "runs" / "mlruns.db"
    assert db.is_file()
    client, runs = _runs(f"sqlite:///{db}")
    assert len(runs) >= 1
    _check_run(client, runs[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tracking_to_local_mlflow_server(tmp_path, cli):
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server_artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None:
                    pytest.fail("mlflow server exited early")
                time.sleep(1)
        out = cli(
            "run",
            "minimal_bundle",
            "--config",
            "smoke",
            "--tracking",
            "--bundle-root",
            str(tmp_path / "b"),
            env={"MLFLOW_TRACKING_URI": uri},
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert not (Path(tmp_path / "b" / "runs" / "mlruns.db")).exists()  # the env var won over the default
        client, runs = _runs(uri)
        assert len(runs) == 1
        _check_run(client, runs[0])
    finally:
        server.terminate()
        server.wait(timeout=30)
