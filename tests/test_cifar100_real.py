"""CIFAR-100 end to end on the 916 real test images in ../shared: reader, CIFAR100-B join, evaluation.

No CIFAR-100 weights exist offline, so the evaluation uses a randomly initialised (seeded) ResNet20
with 100 outputs: it checks the whole path (checkpoint -> predictions -> metrics), not accuracy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

import cifarb
from cifarb.cli import main
from cifarb.data import cifar_b
from cifarb.data.readers import load_cifar
from cifarb.errors import CifarbError
from cifarb.metrics import validate_result

N = 916
# ../shared/README.md: sha256 of the file and of its 916 x 3,072 image bytes; subgroup sizes of the slice
FILE_SHA256 = "2f8cad4f3ba39f338d06a839a655b640a37a0edb769d861890951176a6b11cda"
PIXELS_SHA256 = "f74ce5a94321ec2f65de2033ffebb1ae6888801ad260afb648d8f16fa46483db"
SUBGROUP_SIZES = {"green": 217, "gray": 109, "blue": 228, "white": 116, "black": 69, "brown": 139, "red": 14,
                  "other": 24}
MEAN, STD = (0.507, 0.487, 0.441), (0.267, 0.256, 0.276)


@pytest.fixture
def c100_data(shared_data):
    if not (shared_data / "cifar-100-python" / "test").exists():
        pytest.skip(f"CIFAR-100 slice not found under {shared_data} (../shared is older or absent)")
    return shared_data


def test_reader_on_the_real_cifar100_slice(c100_data):
    with pytest.raises(CifarbError, match="test is not verified.*--trust-local"):
        load_cifar("cifar100", "test", root=c100_data)
    s = load_cifar("cifar100", "test", root=c100_data, trust_local=True)
    full = np.load(c100_data / "cifar100_full_labels.npz")
    assert s.n_images == N and s.n_official == 10_000 and s.verified is False
    assert s.images.shape == (N, 32, 32, 3) and s.images.dtype == np.uint8
    assert np.array_equal(s.indices, np.arange(N))
    assert np.array_equal(s.labels, full["test_fine_labels"][:N])
    assert np.array_equal(s.coarse_labels, full["test_coarse_labels"][:N])
    assert list(s.files.values()) == [FILE_SHA256]
    # CHW planes, as the official files store them: the pixels are exactly the published prefix
    assert hashlib.sha256(s.images.transpose(0, 3, 1, 2).tobytes()).hexdigest() == PIXELS_SHA256
    assert s.class_names == cifar_b.load_cifar_b("cifar100").class_names and s.class_names[30] == "dolphin"


def test_cifar100b_join_on_real_images_border_colours(c100_data, check_border_colours):
    s = load_cifar("cifar100", "test", root=c100_data, trust_local=True)
    b = cifar_b.load_cifar_b("cifar100")
    sub = b.subgroups_for(s.indices)
    assert {name: int((sub == g).sum()) for g, name in enumerate(b.subgroup_names)} == SUBGROUP_SIZES
    per_class = np.bincount(s.labels, minlength=100)
    assert per_class.min() == 4 and per_class.max() == 15
    check_border_colours(s.images, sub, b.subgroup_names)


def random_resnet20():
    import torch

    from cifarb.models import build_model

    torch.manual_seed(0)
    return build_model("resnet20", num_classes=100).eval()


@pytest.mark.slow  # three ResNet20 passes over real images: ~10 s idle, ~40 s on a loaded 2-core machine
def test_eval_of_a_random_cifar100_model_on_the_916_real_images(c100_data, tmp_path):
    torch = pytest.importorskip("torch")
    net = random_resnet20()
    ckpt = tmp_path / "random-resnet20-c100.pt"
    torch.save(net.state_dict(), ckpt)
    out = tmp_path / "r.json"
    run = tmp_path / "run"
    assert main(["eval", "--model", str(ckpt), "--arch", "resnet20", "--mean", ",".join(map(str, MEAN)),
                 "--std", ",".join(map(str, STD)), "--dataset", "cifar100-b", "--root", str(c100_data),
                 "--trust-local", "--bootstrap", "50", "--json", str(out), "--out", str(run)]) == 0
    result = json.loads(out.read_text())
    validate_result(result)
    assert result["dataset"] == "cifar100-b" and result["n_images"] == N and result["n_official"] == 10_000
    assert result["data_verified"] is False and len(result["class_accuracy"]) == 100
    assert sum(c["n"] for c in result["cells"]) == N
    # an independent forward pass on a prefix: normalise by hand, argmax, compare with the saved predictions
    s = load_cifar("cifar100", "test", root=c100_data, trust_local=True)
    x = torch.from_numpy(s.images[:200]).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        head = net(x).argmax(1).numpy()
    frame = pd.read_parquet(run / "predictions" / "cifar100-b.parquet")
    assert np.array_equal(frame["index"].to_numpy(), np.arange(N)) and np.array_equal(frame["label"], s.labels)
    assert np.array_equal(frame["prediction"].to_numpy()[:200], head)
    pred = frame["prediction"].to_numpy()
    assert result["accuracy"] == pytest.approx(float(np.mean(pred == s.labels)))
    assert np.array_equal(frame["subgroup"], cifar_b.load_cifar_b("cifar100").subgroups[:N])
    # the same model scored on superclasses through the Python API, on the first 200 real images
    part = dataclasses.replace(s, images=s.images[:200], labels=s.labels[:200], indices=s.indices[:200],
                               coarse_labels=s.coarse_labels[:200])
    ev = cifarb.evaluate(net, dataset="cifar100-super", mean=MEAN, std=STD, data=part, bootstrap=0,
                         progress=False)
    validate_result(ev.to_dict())
    sup = cifarb.load_superclasses()
    assert ev.n_images == 200 and ev.data_verified is False and ev.provenance["predictions"] == "fine"
    assert ev.accuracy == pytest.approx(float(np.mean(sup.fine_to_coarse[head] == s.coarse_labels[:200])))
    assert sum(c["n"] for c in ev.cells) == 200 and len(ev.class_accuracy) == 20
    assert np.array_equal(ev.predictions["prediction"], sup.fine_to_coarse[head])
