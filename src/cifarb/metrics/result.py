"""The result JSON (cifarb/schemas/result.schema.json): assembly, corruption averaging, and validation against the shipped schema."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from cifarb.errors import CifarbError
from cifarb.metrics import catalog
from cifarb.metrics.frame import thaw

SCHEMA_VERSION = 1

# scalar metrics averaged over corruption x severity pairs (the contract's top-level metrics but the test)
MEAN_SCALARS: tuple[str, ...] = catalog.ESTIMATES

# the corruptions of the paper's loaders: the 19 CIFAR-C files without glass_blur (result contract)
PAPER18: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur", "snow",
    "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)

# per-pair keys that belong to the whole result, not to one corruption x severity pair
_RESULT_LEVEL = ("settings",)


class ResultValidationError(CifarbError, ValueError):
    """A result dict that does not follow the result contract."""


def _version() -> str:
    from cifarb import __version__

    return __version__


def build_result(metric_dict: Mapping[str, Any], *, dataset: str, n_images: int, n_official: int,
                 data_verified: bool, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The full result JSON: header keys, then the metric dict, then `provenance`.

    `metric_dict` is `SubgroupMetrics.to_dict()`, `accuracy_only(...)`, `corruption_metrics(...)` (a
    read-only `CorruptionMetrics`) or `combine_corruptions(...)`; the result holds plain copies of it.
    `provenance` needs "model", "model_sha256" (None when there is no file) and "data_sha256"
    ({file: hex}); extra keys are kept.
    """
    missing = [key for key in ("model", "model_sha256", "data_sha256") if key not in provenance]
    if missing:
        raise ResultValidationError(f"provenance lacks {', '.join(missing)}; give model, model_sha256 and data_sha256")
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "cifarb_version": _version(),
        "dataset": str(dataset),
        "n_images": int(n_images),
        "n_official": int(n_official),
        "data_verified": bool(data_verified),
    }
    result.update(thaw(metric_dict))  # plain, mutable copies, also of a read-only result object
    result["provenance"] = dict(provenance)
    return result


def _mean(values: Iterable[float | None]) -> float | None:
    """Unweighted mean of the defined values; None when none is defined."""
    defined = [float(v) for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def _mean_maps(maps: list[Mapping[str, float | None] | None]) -> dict[str, float | None] | None:
    present = [m for m in maps if m is not None]
    if not present:
        return None
    keys = list(dict.fromkeys(key for m in present for key in m))
    return {key: _mean(m.get(key) for m in present) for key in keys}


def _mean_block(pairs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The average of some pairs' metrics: scalars, class and subgroup accuracies, and the pair count."""
    block: dict[str, Any] = {name: _mean(p.get(name) for p in pairs) for name in MEAN_SCALARS}
    block["p_subgroup_effect"] = None  # a mean over pairs is not one test
    block["subgroup_accuracy"] = _mean_maps([p.get("subgroup_accuracy") for p in pairs])
    block["class_accuracy"] = _mean_maps([p.get("class_accuracy") for p in pairs])
    block["n_pairs"] = len(pairs)
    block["ci95"] = None
    return block


def _mean_cells(pairs: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Cells with their accuracy averaged over pairs; every pair covers the same images, so n agrees."""
    acc: dict[tuple[str, str], list[float]] = {}
    sizes: dict[tuple[str, str], int] = {}
    for pair in pairs:
        for cell in pair.get("cells") or []:
            key = (cell["class"], cell["subgroup"])
            if sizes.setdefault(key, cell["n"]) != cell["n"]:
                raise ResultValidationError(
                    f"cell {key} has {sizes[key]} images in one corruption pair and {cell['n']} in another; "
                    "all pairs must be evaluated on the same images"
                )
            acc.setdefault(key, []).append(cell["accuracy"])
    return [{"class": c, "subgroup": g, "n": sizes[(c, g)], "accuracy": sum(v) / len(v)}
            for (c, g), v in acc.items()]


def normalise_pairs(per_pair: Mapping[str, Mapping[Any, Mapping[str, Any]]]
                    ) -> dict[str, dict[str, Mapping[str, Any]]]:
    """{corruption: {"severity": metrics}} with string severities in increasing order."""
    out: dict[str, dict[str, Mapping[str, Any]]] = {}
    for name, by_sev in per_pair.items():
        try:
            severities = sorted(by_sev, key=int)
        except (TypeError, ValueError):
            raise ResultValidationError(f"severities of {name} must be integers, got {list(by_sev)}") from None
        out[str(name)] = {str(int(s)): by_sev[s] for s in severities}
    if not any(out.values()):
        raise ResultValidationError("no corruption x severity pairs to combine")
    return out


def combine_corruptions(per_pair: Mapping[str, Mapping[Any, Mapping[str, Any]]]) -> dict[str, Any]:
    """The metric part of a -C result from per-pair metric dicts ({corruption: {severity: metrics}}).

    Top-level metrics are the unweighted means over all pairs present; `corruptions[name][severity]`
    keeps each pair's metrics; `corruptions_mean` holds "all", "paper18" (None unless all 18 paper
    corruptions are present, averaged over those 18 only) and "by_severity". Means of CIs are not CIs,
    so the top-level and block `ci95` are None here; `corruption_metrics` fills them from one joint
    resample of the images.
    """
    pairs = normalise_pairs(per_pair)
    flat = [m for by_sev in pairs.values() for m in by_sev.values()]
    first = flat[0]
    all_block = _mean_block(flat)
    paper = [m for name in PAPER18 if name in pairs for m in pairs[name].values()]
    severities = sorted({s for by_sev in pairs.values() for s in by_sev}, key=int)
    by_severity = {s: _mean_block([by_sev[s] for by_sev in pairs.values() if s in by_sev]) for s in severities}

    out: dict[str, Any] = {name: all_block[name] for name in MEAN_SCALARS}
    out["p_subgroup_effect"] = None
    out["subgroup_accuracy"] = all_block["subgroup_accuracy"]
    out["class_accuracy"] = all_block["class_accuracy"]
    out["cells"] = _mean_cells(flat)
    out["ci95"] = None
    out["class_accuracy_ci95"] = None
    out["subgroup_accuracy_ci95"] = None
    if "settings" in first:
        out["settings"] = dict(first["settings"])
    out["corruptions"] = {
        name: {s: {key: value for key, value in m.items() if key not in _RESULT_LEVEL} for s, m in by_sev.items()}
        for name, by_sev in pairs.items()
    }
    out["corruptions_mean"] = {
        "all": all_block,
        "paper18": _mean_block(paper) if all(name in pairs for name in PAPER18) else None,
        "by_severity": by_severity,
    }
    return out


def load_schema() -> dict[str, Any]:
    """The shipped JSON Schema of the result contract."""
    text = resources.files("cifarb").joinpath("schemas", "result.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _intervals(result: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    """Every [lo, hi] interval in a result, with a readable location."""

    def from_block(where: str, block: Mapping[str, Any] | None) -> Iterable[tuple[str, Any]]:
        if not block:
            return
        for key in ("ci95", "class_accuracy_ci95", "subgroup_accuracy_ci95"):
            for name, interval in (block.get(key) or {}).items():
                yield f"{where}{key}.{name}", interval

    yield from from_block("", result)
    for name, by_sev in (result.get("corruptions") or {}).items():
        for sev, block in by_sev.items():
            yield from from_block(f"corruptions.{name}.{sev}.", block)
    means = result.get("corruptions_mean") or {}
    yield from from_block("corruptions_mean.all.", means.get("all"))
    yield from from_block("corruptions_mean.paper18.", means.get("paper18"))
    for sev, block in (means.get("by_severity") or {}).items():
        yield from from_block(f"corruptions_mean.by_severity.{sev}.", block)


def validate_result(result: Mapping[str, Any]) -> None:
    """Raise ResultValidationError unless `result` follows the result contract.

    Checks the shipped JSON Schema, that the value is strict JSON (no NaN or infinity: undefined
    values are null), and that every interval has lo <= hi. Needs `jsonschema` (the test extra).
    """
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema is in the test extra
        raise CifarbError("validating results needs jsonschema: pip install 'cifarb[test]'") from None
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ResultValidationError(f"result is not strict JSON ({exc}); undefined values must be null") from None
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = list(validator.iter_errors(result))
    if errors:
        # best_match looks inside oneOf/anyOf for the most specific failure
        first = jsonschema.exceptions.best_match(errors)
        where = "/".join(map(str, first.absolute_path)) or "(top level)"
        message = first.message if len(first.message) <= 200 else first.message[:200] + "..."
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ResultValidationError(f"result does not follow the contract at {where}: {message}{more}")
    for where, interval in _intervals(result):
        if interval is not None and not (math.isfinite(interval[0]) and interval[0] <= interval[1]):
            raise ResultValidationError(f"result interval {where} = {interval} does not satisfy lo <= hi")
