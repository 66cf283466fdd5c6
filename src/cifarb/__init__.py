"""cifarb: measure and reduce subgroup discrepancy (MacroStd) in CIFAR image classifiers.

Layers (imports point down): cli -> study/report -> train/eval -> augment/flows/models -> metrics -> data/runs.
Importing the package is cheap: nothing here imports torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
