"""Datasets: sources registry, verified download, readers and the bundled CIFAR-B labels (no torch)."""
