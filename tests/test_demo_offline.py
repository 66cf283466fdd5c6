"""`cifarb demo`: fully offline, prints the subgroup table and MacroStd, writes a self-contained HTML report."""

from __future__ import annotations

import json
import re
import socket

import pytest

from cifarb.cli import main
from cifarb.metrics import validate_result


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Any connection attempt fails, and no data root holds anything: the demo must need neither."""

    def refuse(*args, **kwargs):
        raise AssertionError("the demo tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("CIFARB_DATA", str(tmp_path / "empty-data-root"))
    monkeypatch.setenv("CIFARB_OFFLINE", "1")


def test_demo_offline_table_and_self_contained_report(no_network, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    assert result["dataset"] == "cifar10-b" and result["n_images"] == 1017 and result["data_verified"] is False
    assert 0.89 <= result["accuracy"] <= 0.95
    assert result["provenance"]["model"] == "resnet20"

    macro_lines = [line for line in printed.splitlines() if re.match(r"MacroStd\s+\d", line)]
    assert len(macro_lines) == 1, printed
    line = macro_lines[0]
    lo, hi = result["ci95"]["macro_std"]
    assert re.search(rf"MacroStd\s+{100 * result['macro_std']:.2f} %\s+\[{100 * lo:.2f}, {100 * hi:.2f}\]", line), line
    assert f"noise floor {100 * result['macro_std_null']:.2f} %" in line
    assert f"excess {100 * result['macro_std_excess']:.2f} %" in line
    d_line = [x for x in printed.splitlines() if x.startswith("MacroStd debiased")]
    lo, hi = result["ci95"]["macro_std_debiased"]
    assert len(d_line) == 1 and f"{100 * result['macro_std_debiased']:.2f} %  [{100 * lo:.2f}, {100 * hi:.2f}]" in d_line[0]
    assert f"p(no subgroup effect) = {result['p_subgroup_effect']:.3f}" in d_line[0]
    # no printed interval excludes its own estimate
    pairs = re.findall(r"(-?\d+\.\d+) %\s+\[(-?\d+\.\d+), (-?\d+\.\d+)\]", printed)
    assert len(pairs) >= 15
    for value, low, high in pairs:
        assert float(low) <= float(value) <= float(high), (value, low, high)
    assert "consider --min-cell-size-worst 30" in printed  # most of the sample's cells hold < 10 images
    worst = [x for x in printed.splitlines() if x.startswith("worst cell")]
    assert len(worst) == 1 and f"{100 * result['worst_cell_accuracy']:.2f} %" in worst[0]
    assert re.search(r"\w+ / \w+ \(n=\d+\)", worst[0])
    for name, acc in result["subgroup_accuracy"].items():
        assert re.search(rf"^{name}\s+[\d,]+\s+{100 * acc:.2f} %", printed, re.M), name
    assert "Krizhevsky 2009" in printed

    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    sources = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"' >]+)""", html)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) for s in sources), sources
    assert not re.search(r"https?://[^\s\"'<>]+\.(?:png|jpe?g|svg|js|css)\b", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert html.count("data:image/png;base64,") >= 2  # the heatmap and the worst-cell images
    assert "Krizhevsky" in html and "2009" in html and "Learning Multiple Layers of Features" in html
    assert "resnet20-12fca82f.th" in html and "BSD-2" in html
    assert "class x subgroup accuracy" in html.lower()
    # the reference comparison (#13): ResNet20's rank among the 30 reference models on the same images
    assert re.search(r"^resnet20 \(bundled\): rank \d+ of 31 by accuracy", printed, re.M), printed
    assert "paired comparison: resnet20 (bundled) - " in printed and "1,017 images" in printed
    assert "Among 30 published CIFAR-10 classifiers" in html and html.count("data:image/png;base64,") >= 3
    assert "<pre>" not in html and "<td>MacroStd</td>" in html  # the summary is an HTML table


def test_demo_refuses_a_file_as_out(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["demo", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
