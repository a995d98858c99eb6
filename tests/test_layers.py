"""Layers point down: a medgen module imports only from its own layer or the layers below it.

Two checks, both over every module under ``medgen/`` (docs/architecture.md explains the layers):

* source: ``ast`` finds every ``import medgen.X`` / ``from medgen.X import ...`` anywhere in a file, inside
  functions too (a function-local import that runs upward is still an upward import), and
  ``importlib.import_module("medgen.X")`` with a literal name;
* runtime: one fresh interpreter per layer imports each of its modules in turn and reports every module of a
  higher layer that appears in ``sys.modules`` (what a module-level import really pulls in).

A known exception goes in ``ALLOWED`` with its reason; an entry that is no longer needed fails the test too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "medgen"

# from the ground up; a module may import its own layer and any layer below
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("registry", ("medgen", "medgen.registry", "medgen.plugin", "medgen.lazy")),
    ("transforms", ("medgen.transforms",)),
    ("data", ("medgen.data",)),
    ("networks, losses, metrics", ("medgen.networks", "medgen.losses", "medgen.metrics")),
    ("handlers, visualize", ("medgen.handlers", "medgen.visualize")),
    ("engines, inferers", ("medgen.engines", "medgen.inferers")),
    ("bundle running, CLI, apps", ("medgen.bundle", "medgen.cli", "medgen.demo", "medgen.__main__")),
]

# (importing module, imported module or package) -> why it is allowed for now. Keep it minimal.
ALLOWED: dict[tuple[str, str], str] = {}


def layer_of(module: str) -> int:
    """Index in LAYERS of ``module`` (longest matching prefix); fails for a package LAYERS does not name."""
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and p.count(".") > depth:
                best, depth = i, p.count(".")
    if best is None or (best == 0 and module != "medgen" and depth == 0):
        raise AssertionError(f"{module}: no layer in tests/test_layers.py LAYERS; add its package there")
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> list[tuple[Path, str]]:
    return [(p, module_name(p)) for p in sorted(PACKAGE.rglob("*.py"))]


def _targets(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported medgen module) for every import in ``tree``, at any depth."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from medgen import engines` imports medgen.engines
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub) else base))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return [(line, t) for line, t in found if t == "medgen" or t.startswith("medgen.")]


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def upward_imports(source: str, module: str, is_package: bool = False, where: str = "") -> list[str]:
    """``file:line -> target`` for each import in ``source`` that points to a higher layer than ``module``."""
    own = layer_of(module)
    out = []
    for line, target in _targets(ast.parse(source), module, is_package):
        if layer_of(target) > own and not _allowed(module, target):
            out.append(
                f"{where or module}:{line} -> {target} ({LAYERS[layer_of(target)][0]} is above "
                f"{LAYERS[own][0]})"
            )
    return out


def _allowed(module: str, target: str) -> bool:
    return any(module == m and (target == t or target.startswith(t + ".")) for m, t in ALLOWED)


def test_every_module_has_a_layer():
    for _, name in all_modules():
        layer_of(name)


def test_no_upward_import_in_source():
    problems = []
    for path, name in all_modules():
        rel = path.relative_to(ROOT).as_posix()
        problems += upward_imports(path.read_text(), name, path.name == "__init__.py", where=rel)
    assert not problems, "upward imports (move the code down, or the import up):\n" + "\n".join(problems)


def test_allow_list_entries_are_still_needed():
    sources = {name: (path, path.read_text()) for path, name in all_modules()}
    for module, target in ALLOWED:
        path, text = sources[module]
        used = {t for _, t in _targets(ast.parse(text), module, path.name == "__init__.py")}
        assert any(u == target or u.startswith(target + ".") for u in used), (
            f"ALLOWED entry {module} -> {target} is no longer needed: remove it from tests/test_layers.py"
        )


def test_the_scanner_sees_function_local_upward_imports():
    source = "import medgen.registry\n\ndef f():\n    from medgen.engines import sr\n    from ..handlers import x\n"
    found = upward_imports(source, "medgen.networks.utils", where="utils.py")
    assert found[0].startswith("utils.py:4 -> medgen.engines") and found[1].startswith(
        "utils.py:5 -> medgen.handlers"
    )


_PROBE = r"""
import importlib, json, sys
modules, prefixes = json.loads(sys.argv[1]), json.loads(sys.argv[2])
def above(m):
    return any(m == p or m.startswith(p + ".") for p in prefixes)
seen, report, skipped = set(), [], {}
for name in modules:
    try:
        importlib.import_module(name)
    except ImportError as exc:  # an optional third-party package that is not installed
        if (exc.name or "").split(".")[0] == "medgen":
            raise
        skipped[name] = repr(exc)
    new = {m for m in sys.modules if above(m)} - seen
    report += [[name, m] for m in sorted(new)]
    seen |= new
print(json.dumps({"report": report, "skipped": skipped}))
"""


@pytest.mark.parametrize("layer", range(len(LAYERS) - 1), ids=[name for name, _ in LAYERS[:-1]])
def test_importing_a_layer_pulls_in_no_higher_layer(layer):
    modules = [n for _, n in all_modules() if layer_of(n) == layer and not n.endswith("__main__")]
    higher = [p for _, prefixes in LAYERS[layer + 1 :] for p in prefixes]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(modules), json.dumps(higher)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = [f"{m} -> {t}" for m, t in result["report"] if not _allowed(m, t)]
    assert not problems, (
        f"importing layer {LAYERS[layer][0]!r} loads higher layers (first importer -> module):\n"
        + "\n".join(problems)
    )
