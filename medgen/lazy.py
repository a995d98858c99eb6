"""PEP 562 lazy exports, so that ``import medgen.<package>`` stays free of heavy dependencies until a name is used.

A package either names where each export lives (``names={"render_phantom": "medgen.data.phantom.render"}``) or
lists sub-packages to search in order (``search=("medgen.transforms.io", ...)``; each sub-package's ``__all__`` is
then the one list of its names). The imported value is cached in the package's globals.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, names: dict[str, str] | None = None, search: tuple[str, ...] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: assign both at module level."""
    names = dict(names or {})

    def _all() -> list[str]:
        found = set(names)
        for sub in search:
            found.update(getattr(importlib.import_module(sub), "__all__", ()))
        return sorted(found)

    def __getattr__(name: str) -> Any:
        if name == "__all__":
            return _all()
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
        else:
            subs = (importlib.import_module(s) for s in search if not name.startswith("_"))
            mod = next((m for m in subs if name in getattr(m, "__all__", ())), None)
            if mod is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            value = getattr(mod, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *_all()})

    return __getattr__, __dir__
