"""Plugin discovery through real entry points: the installed example plugin and deliberately broken ones."""

from __future__ import annotations

import importlib.metadata
import os
import textwrap
from pathlib import Path

import pytest

from medgen.registry import Registry


def _fake_distribution(root: Path, dist: str, entry_value: str, files: dict[str, str]) -> Path:
    """Write an importable package plus a ``.dist-info`` with a ``medgen.plugins`` entry point into ``root``."""
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[medgen.plugins]\n{dist} = {entry_value}\n")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def broken_plugins(tmp_path, monkeypatch):
    _fake_distribution(
        tmp_path,
        "medgen-plugin-broken",
        "broken_plugin_mod:MANIFEST",
        {"broken_plugin_mod/__init__.py": "raise ImportError('this plugin is broken on purpose')\n"},
    )
    _fake_distribution(
        tmp_path,
        "medgen-plugin-future",
        "future_plugin_mod:medgen.yaml",
        {
            "future_plugin_mod/__init__.py": "",
            "future_plugin_mod/medgen.yaml": "name: medgen-plugin-future\napi_version: 7\ncomponents: {}\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return tmp_path


def test_example_plugin_is_installed_and_usable():
    reg = Registry()
    assert reg.plugins == {} and "medgen-plugin-example.espcn" in reg.names("network")
    record = reg.plugins["medgen-plugin-example"]
    assert record.ok and "bundle:espcn_sr_example" in record.bundles
    import torch

    net = reg.create("network", "medgen-plugin-example.espcn", scale=2)
    assert net(torch.rand(1, 1, 8, 8)).shape == (1, 1, 16, 16)


def test_broken_plugins_are_listed_and_skipped(broken_plugins):
    reg = Registry()
    names = reg.names("network")
    assert "srcnn" in names and "medgen-plugin-example.espcn" in names  # everything else still works
    assert "this plugin is broken on purpose" in reg.plugins["medgen-plugin-broken"].error
    assert "api_version 7" in reg.plugins["medgen-plugin-future"].error


def test_disable_plugins_keeps_builtins(monkeypatch):
    monkeypatch.setenv("MEDGEN_DISABLE_PLUGINS", "1")
    reg = Registry()
    assert "srcnn" in reg.names("network")
    assert "medgen-plugin-example.espcn" not in reg.names("network")
    assert "medgen-plugin-example" not in reg.plugins


def test_cli_lists_broken_plugin_without_failing(broken_plugins, cli):
    env = {"PYTHONPATH": os.pathsep.join([str(broken_plugins), os.environ.get("PYTHONPATH", "")])}
    out = cli("plugins", env=env)
    assert out.returncode == 0, out.stderr
    assert "medgen-plugin-broken 0.1" not in out.stdout  # version unknown: the manifest never loaded
    assert "[BROKEN]" in out.stdout and "broken on purpose" in out.stdout
    assert "medgen-plugin-example 0.1.0 [ok]" in out.stdout
    listing = cli("list", env=env)
    assert listing.returncode == 0 and "espcn_sr_example" in listing.stdout and "BROKEN" in listing.stdout


def test_example_plugin_distribution_metadata():
    eps = [
        ep
        for ep in importlib.metadata.entry_points(group="medgen.plugins")
        if ep.name == "medgen-plugin-example"
    ]
    assert eps and eps[0].value == "medgen_plugin_example:medgen.yaml"
