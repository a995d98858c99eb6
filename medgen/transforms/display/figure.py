"""Moved to :mod:`medgen.visualize.presets` (a figure renders the phantom, which sits above transforms).

Kept importable until ``tests/transforms/test_display.py`` and ``docs/transforms.md`` name the new module
(issue 12); ``tests/test_layers.py`` lists this file in its allow-list until then.
"""

from __future__ import annotations

from medgen.visualize.presets import draw_presets_figure, main, make_figure

__all__ = ["draw_presets_figure", "main", "make_figure"]

if __name__ == "__main__":
    main()
