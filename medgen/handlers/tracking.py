"""MLflow tracking helpers used by ``configs/tracking.yaml``.

MONAI's ``MLFlowHandler`` does the logging; this module supplies what it is given: run parameters with the
device (CPU model, GPU name), the figures folder as artifacts, and a guard that no DICOM patient tag is ever
logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

# DICOM attributes that identify a patient; never logged as params, tags or artifacts.
PATIENT_TAG_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientAddress",
    "OtherPatientIDs",
    "AccessionNumber",
    "InstitutionName",
    "ReferringPhysicianName",
    "StudyID",
)


def describe_device() -> dict[str, str]:
    """CPU model, thread count and GPU name(s), for run records and benchmark output."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus: Sequence[str] = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "device_cpu": cpu,
        "device_torch_threads": str(torch.get_num_threads()),
        "device_gpu": ", ".join(gpus) if gpus else "none",
        "torch_version": torch.__version__,
    }


def scrub_patient_tags(params: Mapping[str, Any]) -> dict[str, Any]:
    """Drop any key that names a DICOM patient attribute (case-insensitive)."""
    banned = {k.lower() for k in PATIENT_TAG_KEYWORDS}
    return {k: v for k, v in params.items() if k.split("#")[-1].lower() not in banned}


def run_params(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parameters for ``MLFlowHandler(experiment_param=...)``: the given params plus the device."""
    out = dict(params or {})
    out.update(describe_device())
    out["mlflow_tracking_uri_from_env"] = str(bool(os.environ.get("MLFLOW_TRACKING_URI")))
    return scrub_patient_tags(out)


def artifact_paths(*paths: str | None) -> list[str]:
    """Existing-or-future artifact paths (files or folders such as ``<output_dir>/figures``) for MLFlowHandler."""
    return [str(p) for p in paths if p]
