"""Reports from run directories: tables, figures, rank-correlation analysis, paired compare, HTML.

`heatmap_png` and `render_html` are imported lazily so that `import cifarb.report` stays cheap
(matplotlib loads only when a figure is drawn).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Figure", "Section", "heatmap_png", "render_html", "table_html"]


def __getattr__(name: str) -> Any:
    if name == "heatmap_png":
        from cifarb.report.figures import heatmap_png

        return heatmap_png
    if name in ("render_html", "Section", "Figure", "table_html"):
        from cifarb.report import html

        return getattr(html, name)
    raise AttributeError(f"module 'cifarb.report' has no attribute {name!r}")
