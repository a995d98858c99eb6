"""Registry behaviour: registration, duplicates, closest-match errors, lazy plugin imports."""

from __future__ import annotations

import sys

import pytest

import medgen
from medgen.registry import REGISTRY, Registry, RegistryError


def _fresh() -> Registry:
    reg = Registry()
    reg._loaded = True  # no plugin autoload: these tests feed manifests by hand
    return reg


def test_register_decorator_and_create():
    reg = _fresh()

    @reg.register("network", "tiny")
    class Tiny:
        def __init__(self, width=3):
            self.width = width

    assert reg.create("network", "tiny", width=5).width == 5
    assert reg.names("network") == ["tiny"]


def test_duplicate_name_names_both_owners():
    reg = _fresh()
    reg.add("network", "net", object(), owner="first-plugin")
    with pytest.raises(RegistryError) as err:
        reg.add("network", "net", object(), owner="second-plugin")
    assert "first-plugin" in str(err.value) and "second-plugin" in str(err.value)


def test_unknown_name_lists_closest():
    reg = _fresh()
    for name in ("swift_srgan", "swift_srgan_tiny", "rdn"):
        reg.add("network", name, object(), owner="medgen")
    with pytest.raises(RegistryError, match="Did you mean 'swift_srgan'"):
        reg.get("network", "swift_sргan".replace("р", "r").replace("г", "g") + "x")


def test_unknown_kind():
    with pytest.raises(RegistryError, match="unknown component kind 'netwrk'.*'network'"):
        _fresh().names("netwrk")


def test_manifest_is_lazy_and_namespaced(tmp_path, monkeypatch):
    pkg = tmp_path / "lazyplug_mod"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(
        "import torch\nclass Net(torch.nn.Linear):\n    def __init__(self):\n        super().__init__(2, 2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = _fresh()
    record = reg.load_manifest(
        {
            "name": "lazyplug",
            "version": "1",
            "api_version": 1,
            "components": {"network.net": "lazyplug_mod.nets:Net"},
        }
    )
    assert record.ok and reg.names("network") == ["lazyplug.net"]
    assert "lazyplug_mod.nets" not in sys.modules  # not imported until used
    assert reg.create("network", "lazyplug.net").in_features == 2
    assert "lazyplug_mod.nets" in sys.modules


def test_incompatible_api_version_is_reported_and_skipped():
    reg = _fresh()
    record = reg.load_manifest({"name": "future", "api_version": 99, "components": {"network.x": "a:b"}})
    assert not record.ok and "api_version 99" in record.error
    assert reg.names("network") == []


def test_manifest_failure_registers_nothing():
    reg = _fresh()
    reg.add("network", "clash.x", object(), owner="medgen")
    record = reg.load_manifest(
        {"name": "clash", "api_version": 1, "components": {"network.ok": "a:b", "network.x": "c:d"}}
    )
    assert not record.ok and "registered twice" in record.error
    assert "clash.ok" not in reg.names("network")


def test_broken_import_error_names_plugin_and_target():
    reg = _fresh()
    reg.load_manifest(
        {"name": "gone", "api_version": 1, "components": {"network.x": "no_such_module_xyz:Net"}}
    )
    with pytest.raises(RegistryError, match=r"'gone'.*no_such_module_xyz:Net"):
        reg.get("network", "gone.x")


def test_create_network_front_door_builds_builtin():
    names = REGISTRY.names("network")
    assert "srcnn" in names
    net = medgen.create_network("srcnn", scale=2)
    assert sum(p.numel() for p in net.parameters()) > 0
