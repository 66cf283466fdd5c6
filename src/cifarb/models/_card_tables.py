"""Zoo cards kept as data: expand the card tables under models/assets/ into ModelCard objects (no torch).

A table file (`*_cards.toml`) has a `[family]` (URL pattern, licence, citation, normalisation per dataset),
`[archs]` (upstream architecture -> cifarb architecture, release tag, paper) and `[table]` rows, one per
published checkpoint. Every card it makes is prefix-verified: the file name's 8 hex digits are the only
published checksum.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent / "assets"
_CLASSES = {"cifar10": 10, "cifar100": 100}


def table_rows(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the parsed file, its `[table]` rows as dicts keyed by `columns`)."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    columns = data["table"]["columns"]
    return data, [dict(zip(columns, row, strict=True)) for row in data["table"]["rows"]]


def cards_from_table(path: Path, card_cls: Callable[..., Any]) -> list[Any]:
    """One `card_cls` (zoo.ModelCard) per row of the table file at `path`."""
    data, rows = table_rows(path)
    family = data["family"]
    cards = []
    for row in rows:
        dataset, upstream = row["dataset"], row["arch"]
        arch = data["archs"][upstream]
        norm = family["normalisation"][dataset]
        url = family["url"].format(release=arch["release"], dataset=dataset, arch=upstream, sha256=row["sha256"])
        cards.append(card_cls(
            name=f"{family['name_prefix']}-{dataset}-{upstream}",
            arch=arch["arch"],
            filename=url.rsplit("/", 1)[1],
            url=url,
            sha256=row["sha256"],
            sha256_is_prefix=True,
            reported_accuracy=round(row["top1"] / 100, 6),
            mean=tuple(norm["mean"]),
            std=tuple(norm["std"]),
            num_classes=_CLASSES[dataset],
            dataset=dataset,
            license=family["license"],
            citations=(arch["cite"], family["citation"]),
            notes=(f"{upstream} of {family['project']}, {row['params_m']} M parameters "
                   f"and top-5 {row['top5']:.2f} % as published; verified by sha256 prefix only"),
        ))
    return cards


def cards_from_tables(card_cls: Callable[..., Any], folder: Path = ASSETS) -> list[Any]:
    """The cards of every `*_cards.toml` table in `folder`, in file-name order."""
    return [card for path in sorted(folder.glob("*_cards.toml")) for card in cards_from_table(path, card_cls)]
