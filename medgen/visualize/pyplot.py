"""matplotlib's pyplot on the non-interactive Agg backend, the one set-up every medgen figure uses."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the Agg backend selected (imported only when a figure is drawn).

    Agg writes files without a display, so figures render the same on a headless server, in CI and on a laptop.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
