"""The metric catalogue: each contract metric's name, meaning, direction, kind and format, read from catalog.toml.

Tables, reports, `cifarb compare`, trackers and the result schema take what a metric is from here
instead of writing it out again (as torchmetrics declares a metric's semantics once on the metric).
Standard library only, so every layer can read it.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

DIRECTIONS = ("higher", "lower", "none")
KINDS = ("accuracy", "extreme", "discrepancy", "floor", "test")
FORMATS = ("percent", "points", "p-value")
_FIELDS = {"key": str, "label": str, "meaning": str, "direction": str, "kind": str, "format": str, "digits": int,
           "ci95": bool, "subgroups": bool, "defined": bool, "required": bool}


@dataclass(frozen=True)
class Metric:
    """One scalar metric of the result contract (field meanings: the comments at the top of catalog.toml)."""

    key: str
    label: str
    meaning: str
    direction: str
    kind: str
    format: str
    digits: int
    ci95: bool
    subgroups: bool
    defined: bool
    required: bool
    verdict: int | None = None

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower"

    @property
    def scale(self) -> int:
        """Factor from the stored value to the shown one: 100 for fractions shown in percent, 1 for a p-value."""
        return 1 if self.format == "p-value" else 100

    def text(self, value: float | None, digits: int = 2) -> str:
        """The value as shown in its format (percent, signed points, or a p-value as is), without the unit;
        an em dash when undefined."""
        if value is None:
            return "—"
        if self.format == "points":
            return f"{100 * value:+.{digits}f}"
        return f"{self.scale * value:.{digits}f}"

    @property
    def nullable(self) -> bool:
        """Whether a result may hold null for it (no subgroups, or not always defined)."""
        return self.subgroups or not self.defined


def _parse(raw: Mapping[str, Any]) -> tuple[tuple[Metric, ...], dict[str, tuple[str, ...]]]:
    """Metrics and views from the parsed TOML; ValueError naming the entry on any malformed field."""
    metrics = []
    for i, entry in enumerate(raw.get("metric", [])):
        where = f"catalog.toml metric #{i + 1} ({entry.get('key', '?')})"
        unknown = set(entry) - set(_FIELDS) - {"verdict"}
        if unknown:
            raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
        for name, typ in _FIELDS.items():
            if not isinstance(entry.get(name), typ):
                raise ValueError(f"{where}: {name} must be a {typ.__name__}")
        for name, allowed in (("direction", DIRECTIONS), ("kind", KINDS), ("format", FORMATS)):
            if entry[name] not in allowed:
                raise ValueError(f"{where}: {name} {entry[name]!r} is not one of {allowed}")
        metrics.append(Metric(**entry))
    keys = [m.key for m in metrics]
    if len(set(keys)) != len(keys):
        raise ValueError("catalog.toml declares a metric twice")
    ranks = [m.verdict for m in metrics if m.verdict is not None]
    if len(set(ranks)) != len(ranks):
        raise ValueError("catalog.toml: two metrics share a verdict rank")
    views = {}
    for name, members in raw.get("views", {}).items():
        stray = [k for k in members if k not in keys]
        if stray:
            raise ValueError(f"catalog.toml view {name!r} names unknown metrics {stray}")
        views[name] = tuple(members)
    return tuple(metrics), views


def _load() -> tuple[tuple[Metric, ...], dict[str, tuple[str, ...]]]:
    text = resources.files("cifarb.metrics").joinpath("catalog.toml").read_text(encoding="utf-8")
    return _parse(tomllib.loads(text))


METRICS, VIEWS = _load()
BY_KEY: Mapping[str, Metric] = {m.key: m for m in METRICS}
KEYS: tuple[str, ...] = tuple(BY_KEY)


def keys(**where: Any) -> tuple[str, ...]:
    """Metric keys in catalogue order whose fields equal the given values, e.g. `keys(ci95=True)`."""
    unknown = set(where) - set(_FIELDS) - {"verdict"}
    if unknown:
        raise TypeError(f"keys() got unknown fields {sorted(unknown)}")
    return tuple(m.key for m in METRICS if all(getattr(m, f) == v for f, v in where.items()))


def view(name: str) -> tuple[str, ...]:
    """The keys one output lists, in its order (catalog.toml [views])."""
    return VIEWS[name]


# frequently used selections
CI_KEYS: tuple[str, ...] = keys(ci95=True)  # the metrics with a 95 % interval under ci95, in contract order
SUBGROUP_KEYS: tuple[str, ...] = keys(subgroups=True)  # null without subgroup labels (CIFAR-10.1)
ESTIMATES: tuple[str, ...] = tuple(m.key for m in METRICS if m.kind != "test")  # averaged over corruption pairs
LOWER_IS_BETTER: frozenset[str] = frozenset(keys(direction="lower"))
VERDICT_ORDER: tuple[str, ...] = tuple(m.key for m in sorted((m for m in METRICS if m.verdict), key=lambda m: m.verdict))


# --- the result schema's metric parts ---------------------------------------------------------------------
def _value_schema(m: Metric) -> dict[str, Any]:
    if m.format == "points":
        return {"type": ["number", "null"] if m.nullable else "number", "minimum": -1, "maximum": 1}
    return {"$ref": "#/$defs/fractionOrNull" if m.nullable else "#/$defs/fraction"}


def _description(m: Metric) -> str:
    return m.meaning + ("" if m.required else " (absent in older results)")


def _splice(old: Any, new: Mapping[str, Any] | Sequence[str]) -> Any:
    """`old` (a dict or list) with its catalogue metrics replaced by `new`, placed where the first metric was."""
    is_dict = isinstance(old, dict)
    items = list(old.items()) if is_dict else list(old)
    name = (lambda item: item[0]) if is_dict else (lambda item: item)
    at = next((i for i, item in enumerate(items) if name(item) in BY_KEY), len(items))
    kept = [item for item in items if name(item) not in BY_KEY]
    before = sum(1 for item in items[:at] if name(item) not in BY_KEY)
    fresh = list(new.items()) if is_dict else list(new)
    merged = kept[:before] + fresh + kept[before:]
    return dict(merged) if is_dict else merged


def schema_with_catalog(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The result schema with every part that lists metrics rebuilt from the catalogue; all else kept.

    Rebuilt: the top-level `required`, `$defs.scalars`, `$defs.ci95`, `$defs.subgroupScalarsDefined`
    and the CIFAR-10.1 branch (`then`) that nulls the subgroup metrics. scripts/sync_result_schema.py
    writes the result back; a test checks the shipped schema is unchanged by it.
    """
    out = copy.deepcopy(dict(schema))
    required = keys(required=True)
    out["required"] = _splice(out["required"], required)
    defs = out["$defs"]
    scalars = defs["scalars"]
    scalars["required"] = list(required)
    scalars["properties"] = {m.key: {**_value_schema(m), "description": _description(m)} for m in METRICS}
    ci = defs["ci95"]["oneOf"][0]
    ci["required"] = [k for k in CI_KEYS if BY_KEY[k].required]
    ci["properties"] = {k: {"$ref": "#/$defs/signedIntervalOrNull" if BY_KEY[k].format == "points"
                            else "#/$defs/intervalOrNull"} for k in CI_KEYS}
    defined = defs["subgroupScalarsDefined"]
    defined["properties"] = _splice(defined["properties"],
                                    {k: {"type": "number"} for k in keys(subgroups=True, defined=True)})
    then = out["then"]["properties"]
    nulls = {k: {"type": "null"} for k in SUBGROUP_KEYS}
    out["then"]["properties"] = _splice(then, nulls)
    ci_null = out["then"]["properties"]["ci95"]["oneOf"][1]
    ci_null["properties"] = {k: {"type": "null"} for k in CI_KEYS if BY_KEY[k].subgroups}
    return out
