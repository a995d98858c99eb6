"""The medgen command: listing, info, dry runs, and one-line errors for bad input."""

from __future__ import annotations

import pytest

from medgen.cli import main


def test_list_shows_bundles_and_example_plugin(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "minimal_bundle" in out and "espcn_sr_example" in out and "medgen-plugin-example" in out


def test_info(capsys):
    assert main(["info", "minimal_bundle"]) == 0
    out = capsys.readouterr().out
    assert "evaluate = train.yaml + evaluate.yaml" in out


def test_dry_run_prints_equivalent_monai_command(capsys):
    assert (
        main(["run", "minimal_bundle", "train", "--config", "smoke", "--set", "max_epochs=1", "--dry-run"])
        == 0
    )
    err = capsys.readouterr().err
    assert "python -m monai.bundle run --config_file" in err
    assert "configs/train.yaml','" in err and "smoke.yaml" in err and "--max_epochs 1" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "minimall_bundle"], "unknown bundle 'minimall_bundle'. Did you mean 'minimal_bundle'"),
        (["run", "minimal_bundle", "trian"], "no workflow 'trian'. Did you mean 'train'"),
        (["run", "minimal_bundle", "--set", "max_epochs"], "malformed --set 'max_epochs'"),
        (
            ["run", "minimal_bundle", "--set", "dataset_dir=/no/such/folder"],
            "dataset_dir '/no/such/folder' does not exist",
        ),
        (["run", "minimal_bundle", "--config", "smok"], "config 'smok' is neither a file nor a config"),
        (["info", "nope"], "unknown bundle 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_config_referencing_missing_plugin(tmp_path, capsys):
    overlay = tmp_path / "needs_plugin.yaml"
    overlay.write_text("network_def:\n  _target_: medgen_plugin_missing.nets.Net\n")
    assert main(["run", "minimal_bundle", "--config", str(overlay), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "'medgen_plugin_missing' is not installed" in err and "install the plugin" in err


def test_unknown_component_from_config_is_one_line(tmp_path, cli):
    overlay = tmp_path / "bad_net.yaml"
    overlay.write_text("network_def:\n  _target_: medgen.create_network\n  name: no_such_net\n")
    out = cli(
        "run", "minimal_bundle", "--config", "smoke", "--config", str(overlay), "--bundle-root", str(tmp_path)
    )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert "unknown network 'no_such_net'" in last and "Traceback" not in out.stderr
