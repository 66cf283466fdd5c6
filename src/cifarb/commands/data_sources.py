"""`cifarb data fetch|verify|where NAME`: download, check and locate dataset files (and zoo weights)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cifarb.commands._common import add_root_args

DATA_NAMES = "cifar10, cifar100, cifar10-c, cifar100-c, cifar10.1"
ZOO_NAMES = ("resnet20, resnet32, resnet44, resnet56, resnet110, "
             "chenyaofo-cifar10|cifar100-ARCH (e.g. chenyaofo-cifar100-resnet20; docs/evaluation.md lists them)")

_EPILOG = """\
Data root: --root, else $CIFARB_DATA, else a per-user cache folder. Layout under the root:
  cifar-10-batches-py/  cifar-100-python/  CIFAR-10-C/  CIFAR-100-C/  CIFAR-10.1/
Zoo weights (resnet32..110, chenyaofo-*) live in <cache>/models/ or a folder listed in $CIFARB_MODELS;
--root does not apply to them. ResNet20 is bundled with cifarb.
Exit status: 0 success; 1 missing or unverified files, network failure, offline with missing files.
"""

_HELP = {
    "fetch": ("download, verify and place a dataset's files",
              "Download NAME's files with progress, verify every file against its published checksum, place it "
              "atomically under the data root and record its sha256 in <root>/.cifarb-verified.json. Files "
              "already verified are kept. With --offline or CIFARB_OFFLINE=1 nothing is downloaded: missing "
              "files make it exit 1 after printing the `where` text."),
    "verify": ("check a dataset's files: one 'OK|MISMATCH|MISSING PATH' line each",
               "Check every file of NAME under the data root against its published checksum (or the "
               "verified-download record). Prints 'OK PATH', 'MISMATCH PATH' or 'MISSING PATH' per file; exits "
               "0 only when every file is OK."),
    "where": ("print where each file goes, its checksum and URL, then the manual steps",
              "Print one line per file that must end up on disk, 'PATH SIZE_OR_- ALGO:HEX URL' (the URL is where "
              "the file or its archive comes from), then the manual steps as '#' comment lines. Exits 0. "
              "Also accepts zoo model names."),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    for action, (summary, description) in _HELP.items():
        p = subparsers.add_parser(action, help=summary, description=description, epilog=_EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("name", metavar="NAME", help=f"dataset ({DATA_NAMES}) or zoo model ({ZOO_NAMES})")
        add_root_args(p, trust_local=False)
        p.add_argument("--version", choices=("v6", "v4"), default=None,
                       help="CIFAR-10.1 version (default v6: 2,000 images; v4: 2,021)")
        if action == "fetch":
            p.add_argument("--offline", action="store_true",
                           help="never touch the network (also CIFARB_OFFLINE=1); fail with the `where` text "
                                "if files are missing")
            p.add_argument("--no-progress", dest="progress", action="store_false",
                           help="no progress bars (they are also off when stderr is not a terminal)")
            p.add_argument("--keep-archive", action="store_true",
                           help="keep the downloaded archive in <root>/.cifarb-downloads/ after extraction")
            p.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                           help="give up when the whole fetch takes longer (default 10800 = 3 h; 0: no limit); "
                                "a stalled or trickling server is stopped with a clear message")
        p.set_defaults(func=run, data_action=action)


def _zoo_card(name: str) -> Any | None:
    """The zoo card for `name`, or None (the zoo module is torch-free at import)."""
    if not name.lower().startswith(("resnet", "chenyaofo-")):
        return None
    try:
        from cifarb.models import zoo
    except ModuleNotFoundError:
        return None
    return zoo.ZOO.get(name.lower())


def run(args: argparse.Namespace) -> int:
    from cifarb.data.registry import SOURCES, get_source
    from cifarb.errors import CifarbError

    name = str(args.name).strip().lower()
    card = None
    if name not in SOURCES and name not in ("cifar10.1-v6", "cifar10.1-v4"):
        card = _zoo_card(name)
        if card is None:
            from cifarb.errors import did_you_mean

            known = [*SOURCES, *(z.strip() for z in ZOO_NAMES.split(","))]
            raise CifarbError(f"unknown name {args.name!r}{did_you_mean(name, known)}; datasets: {DATA_NAMES}; "
                              f"zoo models: {ZOO_NAMES}")
        if args.version:
            raise CifarbError("--version applies to cifar10.1 only")
        return {"fetch": _zoo_fetch, "verify": _zoo_verify, "where": _zoo_where}[args.data_action](card, args)
    source = get_source(name, args.version)
    return {"fetch": _fetch, "verify": _verify, "where": _where}[args.data_action](source, args)


# ------------------------------------------------------------------------------------------ datasets


def _where(source: Any, args: argparse.Namespace) -> int:
    from cifarb.data.download import where_text
    from cifarb.data.root import resolve_root

    sys.stdout.write(where_text(source, resolve_root(args.root)))
    if any(f.size is None for f in source.files):
        print("# SIZE '-': the source publishes no size for that extracted file; its checksum is what is checked")
    return 0


def _verify_summary(checks: list[Any], name: str) -> list[str]:
    """The summary line after the per-file lines, and what to do about mismatches."""
    counts = {s: sum(c.status == s for c in checks) for s in ("OK", "MISMATCH", "MISSING")}
    lines = [f"{name}: {len(checks)} files, " + ", ".join(f"{v} {k}" for k, v in counts.items())
             + (" (verified)" if counts["OK"] == len(checks) else "")]
    if counts["MISMATCH"]:
        lines.append(f"hint: MISMATCH files are not the official ones. A prefix set (the first images of the test "
                     f"set, such as ../shared/data) or another local copy is read by eval/train/make-c only with "
                     f"--trust-local, and results then say data_verified: false; to get the official files: "
                     f"cifarb data fetch {name}")
    if counts["MISSING"]:
        lines.append(f"hint: fetch the missing files with `cifarb data fetch {name}` (or see `cifarb data where {name}`)")
    return lines


def _verify(source: Any, args: argparse.Namespace) -> int:
    from cifarb.data.root import resolve_root
    from cifarb.data.verify import verify_source

    checks = verify_source(source, resolve_root(args.root))
    for c in checks:
        print(c.line())
    for line in _verify_summary(checks, source.name):  # stderr: stdout stays one line per file
        print(line, file=sys.stderr)
    return 0 if all(c.ok for c in checks) else 1


def _fetch(source: Any, args: argparse.Namespace) -> int:
    from cifarb.data.download import OfflineError, fetch
    from cifarb.data.root import resolve_root
    from cifarb.data.verify import verify_source

    root = resolve_root(args.root)
    try:
        fetch(source, root=root, offline=args.offline, progress=args.progress, keep_archive=args.keep_archive,
              **({} if args.deadline is None else {"deadline_s": args.deadline}))
    except OfflineError as exc:
        sys.stdout.write(exc.where_text)
        raise
    checks = verify_source(source, root)
    for c in checks:
        print(c.line())
    return 0 if all(c.ok for c in checks) else 1


# ------------------------------------------------------------------------------------------ zoo weights


def _zoo_where(card: Any, args: argparse.Namespace) -> int:
    from cifarb.models.weights import where_text

    sys.stdout.write(where_text(card))
    return 0


def _zoo_verify(card: Any, args: argparse.Namespace) -> int:
    from cifarb.models.weights import weight_status

    status, path = weight_status(card)
    print(f"{status} {path}")
    return 0 if status == "OK" else 1


def _zoo_fetch(card: Any, args: argparse.Namespace) -> int:
    from cifarb.data.download import DEFAULT_DEADLINE_S
    from cifarb.data.root import is_offline
    from cifarb.errors import CifarbError
    from cifarb.models.fetch import fetch_weights
    from cifarb.models.weights import weight_status, where_text

    status, path = weight_status(card)
    if status == "OK":
        print(f"OK {path}")
        return 0
    if is_offline(args.offline):
        sys.stdout.write(where_text(card))
        raise CifarbError(f"{card.name} weights are {status.lower()} at {path} and offline mode is on "
                          "(--offline or CIFARB_OFFLINE=1); put the file in place as listed above")
    target = fetch_weights(card, progress=args.progress,
                           deadline_s=DEFAULT_DEADLINE_S if args.deadline is None else args.deadline)
    print(f"OK {target}")
    return 0
