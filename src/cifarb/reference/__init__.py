"""Reference models: 30 published CIFAR-10 classifiers' predictions, scored on CIFAR10-B and CIFAR-10.1.

`score(models=None, added=[AddedModel(...)], bootstrap=..., seed=...)` returns the table that
`cifarb reference --json` writes; `load_reference()` gives the bundled predictions and model cards.
"""

from cifarb.reference.bundle import ModelCard, ReferenceBundle, load_reference
from cifarb.reference.score import AddedModel, score

__all__ = ["AddedModel", "ModelCard", "ReferenceBundle", "load_reference", "score"]
