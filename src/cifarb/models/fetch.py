"""Download a zoo card's weights into the cache, verified against the card before they are put in place."""

from __future__ import annotations

from pathlib import Path

from cifarb._atomic import move_into_place, os_error_message
from cifarb._hashing import sha256_file
from cifarb.data.download import DEFAULT_DEADLINE_S, _deadline_at, download_verified
from cifarb.errors import CifarbError
from cifarb.models.cards import ModelCard
from cifarb.models.weights import default_weight_path


def fetch_weights(card: ModelCard, *, progress: bool = True, deadline_s: float | None = DEFAULT_DEADLINE_S) -> Path:
    """Download `card.url` through `<cache>/models/.cifarb-downloads/`, check its sha256, place it; its path.

    A wrong or partial download is discarded and never reaches `default_weight_path(card.name)`; the
    whole download must finish within `deadline_s` seconds (None or 0: no limit).
    """
    target = default_weight_path(card.name)
    staging = target.parent / ".cifarb-downloads"
    try:
        staging.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CifarbError(os_error_message(staging, exc)) from None

    def check(path: Path) -> str | None:
        got = sha256_file(path)
        return None if card.matches(got) else f"sha256 is {got}, expected {card.sha256}; the download was discarded"

    # a prefix cannot be given to pooch: `check` verifies it
    full = not card.sha256_is_prefix
    tmp = download_verified([card.url], staging / card.filename, algo="sha256" if full else None,
                            digest=card.sha256 if full else None, check=check, progress=progress,
                            what=card.filename, deadline_at=_deadline_at(deadline_s), deadline_s=deadline_s)
    return move_into_place(tmp, target)
