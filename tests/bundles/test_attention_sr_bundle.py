"""The cxr_attention_sr_classifier bundle's pipeline workflow runs from its configs (smoke sizes)."""

from medgen.cli import main


def test_pipeline_workflow_smoke(tmp_path):
    root = tmp_path / "root"
    code = main(
        [
            "run",
            "cxr_attention_sr_classifier",
            "pipeline",
            "--config",
            "pipeline_smoke",
            "--bundle-root",
            str(root),
        ]
    )
    assert code == 0
    out = root / "runs" / "pipeline"
    assert (out / "report.md").is_file() and (out / "report.json").is_file()
    assert (out / "figures" / "attention_overlay.png").is_file()
