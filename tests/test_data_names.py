"""The one dataset-name parser (cifarb.data.names) against the names docs/data.md lists."""

from __future__ import annotations

from cifarb.data.names import EVAL_DATASETS, parse_eval_name, train_dataset


def test_every_evaluation_name_and_its_local_form():
    for name, (base, kind) in EVAL_DATASETS.items():
        p = parse_eval_name(name)
        assert (p.name, p.official, p.base, p.kind, p.local) == (name, name, base, kind, False)
    p = parse_eval_name("cifar100-c-local")
    assert (p.official, p.base, p.kind, p.local, p.n_classes) == ("cifar100-c", "cifar100", "c", True, 100)
    assert parse_eval_name("cifar10.1").n_classes == 10


def test_names_that_are_not_evaluation_names():
    # only a -C set has a local form; names are exact as stored (eval/<name>.json)
    for name in ("cifar10", "cifar10-b-local", "cifar10.1-local", "CIFAR10-B", "imagenet", "", "-local"):
        assert parse_eval_name(name) is None, name


def test_training_names_and_cifar_b_aliases():
    assert [train_dataset(n) for n in ("cifar10", " CIFAR100 ", "cifar10-b", "svhn")] == [
        "cifar10", "cifar100", None, None]
    assert [train_dataset(n, cifar_b_aliases=True) for n in ("cifar10-b", "cifar100b", "Cifar100", "cifar10-c")] == [
        "cifar10", "cifar100", "cifar100", None]
