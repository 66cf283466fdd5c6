"""Assemble docs/benchmarks.md from the per-area figure pages in docs/bench/*.md.

Each area keeps its latest figures (with the command and date that produced them) in its own page;
this script puts them into the one page the README links, so the two never disagree.
Run: python scripts/merge_bench_docs.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["metrics", "eval", "train", "augment", "flow", "corruptions"]

HEADER = """# Benchmarks

Measured on the project's 2-core CPU machine. Every script prints a ratio against a reference measured
in the same run, because machines are noisy. Each section says whether it was measured on an idle
machine or while other jobs shared the two cores; for the shared-machine sections read ratios, not
absolute speeds. Anchors and targets: `../shared/TARGETS.md`.
This page is assembled from `docs/bench/*.md` by `python scripts/merge_bench_docs.py`.

"""


def render() -> str:
    """The benchmarks page assembled from docs/bench/*.md."""
    pages = sorted((ROOT / "docs" / "bench").glob("*.md"), key=lambda p: (ORDER + [p.stem]).index(p.stem))
    body = [HEADER]
    for page in pages:
        text = page.read_text(encoding="utf-8").strip()
        # demote the page's headings one level so each area is a section of this page (not the
        # comment lines inside fenced code blocks)
        lines, fenced = [], False
        for line in text.splitlines():
            if line.startswith("```"):
                fenced = not fenced
            lines.append("#" + line if line.startswith("#") and not fenced else line)
        body.append("\n".join(lines) + "\n\n")
    return "".join(body).rstrip() + "\n"


def main() -> None:
    (ROOT / "docs" / "benchmarks.md").write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
