"""benchmarks/text_ldm_sampling.py runs at smoke sizes and prints its JSON line (no timing assertion)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "text_ldm_sampling.py"


def _load():
    spec = importlib.util.spec_from_file_location("text_ldm_sampling_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_text_ldm_sampling_benchmark_smoke(capsys):
    threads = torch.get_num_threads()
    try:
        returned = _load().main(
            ["--config", "smoke", "--n-images", "2", "--steps", "2", "--device", "cpu", "--threads", "1"]
        )
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    line = next(ln for ln in reversed(out.splitlines()) if ln.startswith("{"))
    result = json.loads(line)
    assert result == json.loads(json.dumps(returned))
    for key in (
        "machine",
        "torch_threads",
        "config",
        "rows",
        "sequential_images_per_s",
        "batched_images_per_s",
        "speedup",
        "s_per_image",
        "max_abs_diff",
        "peak_mem_method",
    ):
        assert key in result, key
    assert result["config"] == "smoke" and result["torch_threads"] == 1
    assert [(r["mode"], r["steps"]) for r in result["rows"]] == [("sequential", 2), ("batched", 2)]
    assert result["batched_images_per_s"] > 0 and result["sequential_images_per_s"] > 0
    assert all(r["images"] == 2 and r["peak_mem_mib"] >= 0 for r in result["rows"])
    assert result["max_abs_diff"] < 1e-3  # per-image seeds: batched == sequential to float tolerance
    assert "random weights" in out and "speed-up" in out
