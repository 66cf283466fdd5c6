"""Dataset names (docs/data.md): the one table and parser behind training names (`cifar10`) and evaluation
names (`cifar10-b`, `cifar100-c`, `cifar10-c-local`, `cifar10.1`). Callers keep their own error messages."""

from __future__ import annotations

from dataclasses import dataclass

TRAIN_DATASETS: tuple[str, ...] = ("cifar10", "cifar100")
NUM_CLASSES: dict[str, int] = {"cifar10": 10, "cifar100": 100}

# evaluation names -> (training dataset, kind)
EVAL_DATASETS: dict[str, tuple[str, str]] = {
    "cifar10-b": ("cifar10", "b"),
    "cifar100-b": ("cifar100", "b"),
    "cifar10-c": ("cifar10", "c"),
    "cifar100-c": ("cifar100", "c"),
    "cifar10.1": ("cifar10", "10.1"),
}
LOCAL_SUFFIX = "-local"  # a generated -C set (`cifarb data make-c`) is stored under `<name>-local`

# the CIFAR-B label sets also answer to their -b and undashed names
_TRAIN_ALIASES = {f"{base}{tail}": base for base in TRAIN_DATASETS for tail in ("", "-b", "b")}


@dataclass(frozen=True)
class EvalName:
    """A parsed evaluation name: what it is stored as, its official name, training set and kind."""

    name: str  # as written: `cifar10-c-local`
    official: str  # without the local suffix: `cifar10-c`
    base: str  # training dataset: cifar10 | cifar100
    kind: str  # "b" | "c" | "10.1"
    local: bool  # a generated -C set

    @property
    def n_classes(self) -> int:
        return NUM_CLASSES[self.base]


def parse_eval_name(name: str) -> EvalName | None:
    """The evaluation name `name` exactly as stored (result `dataset`, eval/<name>.json), or None."""
    official = name.removesuffix(LOCAL_SUFFIX)
    local = official != name
    if official not in EVAL_DATASETS or (local and EVAL_DATASETS[official][1] != "c"):
        return None
    base, kind = EVAL_DATASETS[official]
    return EvalName(name, official, base, kind, local)


def train_dataset(name: str, *, cifar_b_aliases: bool = False) -> str | None:
    """`cifar10` or `cifar100` for a training-set name (case and spaces ignored), or None; with
    `cifar_b_aliases` also `cifar10-b`, `cifar10b`, ... (the names of the bundled CIFAR-B labels)."""
    key = str(name).strip().lower()
    if cifar_b_aliases:
        return _TRAIN_ALIASES.get(key)
    return key if key in TRAIN_DATASETS else None
