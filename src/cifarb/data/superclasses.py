"""CIFAR-100 superclasses as classes and their fine classes as subgroups (`cifar100-super`).

The paper's "subclasses" case: the 20 coarse classes are the classes, and the 100 fine classes are the
subgroups, so each class has exactly 5 non-empty cells (its fine classes, 100 test images each). The
fine -> coarse mapping is bundled (`assets/cifar100_super.json`, made by
scripts/make_cifar100_super.py); per-image fine labels come from the bundled CIFAR100-B file.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np

from cifarb.data.cifar_b import asset_path, load_cifar_b
from cifarb.errors import CifarbError

DATASET = "cifar100-super"
ASSET = "cifar100_super.json"
PREDICTION_KINDS = ("fine", "coarse")


@dataclass(frozen=True)
class SuperclassLabels:
    """All 10,000 CIFAR-100 test images: superclass label (class) and fine label (subgroup), by test index."""

    labels: np.ndarray  # coarse class id, 0..19
    subgroups: np.ndarray  # fine class id, 0..99
    class_names: list[str]  # 20 coarse names
    subgroup_names: list[str]  # 100 fine names
    fine_to_coarse: np.ndarray  # (100,) coarse id of each fine class
    data_sha256: dict[str, str]  # label files behind these arrays

    def to_coarse(self, fine_ids: np.ndarray) -> np.ndarray:
        """Coarse ids of fine class ids (0..99)."""
        return self.fine_to_coarse[np.asarray(fine_ids, dtype=np.int64)]


@functools.cache
def _mapping() -> dict:
    path = asset_path(ASSET)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        f2c = np.asarray(data["fine_to_coarse"], dtype=np.int64)
        ok = f2c.shape == (100,) and len(data["coarse_class_names"]) == 20 and len(data["fine_class_names"]) == 100
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise CifarbError(f"bundled superclass file {path} is damaged; reinstall cifarb")
    return data


def load_superclasses() -> SuperclassLabels:
    """The cifar100-super labels: coarse classes, fine classes as subgroups (checked against the bundle)."""
    data = _mapping()
    f2c = np.asarray(data["fine_to_coarse"], dtype=np.int64)
    bundle = load_cifar_b("cifar100")
    coarse = f2c[bundle.labels]
    if bundle.coarse_labels is not None and not np.array_equal(coarse, bundle.coarse_labels):
        raise CifarbError(f"bundled {ASSET} disagrees with the bundled CIFAR-100 coarse labels; reinstall cifarb")
    f2c.setflags(write=False)
    coarse.setflags(write=False)
    sha = {bundle.source_file: bundle.source_sha256, **data["source_sha256"]}
    return SuperclassLabels(labels=coarse, subgroups=bundle.labels, class_names=list(data["coarse_class_names"]),
                            subgroup_names=list(data["fine_class_names"]), fine_to_coarse=f2c, data_sha256=sha)
