"""The bundled predictions of the 30 CIFAR-10.1-repository reference models, their model cards and citations."""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cifarb.citations import Citation
from cifarb.data._npz import read_npz
from cifarb.errors import CifarbError

ASSET = "cifar10_reference.npz"
CARDS = "cards.json"
VERSIONS: tuple[str, ...] = ("v4", "v6")
N_CIFAR10 = 10_000


@dataclass(frozen=True)
class ModelCard:
    """What is known of one reference model: its names, family, what its file name states, citations."""

    name: str
    display_name: str
    family: str
    name_says: dict[str, Any]
    citations: tuple[str, ...]


@dataclass(frozen=True)
class Cifar101Accuracy:
    """A model's accuracy on the full CIFAR-10.1 set of one version, with its Wilson 95 % interval."""

    correct: int
    n: int
    ci95: tuple[float, float]

    @property
    def accuracy(self) -> float:
        return self.correct / self.n


@dataclass(frozen=True)
class ReferenceBundle:
    """Predictions by model name (read-only int64 arrays), cards, shipped CIFAR-10.1 accuracies, provenance."""

    names: list[str]
    cifar10: dict[str, np.ndarray]  # 10,000 predictions in official test order
    cifar10_1: dict[str, dict[str, np.ndarray]]  # version -> name -> predictions on CIFAR-10.1
    cifar10_1_accuracy: dict[str, dict[str, Cifar101Accuracy]]  # version -> name -> shipped accuracy
    cards: dict[str, ModelCard]
    citations: dict[str, Citation]
    provenance: dict[str, Any] = field(default_factory=dict)

    def card(self, name: str) -> ModelCard:
        return self.cards[self.check_names([name])[0]]

    def check_names(self, names: Sequence[str]) -> list[str]:
        """`names` unchanged if all are reference models; else CifarbError naming the unknown one."""
        for name in names:
            if name not in self.cifar10:
                close = difflib.get_close_matches(name, self.names, n=3, cutoff=0.5)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise CifarbError(
                    f"unknown reference model {name!r}{hint}; names are the file stems with case preserved: "
                    f"{', '.join(self.names)} (`cifarb reference --list` lists them)"
                )
        return list(names)


def _package_file(name: str) -> Path:
    return Path(str(resources.files("cifarb.reference").joinpath(name)))


def _readonly(arr: np.ndarray) -> np.ndarray:
    out = arr.astype(np.int64)
    out.setflags(write=False)
    return out


def _cards(path: Path) -> tuple[dict[str, ModelCard], dict[str, Citation]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        citations = {key: Citation(key, str(c["what"]), str(c["bibtex"])) for key, c in doc["citations"].items()}
        cards = {name: ModelCard(name, str(c["display_name"]), str(c["family"]), dict(c["name_says"]),
                                 tuple(c["citations"])) for name, c in doc["models"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CifarbError(f"bundled reference model cards {path} are damaged ({exc}); reinstall cifarb") from None
    return cards, citations


@functools.cache
def load_reference() -> ReferenceBundle:
    """The bundled reference predictions (made by scripts/convert_reference.py), checked for completeness."""
    path = _package_file(f"assets/{ASSET}")
    z = read_npz(path, what="bundled reference predictions")
    try:
        names = [str(n) for n in z["names"]]
        cifar10 = {n: _readonly(z[f"cifar10__{n}"]) for n in names}
        c101 = {v: {n: _readonly(z[f"{v}__{n}"]) for n in names} for v in VERSIONS}
        acc = {v: {n: Cifar101Accuracy(int(z[f"{v}_correct"][i]), int(z[f"{v}_n"]),
                                       (float(z[f"{v}_ci95"][i, 0]), float(z[f"{v}_ci95"][i, 1])))
                   for i, n in enumerate(names)} for v in VERSIONS}
        provenance = {
            "source": f"{z['source_url']} at commit {z['source_commit']} (MIT licence, sha256 "
                      f"{z['license_sha256']})",
            "source_sha256": dict(zip((str(f) for f in z["source_files"]), (str(h) for h in z["source_sha256"]),
                                      strict=True)),
            "cifar10_1_labels_gitblob": {v: str(z[f"{v}_labels_gitblob"]) for v in VERSIONS},
        }
    except KeyError as exc:
        raise CifarbError(f"bundled reference predictions {path} lack {exc}; reinstall cifarb") from None
    if any(a.shape != (N_CIFAR10,) for a in cifar10.values()):
        raise CifarbError(f"bundled reference predictions {path} are damaged (wrong length); reinstall cifarb")
    cards, citations = _cards(_package_file(CARDS))
    missing = sorted(set(names) - set(cards))
    if missing:
        raise CifarbError(f"bundled reference model cards lack {', '.join(missing)}; reinstall cifarb")
    return ReferenceBundle(names=names, cifar10=cifar10, cifar10_1=c101, cifar10_1_accuracy=acc,
                           cards={n: cards[n] for n in names}, citations=citations, provenance=provenance)
