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
in the same run (machines are noisy, and during these measurements several other jobs shared the two
cores: read ratios, not absolute speeds). Anchors and targets: `../shared/TARGETS.md`.
This page is assembled from `docs/bench/*.md` by `python scripts/merge_bench_docs.py`.

"""


def main() -> None:
    pages = sorted((ROOT / "docs" / "bench").glob("*.md"), key=lambda p: (ORDER + [p.stem]).index(p.stem))
    body = [HEADER]
    for page in pages:
        text = page.read_text(encoding="utf-8").strip()
        # demote the page's headings one level so each area is a section of this page
        lines = [("#" + line) if line.startswith("#") else line for line in text.splitlines()]
        body.append("\n".join(lines) + "\n\n")
    (ROOT / "docs" / "benchmarks.md").write_text("".join(body).rstrip() + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
