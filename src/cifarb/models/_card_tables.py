"""Zoo cards kept as data: expand the card tables under models/assets/ into ModelCard objects (no torch).

A table file (`*_cards.toml`) has a `[family]` (card-name, URL and notes patterns, licence, citation,
normalisation per dataset), `[archs]` (upstream architecture -> cifarb architecture, release tag, paper),
an optional `[bundled]` (card name -> weights shipped in models/assets/ and their sha256) and `[table]`
rows, one per published checkpoint. The patterns are `str.format` strings over a row's columns (`arch` is
the upstream name) plus `release` and `project`. A checksum of fewer than 64 hex digits is a published
prefix, and its card is prefix-verified.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent / "assets"
_CLASSES = {"cifar10": 10, "cifar100": 100}
_FULL_SHA256 = 64  # hex digits


def table_rows(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the parsed file, its `[table]` rows as dicts keyed by `columns`)."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    columns = data["table"]["columns"]
    return data, [dict(zip(columns, row, strict=True)) for row in data["table"]["rows"]]


def cards_from_table(path: Path, card_cls: Callable[..., Any]) -> list[Any]:
    """One `card_cls` (cards.ModelCard) per row of the table file at `path`."""
    data, rows = table_rows(path)
    family = data["family"]
    bundled = data.get("bundled", {})
    cards = []
    for row in rows:
        dataset, arch = row["dataset"], data["archs"][row["arch"]]
        fields = {**row, "release": arch.get("release", ""), "project": family["project"]}
        name = family["name"].format_map(fields)
        url = family["url"].format_map(fields)
        norm = family["normalisation"][dataset]
        shipped = bundled.get(name, {})
        cards.append(card_cls(
            name=name,
            arch=arch["arch"],
            filename=url.rsplit("/", 1)[1],
            url=url,
            sha256=row["sha256"],
            sha256_is_prefix=len(row["sha256"]) < _FULL_SHA256,
            reported_accuracy=round(row["top1"] / 100, 6),
            mean=tuple(norm["mean"]),
            std=tuple(norm["std"]),
            num_classes=_CLASSES[dataset],
            dataset=dataset,
            license=family["license"],
            citations=(arch["cite"], family["citation"]),
            bundled=shipped.get("file"),
            bundled_sha256=shipped.get("sha256"),
            notes=family["notes"].format_map(fields),
        ))
    return cards


def cards_from_tables(card_cls: Callable[..., Any], folder: Path = ASSETS) -> list[Any]:
    """The cards of every `*_cards.toml` table in `folder`, in file-name order."""
    return [card for path in sorted(folder.glob("*_cards.toml")) for card in cards_from_table(path, card_cls)]
