"""BibTeX for the paper cifarb implements and for the data, models and methods it uses (no imports beyond stdlib).

The entries themselves live in `citations.bib` (package data), the one copy that `cifarb cite` and the
data registry's sources both read; this module parses it and says which keys go with which method.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Citation:
    key: str
    what: str  # one line: what to cite it for
    bibtex: str


BIB_FILE = "citations.bib"
# One entry: its `% for:` line, then `@type{key,` up to the `}` that closes it at the start of a line.
_ENTRY = re.compile(r"^% for: (?P<what>[^\n]+)\n(?P<bibtex>@\w+\{(?P<key>[^,\s]+),\n.*?\n\})$", re.M | re.S)


def parse_bib(text: str) -> dict[str, Citation]:
    """The entries of a cifarb `.bib` text in file order; ValueError on a repeated key."""
    out: dict[str, Citation] = {}
    for m in _ENTRY.finditer(text):
        key = m["key"]
        if key in out:
            raise ValueError(f"{BIB_FILE}: key {key!r} appears twice")
        out[key] = Citation(key, m["what"].strip(), m["bibtex"])
    return out


def _load() -> dict[str, Citation]:
    return parse_bib(resources.files("cifarb").joinpath(BIB_FILE).read_text(encoding="utf-8"))


CITATIONS: dict[str, Citation] = _load()

# What `cifarb cite` prints by default: the paper, the data and the zoo models.
DEFAULT_KEYS: tuple[str, ...] = (
    "chiu2023better",
    "krizhevsky2009learning",
    "hendrycks2019benchmarking",
    "recht2018cifar",
    "recht2019imagenet",
    "he2016resnet",
    "idelbayev2018resnet",
    "jordan2024airbench",
    "torchvision2016",
    "cifarb",
)

# Augmentation / method name -> what to cite when a run used it.
METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "flowaug": ("chiu2023better", "ma2021decoupling", "kingma2018glow"),
    "augmix": ("hendrycks2020augmix",),
    "autoaugment": ("cubuk2019autoaugment",),
    "randaugment": ("cubuk2020randaugment",),
    "trivialaugment": ("muller2021trivialaugment",),
    "mixup": ("zhang2018mixup",),
    "cutmix": ("yun2019cutmix",),
    "cutout": ("devries2017cutout",),
}

# Architecture name (`--arch`) -> what to cite when a run used it. zagoruyko2016wide's entry ships
# with the reference-model cards (cifarb/reference/cards.json), so `cifarb cite` resolves it there.
ARCH_KEYS: dict[str, tuple[str, ...]] = {
    "wrn28_10": ("zagoruyko2016wide",),
    "fastnet": ("jordan2024airbench",),
    "resnet18": ("he2016resnet",),
    "resnet18_imagenet": ("he2016resnet", "torchvision2016"),
    "resnet50_imagenet": ("he2016resnet", "torchvision2016"),
}


def bibtex(keys: tuple[str, ...] | list[str] | None = None) -> str:
    """The BibTeX entries for `keys` (default DEFAULT_KEYS), separated by blank lines; KeyError if unknown."""
    chosen = DEFAULT_KEYS if keys is None else tuple(dict.fromkeys(keys))
    return "\n\n".join(CITATIONS[k].bibtex for k in chosen) + "\n"
