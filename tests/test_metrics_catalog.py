"""The metric catalogue (metrics/catalog.toml) and the result schema agree, and the outputs read the catalogue."""

from __future__ import annotations

import importlib.util
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from cifarb.metrics import catalog, compute_metrics, load_schema
from cifarb.metrics.catalog import BY_KEY, CI_KEYS, KEYS, METRICS

REPO = Path(__file__).resolve().parents[1]
SCHEMA = load_schema()
DEFS = SCHEMA["$defs"]


def _resolve(node: dict) -> dict:
    """Follow one local $ref (the schema's metric properties use at most one), keeping sibling keys."""
    if "$ref" not in node:
        return node
    target = DEFS[node["$ref"].removeprefix("#/$defs/")]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _types(node: dict) -> set[str]:
    t = _resolve(node)["type"]
    return {t} if isinstance(t, str) else set(t)


def test_every_catalogue_metric_is_a_schema_property_of_the_right_type():
    props = DEFS["scalars"]["properties"]
    for m in METRICS:
        assert m.key in props, f"{m.key} is in the catalogue but not a schema scalar"
        node = _resolve(props[m.key])
        assert "number" in _types(props[m.key])
        assert ("null" in _types(props[m.key])) == m.nullable, m.key
        lo = -1 if m.format == "points" else 0
        assert (node["minimum"], node["maximum"]) == (lo, 1), m.key


def test_every_schema_metric_is_in_the_catalogue():
    assert set(DEFS["scalars"]["properties"]) == set(KEYS)
    assert set(DEFS["scalars"]["required"]) == {m.key for m in METRICS if m.required}
    top = set(SCHEMA["required"])
    assert {m.key for m in METRICS if m.required} <= top
    assert not {m.key for m in METRICS if not m.required} & top  # optional so that older results validate


def test_ci95_keys_agree():
    ci = DEFS["ci95"]["oneOf"][0]
    assert set(ci["properties"]) == set(CI_KEYS)
    assert set(ci["required"]) == {k for k in CI_KEYS if BY_KEY[k].required}
    for key, node in ci["properties"].items():
        items = _resolve(node)["oneOf"][0]
        items = _resolve(items)["items"]
        assert items["minimum"] == (-1 if BY_KEY[key].format == "points" else 0), key


def test_subgroup_metrics_are_null_without_subgroups_and_defined_with_them():
    then = SCHEMA["then"]["properties"]
    assert {k for k, v in then.items() if v == {"type": "null"} and k in BY_KEY} == set(catalog.SUBGROUP_KEYS)
    ci_null = then["ci95"]["oneOf"][1]["properties"]
    assert set(ci_null) == {k for k in CI_KEYS if BY_KEY[k].subgroups}
    defined = DEFS["subgroupScalarsDefined"]["properties"]
    assert {k for k in defined if k in BY_KEY} == {m.key for m in METRICS if m.subgroups and m.defined}


def test_the_shipped_schema_is_what_the_sync_script_writes():
    spec = importlib.util.spec_from_file_location("sync_result_schema", REPO / "scripts" / "sync_result_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.SCHEMA.read_text(encoding="utf-8")
    assert module.render(text) == text, "run: PYTHONPATH=src python scripts/sync_result_schema.py"


def test_catalogue_matches_what_compute_metrics_returns():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    g = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.7, y, rng.integers(0, 3, 300))
    out = compute_metrics(y, p, g, bootstrap=20, seed=0, min_cell_size_worst=1, permutations=9).to_dict()
    assert set(KEYS) <= set(out)
    assert list(out["ci95"]) == list(CI_KEYS)  # contract order too
    for key in KEYS:
        if BY_KEY[key].defined:
            assert isinstance(out[key], float), key


def test_derived_selections():
    assert catalog.LOWER_IS_BETTER == {"macro_std", "macro_std_debiased", "macro_std_excess", "subgroup_gap"}
    assert catalog.VERDICT_ORDER == ("macro_std_debiased", "macro_std_excess")
    assert catalog.keys(kind="accuracy") == ("accuracy", "mean_cell_accuracy")
    assert catalog.ESTIMATES == tuple(k for k in KEYS if k != "p_subgroup_effect")
    assert set(catalog.view("compare")) == set(CI_KEYS)
    with pytest.raises(TypeError):
        catalog.keys(colour="red")


def test_malformed_catalogue_entries_are_named():
    raw = tomllib.loads((REPO / "src" / "cifarb" / "metrics" / "catalog.toml").read_text(encoding="utf-8"))
    bad = json.loads(json.dumps(raw))
    bad["metric"][2]["direction"] = "up"
    with pytest.raises(ValueError, match=r"#3 \(macro_std_null\): direction 'up'"):
        catalog._parse(bad)
    bad = json.loads(json.dumps(raw))
    bad["metric"][0]["colour"] = "red"
    with pytest.raises(ValueError, match="unknown fields"):
        catalog._parse(bad)
    bad = json.loads(json.dumps(raw))
    bad["views"]["compare"].append("nope")
    with pytest.raises(ValueError, match="unknown metrics"):
        catalog._parse(bad)
    bad = json.loads(json.dumps(raw))
    bad["metric"].append(bad["metric"][0])
    with pytest.raises(ValueError, match="twice"):
        catalog._parse(bad)


def test_engine_computes_every_ci_metric_but_the_derived_excess():
    from cifarb.metrics import _engine

    # the excess is MacroStd minus its floor, so the engine's replicates carry the rest
    assert _engine.SCALAR_METRICS == tuple(k for k in CI_KEYS if k != "macro_std_excess")


def test_text_follows_the_format():
    assert BY_KEY["accuracy"].text(0.91234) == "91.23"
    assert BY_KEY["macro_std_excess"].text(0.0123) == "+1.23"
    assert BY_KEY["macro_std_excess"].text(-0.0123, 1) == "-1.2"
    assert BY_KEY["p_subgroup_effect"].text(0.0421, 3) == "0.042"
    assert BY_KEY["worst_cell_accuracy"].text(None) == "—"


def test_outputs_list_only_catalogue_metrics_with_catalogue_semantics():
    from cifarb.metrics.display import HEADLINE
    from cifarb.report import compare, tables

    assert HEADLINE == tuple((m.key, m.label) for m in METRICS)
    for col in tables.METRICS:  # the report's hand layout: headers only, the rest from the catalogue
        assert col.field in BY_KEY, col
        assert (col.digits, col.scale) == (BY_KEY[col.field].digits, BY_KEY[col.field].scale)
        assert not col.has_ci or BY_KEY[col.field].ci95
    assert tables.BY_KEY["p_subgroup_effect"].scale == 1
    assert compare.COMPARED == catalog.view("compare")
    assert compare.PRIMARY == catalog.VERDICT_ORDER
