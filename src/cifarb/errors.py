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

    close = difflib.get_close_matches(str(name).lower(), [str(o) for o in options], n=1, cutoff=0.6)  # type: ignore[attr-defined]
    return f" (did you mean {close[0]!r}?)" if close else ""
