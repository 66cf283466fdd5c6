"""The `cifarb` command line: a thin front end that parses, calls the API and prints.

Each sub-command lives in `cifarb.commands.<module>`, which exposes
`register(subparsers) -> None` (adding its parser and `set_defaults(func=run)`) and `run(args) -> int`.
Command modules import only the standard library at import time, so building the parser is cheap and
the `data` and `metrics` commands never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from cifarb import __version__
from cifarb.errors import CifarbError

# (command module, one-line summary); order is the order shown in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "data",
    "metrics",
    "reference",
    "eval",
    "train",
    "flow",
    "study",
    "report",
    "compare",
    "cite",
    "convert-checkpoint",
    "completion",
)

EPILOG = """\
Exit status: 0 success, 1 user error (bad file, missing data, ...), 2 usage error.
Data root: --root, else $CIFARB_DATA, else a per-user cache folder. Offline: --offline or CIFARB_OFFLINE=1.
Run `cifarb COMMAND --help` for the flags of one command.
"""


class Parser(argparse.ArgumentParser):
    """argparse with did-you-mean suggestions for mistyped commands, choices and flags."""

    def error(self, message: str) -> None:  # type: ignore[override]
        from cifarb.errors import did_you_mean

        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            message += did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        unknown = re.search(r"unrecognized arguments: (\S+)", message)
        if unknown and unknown.group(1).startswith("--"):
            message += did_you_mean(unknown.group(1), sorted(_option_strings(self)))
        super().error(message)


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every --flag of a parser and its sub-commands."""
    out = {s for a in parser._actions for s in a.option_strings if s.startswith("--")}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _option_strings(sub)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cifarb",
        description="Measure and reduce subgroup discrepancy (MacroStd) of CIFAR classifiers on "
        "CIFAR10-B / CIFAR100-B, CIFAR-10-C / CIFAR-100-C and CIFAR-10.1.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cifarb {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        # every listed command must exist: a missing module is a packaging bug and should fail loudly
        importlib.import_module(f"cifarb.commands.{name.replace('-', '_')}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on `argv` (default: sys.argv[1:]) and return the exit status. Used in-process by tests."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse: --help / --version exit 0, usage errors exit 2
        return int(exc.code or 0)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    from cifarb import _extras

    try:
        _extras.check_command(args)
        return int(func(args) or 0)
    except ModuleNotFoundError as exc:  # an optional dependency imported deep inside a command
        extra = _extras.missing_module(exc.name)
        if extra is None:
            raise
        what = f"`cifarb {_extras.command_name(args)}`"
        print(f"cifarb: error: {_extras.message(extra, what, exc.name)}", file=sys.stderr)
        return 1
    except CifarbError as exc:
        print(f"cifarb: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cifarb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
