"""Zoo weights on disk: where a card's file is looked for (bundled, $CIFARB_MODELS, the cache) and checked.

No torch; the sha256 of a found file must match its card before anything reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cifarb._hashing import sha256_file
from cifarb.errors import CifarbError
from cifarb.models.cards import ModelCard, get_card


def models_cache_dir() -> Path:
    """`<cache>/models`, where downloaded zoo weights live (the cache honours $CIFARB_CACHE)."""
    from cifarb.data.root import cache_dir

    return Path(cache_dir()) / "models"


def default_weight_path(name: str) -> Path:
    """Where `cifarb data fetch NAME` puts zoo weights, and where `cifarb data where NAME` says to put them."""
    return models_cache_dir() / get_card(name).filename


def weight_candidates(name: str) -> list[Path]:
    """Every path looked at for zoo model `name`, in order: each $CIFARB_MODELS folder, then the cache."""
    card = get_card(name)
    folders = [Path(p).expanduser() for p in os.environ.get("CIFARB_MODELS", "").split(os.pathsep) if p]
    return [f / card.filename for f in folders] + [models_cache_dir() / card.filename]


def bundled_path(card: ModelCard) -> Path:
    """The path of a card's bundled weights inside the installed package."""
    if card.bundled is None:
        raise CifarbError(f"{card.name} has no bundled weights")
    return Path(__file__).resolve().parent / "assets" / card.bundled


def weight_status(card: ModelCard) -> tuple[str, Path]:
    """("OK" | "MISMATCH" | "MISSING", path): the first file found for `card`, or where it should go."""
    paths = [bundled_path(card)] if card.bundled else weight_candidates(card.name)
    for path in paths:
        if path.is_file():
            return ("OK" if card.matches(sha256_file(path)) else "MISMATCH"), path
    return "MISSING", default_weight_path(card.name)


def find_weights(name: str) -> tuple[Path, str]:
    """(path, sha256) of verified weights for zoo model `name`; CifarbError saying where to put them."""
    card = get_card(name)
    if card.bundled is not None:
        path = bundled_path(card)
        digest = sha256_file(path)
        if not card.matches(digest):
            raise CifarbError(f"bundled weights {path} have sha256 {digest}, expected {card.bundled_sha256}; "
                              "the installation is damaged—reinstall cifarb")
        return path, digest
    candidates = weight_candidates(name)
    for path in candidates:
        if path.is_file():
            digest = sha256_file(path)
            if not card.matches(digest):
                expected = f"a sha256 starting with {card.sha256}" if card.sha256_is_prefix else card.sha256
                raise CifarbError(
                    f"{path} has sha256 {digest}, expected {expected}: it is not the published {card.filename} "
                    f"(damaged or a different file); delete it and download {card.url}"
                )
            return path, digest
    looked = ", ".join(str(p) for p in candidates)
    raise CifarbError(
        f"weights for {name} not found (looked in {looked}). Download {card.url} and put it at "
        f"{default_weight_path(name)} (or in a folder listed in $CIFARB_MODELS); "
        f"`cifarb data where {name}` prints the path, checksum and URL"
    )


def where_text(card: ModelCard) -> str:
    """What `cifarb data where NAME` prints for zoo weights: the path, checksum and URL line, then the manual steps."""
    path = default_weight_path(card.name)
    lines = [
        f"{path} - sha256:{card.sha256} {card.url}",
        f"# {card.name}: manual steps",
        f"#   1. download {card.url}",
        f"#   2. put it at {path} (or in a folder listed in $CIFARB_MODELS)",
        f"#   3. cifarb data verify {card.name}",
    ]
    if card.sha256_is_prefix:
        lines.append(f"# note: only the first {len(card.sha256)} hex digits of its sha256 are published "
                     f"({card.sha256}); the file is checked by prefix, as torch.hub's check_hash does")
    if card.bundled:
        lines.append(f"# note: {card.name} is bundled with cifarb ({bundled_path(card)}); it works offline "
                     "without this download")
    lines.append(f"# licence: {card.license}")
    return "\n".join(lines) + "\n"
