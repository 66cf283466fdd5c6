"""docs/benchmarks.md is exactly what scripts/merge_bench_docs.py assembles from docs/bench/*.md."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_page_is_the_merge_of_the_area_pages():
    render = runpy.run_path(str(ROOT / "scripts" / "merge_bench_docs.py"))["render"]
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert page == render(), "docs/benchmarks.md is stale: run python scripts/merge_bench_docs.py"
    # every area page is a section, and no comment line of a code block became a heading
    for area in sorted((ROOT / "docs" / "bench").glob("*.md")):
        first = area.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# ") and "#" + first in page.splitlines()
