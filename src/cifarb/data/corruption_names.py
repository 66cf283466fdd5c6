"""The one message for unknown corruption names (with a did-you-mean), wherever names are accepted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cifarb.data.registry import CIFAR_C_CORRUPTIONS
from cifarb.errors import did_you_mean


def unknown_corruptions(names: Iterable[str], known: Sequence[str] = CIFAR_C_CORRUPTIONS, *,
                        groups: Sequence[str] = (), where: str = "") -> str | None:
    """None when every name is in `known` (or `groups`); else "unknown corruption 'fgo' (did you mean
    'fog'?)[ in WHERE]; choose from: ..." naming each unknown one and the valid names."""
    known = list(known)
    bad = list(dict.fromkeys(str(n) for n in names if n not in known and n not in groups))
    if not bad:
        return None
    hints = ", ".join(f"{n!r}{did_you_mean(n, [*known, *groups])}" for n in bad)
    more = f" (or {', '.join(groups)})" if groups else ""
    where = f" in {where}" if where else ""
    return f"unknown corruption{'s' if len(bad) > 1 else ''} {hints}{where}; choose from: {', '.join(known)}{more}"
