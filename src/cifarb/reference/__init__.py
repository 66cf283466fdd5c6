"""Reference models: 30 published CIFAR-10 classifiers' predictions, scored on CIFAR10-B and CIFAR-10.1."""

from cifarb.reference.bundle import ModelCard, ReferenceBundle, load_reference

__all__ = ["ModelCard", "ReferenceBundle", "load_reference"]
