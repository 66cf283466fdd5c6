"""`cifarb data fetch|verify|where|make-c`: dataset files (no torch import anywhere below here)."""

from __future__ import annotations

import argparse
import importlib

# sub-sub-command modules; each exposes register(subparsers)
_SUBMODULES = ("cifarb.commands.data_sources", "cifarb.commands.data_makec")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="fetch, verify, locate or generate dataset files",
        description="Dataset files: download and verify the official sets, say where files go, or "
        "generate CIFAR-C-style corruptions locally.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    for name in _SUBMODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
