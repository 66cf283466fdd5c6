"""`cifarb cite`: print BibTeX for the paper, the datasets, the zoo models and the augmentations used."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cite",
        help="print BibTeX for the paper, CIFAR, CIFAR-C, CIFAR-10.1 and the models used",
        description="Print BibTeX entries. Without arguments: the paper (CIFAR10-B/CIFAR100-B, MacroStd, "
        "FlowAug), CIFAR, CIFAR-10-C/100-C, CIFAR-10.1, ResNet and the pretrained zoo weights.",
        epilog="Examples: `cifarb cite`, `cifarb cite mixup flowaug` (methods add their papers), "
        "`cifarb cite --list`, `cifarb cite --all > refs.bib`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME",
        help="citation keys, augmentation names (mixup, flowaug, ...) or zoo models (resnet56); "
        "their entries are added to the default set",
    )
    parser.add_argument("--all", action="store_true", help="print every entry cifarb knows")
    parser.add_argument("--list", action="store_true", help="list the keys and what each is cited for")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cifarb.citations import CITATIONS, DEFAULT_KEYS, METHOD_KEYS, bibtex
    from cifarb.errors import UsageError
    from cifarb.models.zoo import ZOO

    if args.list:
        width = max(len(k) for k in CITATIONS)
        for key, cit in CITATIONS.items():
            print(f"{key:<{width}}  {cit.what}")
        return 0
    if args.all:
        print(bibtex(list(CITATIONS)), end="")
        return 0
    keys = list(DEFAULT_KEYS)
    for name in args.names:
        low = name.lower()
        if name in CITATIONS:
            keys.append(name)
        elif low in METHOD_KEYS:
            keys.extend(METHOD_KEYS[low])
        elif low in ZOO:
            keys.extend(ZOO[low].citations)
        else:
            raise UsageError(
                f"unknown citation {name!r}; use a key ({', '.join(CITATIONS)}), an augmentation "
                f"({', '.join(METHOD_KEYS)}) or a zoo model ({', '.join(ZOO)}); `cifarb cite --list` lists the keys"
            )
    print(bibtex(keys), end="")
    return 0
