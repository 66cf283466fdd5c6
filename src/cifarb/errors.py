"""Exceptions that the CLI turns into one clear message and an exit status, never a traceback."""

from __future__ import annotations


class CifarbError(Exception):
    """A user error (bad file, bad value, missing data): exit status 1.

    The message should name the file or value at fault and say how to fix it.
    """

    exit_code = 1


class UsageError(CifarbError):
    """A usage error (conflicting or invalid flags): exit status 2, like argparse."""

    exit_code = 2


def did_you_mean(name: str, options: object) -> str:
    """" (did you mean 'x'?)" for the closest of `options` to a mistyped `name`, else ""."""
    import difflib

    name = str(name).lower()
    close = difflib.get_close_matches(name, [str(o) for o in options], n=5, cutoff=0.6)  # type: ignore[attr-defined]
    if not close:
        return ""
    # among equally close names prefer one the typed name begins (resnet2 -> resnet20, not resnet32)
    top = difflib.SequenceMatcher(None, name, close[0]).ratio()
    tied = [c for c in close if difflib.SequenceMatcher(None, name, c).ratio() == top]
    best = next((c for c in tied if c.startswith(name)), close[0])
    return f" (did you mean {best!r}?)"
