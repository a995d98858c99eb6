"""`medgen demo` wiring on a tiny pipeline config: phantom set, pipeline report, and where-to-look lines."""

from __future__ import annotations

from conftest import tiny_pipeline

from medgen.demo import run_demo

TINY = tiny_pipeline()


def test_demo_writes_phantoms_report_and_says_where(tmp_path, capsys):
    index = run_demo(tmp_path / "demo", n=3, size=128, pipeline_overrides=TINY)
    out = capsys.readouterr().out
    assert (tmp_path / "demo" / "phantoms" / "labels.csv").is_file()
    assert len(list((tmp_path / "demo" / "phantoms" / "images").glob("*.png"))) == 3
    report = tmp_path / "demo" / "attention_sr" / "report.md"
    assert report.is_file() and "all-negative predictor" in report.read_text()
    assert f"report:  {report.resolve()}" in out and "figures:" in out
    assert index.is_file()
