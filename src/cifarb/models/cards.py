"""Model cards: what cifarb knows about each published checkpoint, read from the card tables in models/assets/.

`ZOO` maps a zoo name to its `ModelCard`, in file-name order of the tables (the akamaster ResNets first,
then the chenyaofo family). No torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from cifarb.errors import CifarbError, did_you_mean
from cifarb.models import _card_tables

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelCard:
    """What cifarb knows about one published checkpoint."""

    name: str
    arch: str
    filename: str
    url: str
    sha256: str
    reported_accuracy: float  # fraction, as reported by the authors on the full test set
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 10
    dataset: str = "cifar10"
    license: str = ""
    citations: tuple[str, ...] = ()  # keys of cifarb.citations
    sha256_is_prefix: bool = False
    bundled: str | None = None  # file name under cifarb/models/assets/
    bundled_sha256: str | None = None
    notes: str = ""

    def matches(self, digest: str) -> bool:
        """True when `digest` (full sha256 hex) is this checkpoint: the original file or the bundled copy."""
        digest = digest.lower()
        if self.bundled_sha256 is not None and digest == self.bundled_sha256:
            return True
        if self.sha256_is_prefix:
            # Only a prefix is published (the 8 hex digits in the file name); like torch.hub's
            # check_hash, a file is accepted when its sha256 starts with it.
            return digest.startswith(self.sha256)
        return digest == self.sha256

    def describe(self) -> str:
        """The model card as a few human-readable lines."""
        if self.sha256_is_prefix:
            check = (f"sha256 prefix {self.sha256} (only the prefix is published; the file is verified "
                     "by prefix, as torch.hub's check_hash does)")
        else:
            check = f"sha256 {self.sha256}"
        lines = [
            f"{self.name}: {self.arch}, {self.num_classes} classes ({self.dataset}), reported test "
            f"accuracy {100 * self.reported_accuracy:.2f} %",
            f"  weights: {self.filename} from {self.url}",
            f"  check:   {check}",
            f"  input:   RGB in [0, 1], mean {self.mean}, std {self.std}",
            f"  licence: {self.license}",
        ]
        if self.bundled:
            lines.append(f"  bundled: cifarb/models/assets/{self.bundled} (sha256 {self.bundled_sha256})")
        if self.notes:
            lines.append(f"  notes:   {self.notes}")
        return "\n".join(lines)


ZOO: dict[str, ModelCard] = {card.name: card for card in _card_tables.cards_from_tables(ModelCard)}


def get_card(name: str) -> ModelCard:
    """The card of zoo model `name`; CifarbError listing the names (and the closest one) if unknown."""
    try:
        return ZOO[name.lower()]
    except KeyError:
        raise CifarbError(f"unknown zoo model {name!r}{did_you_mean(name, ZOO)}; choose one of: {', '.join(ZOO)}") from None


def card_for_sha256(digest: str) -> ModelCard | None:
    """The zoo card whose checkpoint has this sha256 (full hex), or None."""
    for card in ZOO.values():
        if card.matches(digest):
            return card
    return None
