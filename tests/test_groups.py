"""`cifarb metrics --groups`: the three metadata layouts joined and scored, and every join error."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from cifarb.cli import main
from cifarb.data.groups import read_groups, wilds_groups
from cifarb.metrics import validate_result


def direct(labels, preds, groups):
    """Plain-Python metrics: cells, class/subgroup accuracy and MacroStd by the DESIGN.md formula."""
    cells = defaultdict(lambda: [0, 0])
    for y, p, g in zip(labels, preds, groups):
        cells[(y, g)][0] += 1
        cells[(y, g)][1] += int(y == p)
    by_class = defaultdict(list)
    for (y, _g), (n, k) in cells.items():
        by_class[y].append((n, k / n))
    sds = []
    for parts in by_class.values():
        n_c = sum(n for n, _ in parts)
        m = sum(n * a for n, a in parts) / n_c
        sds.append(math.sqrt(sum(n / n_c * (a - m) ** 2 for n, a in parts)))
    sub = defaultdict(lambda: [0, 0])
    for y, p, g in zip(labels, preds, groups):
        sub[g][0] += 1
        sub[g][1] += int(y == p)
    return {
        "accuracy": float(np.mean(np.asarray(labels) == np.asarray(preds))),
        "cells": {key: (n, k / n) for key, (n, k) in cells.items()},
        "subgroup_accuracy": {g: k / n for g, (n, k) in sub.items()},
        "macro_std": sum(sds) / len(sds),
    }


def run_json(tmp_path, *argv):
    out = tmp_path / "r.json"
    rc = main(["metrics", *map(str, argv), "--json", str(out), "--bootstrap", "50"])
    assert rc == 0
    result = json.loads(out.read_text())
    validate_result(result)
    return result


def check_against(result, labels, preds, groups, class_names, group_names):
    want = direct([class_names[y] for y in labels], [class_names[p] for p in preds],
                  [group_names[g] for g in groups])
    assert result["accuracy"] == pytest.approx(want["accuracy"])
    assert result["macro_std"] == pytest.approx(want["macro_std"])
    got = {(c["class"], c["subgroup"]): (c["n"], c["accuracy"]) for c in result["cells"]}
    assert got.keys() == want["cells"].keys()
    for key, (n, a) in want["cells"].items():
        assert got[key][0] == n and got[key][1] == pytest.approx(a)
    present = {k: v for k, v in result["subgroup_accuracy"].items() if v is not None}
    assert present == pytest.approx(want["subgroup_accuracy"])


@pytest.fixture
def sample():
    rng = np.random.default_rng(3)
    n = 400
    labels = rng.integers(0, 3, n)
    groups = rng.integers(0, 4, n)
    p_right = np.array([0.9, 0.6, 0.75, 0.5])[groups]
    preds = np.where(rng.random(n) < p_right, labels, (labels + 1) % 3)
    return labels, groups, preds


def test_groups_csv_with_index_joined_and_scored(tmp_path, sample):
    labels, groups, preds = sample
    ids = np.arange(1000, 1000 + labels.size)
    pd.DataFrame({"index": ids, "label": labels, "group": groups}).to_csv(tmp_path / "mygroups.csv", index=False)
    keep = np.random.default_rng(0).permutation(labels.size)[:300]  # a subset, in any order
    pd.DataFrame({"index": ids[keep], "prediction": preds[keep], "label": labels[keep]}).to_csv(
        tmp_path / "p.csv", index=False)
    result = run_json(tmp_path, tmp_path / "p.csv", "--groups", tmp_path / "mygroups.csv")
    assert result["dataset"] == "mygroups" and result["n_images"] == 300 and result["n_official"] == labels.size
    assert result["data_verified"] is True
    assert result["provenance"]["groups"]["format"] == "groups"
    assert str(tmp_path / "mygroups.csv") in result["provenance"]["data_sha256"]
    names = [str(i) for i in range(4)]
    check_against(result, labels[keep], preds[keep], groups[keep], ["0", "1", "2"], names)


def test_groups_parquet_with_string_labels_ids_and_name_columns(tmp_path, sample):
    labels, groups, preds = sample
    animals = np.array(["dog", "cat", "emu"])  # factorised in sorted order: cat, dog, emu
    colour = np.array(["red", "blue", "green", "amber"])
    ids = np.array([f"s{i:04d}" for i in range(labels.size)])
    df = pd.DataFrame({"id": ids, "label": animals[labels], "group": colour[groups],
                       "group_name": np.char.upper(colour[groups].astype(str))})
    df.to_parquet(tmp_path / "g.parquet")
    pd.DataFrame({"id": ids, "prediction": animals[preds]}).to_parquet(tmp_path / "p.parquet")
    result = run_json(tmp_path, tmp_path / "p.parquet", "--groups", tmp_path / "g.parquet", "--name", "zoo")
    assert result["dataset"] == "zoo" and result["n_images"] == labels.size
    assert list(result["class_accuracy"]) == ["cat", "dog", "emu"]
    assert result["settings"]["subgroup_names"] == ["AMBER", "BLUE", "GREEN", "RED"]
    table = read_groups(tmp_path / "g.parquet")
    assert table.class_names == ["cat", "dog", "emu"] and table.labels_are_names
    sorted_animals = sorted(animals)
    check_against(result, [sorted_animals.index(a) for a in animals[labels]],
                  [sorted_animals.index(a) for a in animals[preds]],
                  [sorted(colour).index(c) for c in colour[groups]], sorted_animals,
                  [c.upper() for c in sorted(colour)])


def subpop(tmp_path, sample):
    labels, groups, preds = sample
    split = np.arange(labels.size) % 3
    files = np.array([f"img/{i}.jpg" for i in range(labels.size)])
    pd.DataFrame({"id": np.arange(labels.size), "filename": files, "split": split, "y": labels,
                  "a": groups % 2}).to_csv(tmp_path / "metadata.csv", index=False)
    return files, split


def test_subpopbench_metadata_default_test_split_and_val(tmp_path, sample):
    labels, groups, preds = sample
    files, split = subpop(tmp_path, sample)
    test = split == 2
    pd.DataFrame({"filename": files[test], "prediction": preds[test]}).to_csv(tmp_path / "p.csv", index=False)
    result = run_json(tmp_path, tmp_path / "p.csv", "--groups", tmp_path / "metadata.csv")
    assert result["n_official"] == int(test.sum()) and result["n_images"] == int(test.sum())
    assert result["provenance"]["groups"] == {"format": "subpopbench", "key": "filename", "split": "test"}
    check_against(result, labels[test], preds[test], groups[test] % 2, ["0", "1", "2"], ["0", "1"])
    val = split == 1
    np.save(tmp_path / "val.npy", preds[val])  # one id per row of the split, in file order
    result = run_json(tmp_path, tmp_path / "val.npy", "--groups", tmp_path / "metadata.csv", "--split", "1")
    assert result["n_official"] == int(val.sum()) and result["provenance"]["groups"]["split"] == "val"
    check_against(result, labels[val], preds[val], groups[val] % 2, ["0", "1", "2"], ["0", "1"])


def test_subpopbench_without_a_split_column_scores_every_row(tmp_path, sample):
    labels, groups, preds = sample
    files = np.array([f"{i}.png" for i in range(labels.size)])
    pd.DataFrame({"filename": files, "y": labels, "a": groups}).to_parquet(tmp_path / "meta.parquet")
    pd.DataFrame({"filename": files[::-1], "prediction": preds[::-1]}).to_csv(tmp_path / "p.csv", index=False)
    result = run_json(tmp_path, tmp_path / "p.csv", "--groups", tmp_path / "meta.parquet")
    assert result["n_official"] == labels.size and "split" not in result["provenance"]["groups"]
    check_against(result, labels, preds, groups, ["0", "1", "2"], [str(i) for i in range(4)])


def grouper(meta, fields):
    """WILDS CombinatorialGrouper, re-derived: cardinality = max + 1, first field least significant."""
    out = []
    for row in meta:
        gid, factor = 0, 1
        for j in fields:
            gid += int(row[j]) * factor
            factor *= int(meta[:, j].max()) + 1
        out.append(gid)
    return np.array(out)


def test_wilds_metadata_group_by_in_combinatorial_grouper_order(tmp_path, sample):
    labels, groups, preds = sample
    rng = np.random.default_rng(9)
    site = rng.integers(0, 3, labels.size)
    bg = groups % 2
    meta = np.stack([site, bg, labels], axis=1)
    np.savez(tmp_path / "wilds.npz", metadata_array=meta, metadata_fields=np.array(["site", "bg", "y"]))
    pd.DataFrame({"index": np.arange(labels.size), "prediction": preds}).to_csv(tmp_path / "p.csv", index=False)
    result = run_json(tmp_path, tmp_path / "p.csv", "--groups", tmp_path / "wilds.npz", "--group-by", "bg,site")
    want = grouper(meta, [1, 0])
    names = [f"bg={g % 2},site={g // 2}" for g in range(6)]
    assert result["settings"]["subgroup_names"] == names
    check_against(result, labels, preds, want, ["0", "1", "2"], names)
    ids, got_names = wilds_groups(pd.DataFrame({"bg": bg, "site": site}), ["bg", "site"], tmp_path)
    assert np.array_equal(ids, want) and got_names == names
    # the same metadata as a CSV with string fields: factorised in sorted order, then the same radix
    pd.DataFrame({"y": labels, "site": np.array(["x", "y", "z"])[site], "bg": bg}).to_csv(
        tmp_path / "wilds.csv", index=False)
    again = run_json(tmp_path, tmp_path / "p.csv", "--groups", tmp_path / "wilds.csv", "--group-by", "bg,site")
    assert again["cells"] == [
        {**c, "subgroup": c["subgroup"].replace("site=0", "site=x").replace("site=1", "site=y")
         .replace("site=2", "site=z")} for c in result["cells"]]


def metric_frame_by_group(y_true, y_pred, sensitive):
    """What fairlearn's MetricFrame(metrics=accuracy_score, ..., sensitive_features=...).by_group holds:
    accuracy per unique combination of the sensitive features (computed here without fairlearn)."""
    frame = pd.DataFrame({"t": y_true, "p": y_pred, **{f"s{i}": s for i, s in enumerate(sensitive)}})
    keys = [f"s{i}" for i in range(len(sensitive))]
    out = {}
    for key, part in frame.groupby(keys):
        out[key if len(keys) > 1 else key[0]] = ((part["t"] == part["p"]).mean(), len(part))
    return out


def test_cells_and_subgroups_match_fairlearn_metricframe(tmp_path, sample):
    labels, groups, preds = sample
    names = np.array(["l0", "l1", "l2"])
    gnames = np.array(["g0", "g1", "g2", "g3"])
    pd.DataFrame({"index": np.arange(labels.size), "label": names[labels], "group": gnames[groups]}).to_csv(
        tmp_path / "g.csv", index=False)
    pd.DataFrame({"index": np.arange(labels.size), "prediction": names[preds]}).to_csv(tmp_path / "p.csv", index=False)
    result = run_json(tmp_path, tmp_path / "p.csv", "--groups", tmp_path / "g.csv")
    by_cell = metric_frame_by_group(names[labels], names[preds], [names[labels], gnames[groups]])
    got = {(c["class"], c["subgroup"]): (c["accuracy"], c["n"]) for c in result["cells"]}
    assert got.keys() == by_cell.keys()
    for key, (acc, n) in by_cell.items():
        assert got[key] == (pytest.approx(acc), n)
    by_group = metric_frame_by_group(names[labels], names[preds], [gnames[groups]])
    assert result["subgroup_accuracy"] == pytest.approx({g: acc for g, (acc, _) in by_group.items()})
    overall = metric_frame_by_group(names[labels], names[preds], [np.zeros(labels.size)])[0.0][0]
    assert result["accuracy"] == pytest.approx(overall)


def write(path, text):
    path.write_text(text)
    return path


GROUPS = "index,label,group\n0,0,0\n1,1,0\n2,0,1\n3,1,1\n"
JOIN_ERRORS = [
    ("unknown id", GROUPS, "index,prediction\n0,0\n9,1\n", [], "not in"),
    ("duplicate prediction", GROUPS, "index,prediction\n0,0\n0,1\n", [], "appears 2 times"),
    ("duplicate groups row", GROUPS + "3,0,0\n", "index,prediction\n0,0\n", [], "appears 2 times"),
    ("labels disagree", GROUPS, "index,prediction,label\n0,0,0\n1,1,0\n", [], "label disagrees"),
    ("wrong key column", GROUPS, "id,prediction\n0,0\n", [], "joined on 'index'"),
    ("no layout", "a,b\n1,2\n", "index,prediction\n0,0\n", [], "match no known layout"),
    ("groups without key", "label,group\n0,0\n", "index,prediction\n0,0\n", [], "'index' or 'id'"),
    ("empty label", "index,label,group\n0,,0\n1,1,0\n", "index,prediction\n0,0\n", [], "empty at row 0"),
    ("empty groups file", "index,label,group\n", "index,prediction\n0,0\n", [], "no rows"),
    ("npy length", GROUPS, None, [], "one class id per row"),
    ("unknown class name", "index,label,group\n0,cat,a\n1,dog,b\n", "index,prediction\n0,cow\n", [],
     "not a class of"),
    ("non-integer prediction", GROUPS, "index,prediction\n0,0.5\n", [], "not a class id"),
    ("two names for one id", "index,label,group,class_name\n0,0,0,a\n1,0,1,b\n", "index,prediction\n0,0\n", [],
     "several names"),
    ("empty split", "filename,y,a,split\nf0,0,0,0\nf1,1,1,1\n", "filename,prediction\nf0,0\n", [],
     "no rows with split test"),
]


@pytest.mark.parametrize("what, groups, preds, extra, match", JOIN_ERRORS, ids=[e[0] for e in JOIN_ERRORS])
def test_join_errors_are_one_clear_message(tmp_path, capsys, what, groups, preds, extra, match):
    g = write(tmp_path / "g.csv", groups)
    if preds is None:
        p = tmp_path / "p.npy"
        np.save(p, np.zeros(3, dtype=int))
    else:
        p = write(tmp_path / "p.csv", preds)
    out = tmp_path / "r.json"
    assert main(["metrics", str(p), "--groups", str(g), "--json", str(out), *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cifarb: error: ") and match in err and "Traceback" not in err
    assert err.count("\n") == 1 and not out.exists()


USAGE_ERRORS = [
    (["--dataset", "cifar10-b", "--groups", "g.csv"], "not both"),
    ([], "give --dataset"),
    (["--groups", "g.csv", "--split", "test"], "no 'split' column"),
    (["--groups", "g.csv", "--group-by", "site"], "no field 'site'"),
    (["--groups", "g.csv", "--name", "cifar10"], "reserved"),
    (["--dataset", "cifar10-b", "--name", "x"], "apply to --groups only"),
    (["--dataset", "cifar10-b", "--predictions", "coarse"], "cifar100-super only"),
    (["--groups", "g.csv", "--subgroup-names", "a,b"], "group_name column"),
]


@pytest.mark.parametrize("argv, match", USAGE_ERRORS, ids=[m for _, m in USAGE_ERRORS])
def test_usage_errors_exit_2(tmp_path, capsys, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "g.csv", GROUPS)
    write(tmp_path / "p.csv", "index,prediction\n0,0\n")
    assert main(["metrics", "p.csv", *argv]) == 2
    assert match in capsys.readouterr().err


def test_wilds_split_keeps_the_whole_files_cardinalities(tmp_path, sample):
    labels, groups, preds = sample
    site = np.arange(labels.size) % 3
    split = np.where(site == 2, 0, 2)  # site 2 never occurs in the test split
    meta = np.stack([site, groups % 2, labels], axis=1)
    pd.DataFrame({"site": site, "bg": groups % 2, "y": labels, "split": split}).to_csv(tmp_path / "m.csv", index=False)
    test = split == 2
    pd.DataFrame({"index": np.flatnonzero(test), "prediction": preds[test]}).to_csv(tmp_path / "p.csv", index=False)
    result = run_json(tmp_path, tmp_path / "p.csv", "--groups", tmp_path / "m.csv", "--group-by", "site,bg",
                      "--split", "test")
    names = [f"site={g % 3},bg={g // 3}" for g in range(6)]
    assert result["settings"]["subgroup_names"] == names  # as WILDS numbers them over the whole dataset
    assert result["n_official"] == int(test.sum()) and result["provenance"]["groups"]["split"] == "test"
    check_against(result, labels[test], preds[test], grouper(meta, [0, 1])[test], ["0", "1", "2"], names)
    # a row of another split is not a sample of this one
    pd.DataFrame({"index": [int(np.flatnonzero(~test)[0])], "prediction": [0]}).to_csv(tmp_path / "q.csv",
                                                                                     index=False)
    assert main(["metrics", str(tmp_path / "q.csv"), "--groups", str(tmp_path / "m.csv"), "--group-by",
                 "site,bg", "--split", "test"]) == 1
