"""Rewrite the metric parts of src/cifarb/schemas/result.schema.json from the metric catalogue.

The catalogue (src/cifarb/metrics/catalog.toml) declares each metric once; this script rebuilds the
schema's lists of metrics from it and leaves every other part as written. tests/test_metrics_catalog.py
fails while the shipped schema differs from what this script would write.
Run: PYTHONPATH=src python scripts/sync_result_schema.py
"""

from __future__ import annotations

import json
from pathlib import Path

from cifarb.metrics.catalog import schema_with_catalog

SCHEMA = Path(__file__).resolve().parents[1] / "src" / "cifarb" / "schemas" / "result.schema.json"


def render(text: str) -> str:
    """The schema file's text with its metric parts rebuilt from the catalogue."""
    return json.dumps(schema_with_catalog(json.loads(text)), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    old = SCHEMA.read_text(encoding="utf-8")
    new = render(old)
    SCHEMA.write_text(new, encoding="utf-8")
    print(f"{SCHEMA}: {'updated' if new != old else 'already up to date'}")
