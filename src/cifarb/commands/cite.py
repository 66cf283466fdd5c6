"""`cifarb cite`: print BibTeX for the paper, the datasets, the zoo models and the augmentations used."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cite",
        help="print BibTeX for the paper, CIFAR, CIFAR-C, CIFAR-10.1 and the models used",
        description="Print BibTeX entries. Without arguments: the paper (CIFAR10-B/CIFAR100-B, MacroStd, "
        "FlowAug), CIFAR, CIFAR-10-C/100-C, CIFAR-10.1, ResNet and the pretrained zoo weights, airbench "
        "(fastnet), torchvision's ImageNet weights, and cifarb itself (also in CITATION.cff). Architecture "
        "names add theirs: `cifarb cite wrn28_10` adds Wide ResNet.",
        epilog="Examples: `cifarb cite`, `cifarb cite mixup flowaug` (methods add their papers), "
        "`cifarb cite --list`, `cifarb cite --all > refs.bib`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME",
        help="citation keys, augmentation names (mixup, flowaug, ...), zoo models (resnet56) or reference "
        "models (wrn_28_10; `reference` for all 30); their entries are added to the default set",
    )
    parser.add_argument("--all", action="store_true", help="print every entry cifarb knows")
    parser.add_argument("--list", action="store_true", help="list the keys and what each is cited for")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cifarb.citations import ARCH_KEYS, CITATIONS, DEFAULT_KEYS, METHOD_KEYS
    from cifarb.errors import UsageError
    from cifarb.models.zoo import ZOO
    from cifarb.reference.bundle import load_reference

    # the reference models' citations ship with their cards (cifarb/reference/cards.json)
    ref = load_reference()
    known = {**CITATIONS, **ref.citations}

    def entries(keys: list[str]) -> str:
        return "\n\n".join(known[k].bibtex for k in dict.fromkeys(keys)) + "\n"

    if args.list:
        width = max(len(k) for k in known)
        for key, cit in known.items():
            print(f"{key:<{width}}  {cit.what}")
        print("\nreference models (`cifarb cite NAME`):")
        width = max(len(n) for n in ref.names)
        for name in ref.names:
            card = ref.cards[name]
            print(f"{name:<{width}}  {card.display_name}: {', '.join(card.citations)}")
        return 0
    if args.all:
        print(entries(list(known)), end="")
        return 0
    keys = list(DEFAULT_KEYS)
    for name in args.names:
        low = name.lower()
        if name in known:
            keys.append(name)
        elif name in ref.cards:
            keys.extend(ref.cards[name].citations)
        elif low == "reference":
            keys.extend(k for n in ref.names for k in ref.cards[n].citations)
        elif low in METHOD_KEYS:
            keys.extend(METHOD_KEYS[low])
        elif low in ARCH_KEYS:
            keys.extend(ARCH_KEYS[low])
        elif low in ZOO:
            keys.extend(ZOO[low].citations)
        else:
            raise UsageError(
                f"unknown citation {name!r}; use a key ({', '.join(CITATIONS)}), an augmentation "
                f"({', '.join(METHOD_KEYS)}), an architecture ({', '.join(ARCH_KEYS)}), a zoo model "
                f"({', '.join(ZOO)}) or a reference model; `cifarb cite --list` lists the keys"
            )
    print(entries(keys), end="")
    return 0
