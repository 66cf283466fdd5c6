"""One self-contained HTML page (inline CSS, figures as base64 PNG, no scripts, no external URLs)."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Kept small and inline so the page opens offline and from a file:// URL with nothing to fetch.
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
nav ul { columns: 2; font-size: .9em; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: .85em; }
.note { color: #555; font-size: .9em; }
.scroll { overflow-x: auto; }  /* wide tables scroll inside the page, not the page itself */
.warn { color: #8a4b00; background: #fff6e5; padding: .4em .6em; border-left: 3px solid #e0a030; }
"""


@dataclass
class Figure:
    """A PNG image (bytes) with a caption, embedded inline as base64."""

    png: bytes
    caption: str = ""
    alt: str = ""


@dataclass
class Section:
    """One titled part of a page.

    `paragraphs` are plain text (escaped), `html` is a trusted fragment produced by our own code
    (e.g. `table_html`), `figures` are PNG images, `warnings` are plain-text notes shown highlighted.
    """

    title: str
    paragraphs: list[str] = field(default_factory=list)
    html: str = ""
    figures: list[Figure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    preformatted: str = ""


SectionLike = Section | Mapping[str, Any]


def _as_figure(item: Figure | bytes | tuple[bytes, str] | Mapping[str, Any]) -> Figure:
    if isinstance(item, Figure):
        return item
    if isinstance(item, bytes | bytearray):
        return Figure(bytes(item))
    if isinstance(item, tuple):
        return Figure(bytes(item[0]), *(str(x) for x in item[1:]))
    if isinstance(item, Mapping):
        return Figure(bytes(item["png"]), str(item.get("caption", "")), str(item.get("alt", "")))
    raise TypeError(f"a figure must be PNG bytes, (bytes, caption) or Figure, got {type(item).__name__}")


def _as_section(item: SectionLike) -> Section:
    if isinstance(item, Section):
        return item
    if isinstance(item, Mapping):
        unknown = set(item) - {"title", "paragraphs", "text", "html", "figures", "warnings", "preformatted"}
        if unknown:
            raise ValueError(f"unknown section keys {sorted(unknown)}")
        paragraphs = list(item.get("paragraphs", []))
        if item.get("text"):
            paragraphs.insert(0, str(item["text"]))
        return Section(
            title=str(item["title"]),
            paragraphs=paragraphs,
            html=str(item.get("html", "")),
            figures=[_as_figure(f) for f in item.get("figures", [])],
            warnings=list(item.get("warnings", [])),
            preformatted=str(item.get("preformatted", "")),
        )
    raise TypeError(f"a section must be Section or a mapping, got {type(item).__name__}")


def _figure_html(fig: Figure) -> str:
    if not fig.png.startswith(PNG_SIGNATURE):
        raise ValueError(f"figure {fig.caption!r} is not PNG data")
    data = base64.b64encode(fig.png).decode("ascii")
    alt = html.escape(fig.alt or fig.caption or "figure", quote=True)
    cap = f"<figcaption>{html.escape(fig.caption)}</figcaption>" if fig.caption else ""
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{cap}</figure>'


def table_html(header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    """An HTML table from plain values (escaped); None is shown as an em dash."""
    out = ['<div class="scroll"><table>']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = ("—" if v is None else str(v) for v in row)
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</table></div>")
    return "\n".join(out)


def _anchor(i: int) -> str:
    return f"s{i}"


def render_html(title: str, sections: Sequence[SectionLike], subtitle: str = "") -> str:
    """A complete, self-contained HTML document: inline CSS, inline PNGs, nothing fetched at view time."""
    secs = [_as_section(s) for s in sections]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="note">{html.escape(subtitle)}</p>')
    if len(secs) > 2:
        items = "".join(f'<li><a href="#{_anchor(i)}">{html.escape(s.title)}</a></li>' for i, s in enumerate(secs))
        parts.append(f"<nav><ul>{items}</ul></nav>")
    for i, s in enumerate(secs):
        parts.append(f'<section id="{_anchor(i)}">')
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts.extend(f'<p class="warn">{html.escape(w)}</p>' for w in s.warnings)
        parts.extend(f"<p>{html.escape(p)}</p>" for p in s.paragraphs)
        if s.html:
            parts.append(s.html)
        if s.preformatted:
            parts.append(f"<pre>{html.escape(s.preformatted)}</pre>")
        parts.extend(_figure_html(f) for f in s.figures)
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
