"""medgen's own manifest and its ``@register`` decorators must agree, in both directions."""

from __future__ import annotations

import ast
from pathlib import Path

import medgen
from medgen.plugin import MANIFEST
from medgen.registry import REGISTRY
from medgen.registry.core import import_target

PACKAGE = Path(medgen.__file__).parent


def _decorated_components() -> dict[str, str]:
    """``{"kind.name": "module:qualname"}`` for every ``@register("kind", "name")`` in the package source."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                continue
            for deco in node.decorator_list:
                if (
                    isinstance(deco, ast.Call)
                    and getattr(deco.func, "id", getattr(deco.func, "attr", "")) == "register"
                    and len(deco.args) >= 1
                    and all(isinstance(a, ast.Constant) for a in deco.args)
                ):
                    kind = deco.args[0].value
                    name = deco.args[1].value if len(deco.args) > 1 else node.name
                    found[f"{kind}.{name}"] = f"{module}:{node.name}"
    return found


def test_every_decorated_component_is_in_the_manifest():
    decorated = _decorated_components()
    assert decorated, "the scan found no @register decorators"
    missing = {k: v for k, v in decorated.items() if MANIFEST["components"].get(k) != v}
    assert not missing, f"add these lines to medgen/plugin.py MANIFEST['components']: {missing}"


def test_every_manifest_entry_is_decorated_and_resolves_to_the_registered_object():
    decorated = _decorated_components()
    for key, target in MANIFEST["components"].items():
        assert decorated.get(key) == target, f"{key} -> {target} has no matching @register decorator"
        kind, _, name = key.partition(".")
        assert REGISTRY.get(kind, name) is import_target(target)
