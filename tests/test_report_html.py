"""HTML report: self-contained page, heatmap contents, and a real render in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifarb.report import Figure, Section, heatmap_png, render_html, table_html
from cifarb.report.figures import cell_matrix

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures_runs"
RESULT = json.loads((FIXTURES / "cifar10-fastnet-mixup-s0" / "eval" / "cifar10-b.json").read_text())
CHROMIUM = os.environ.get("CIFARB_CHROMIUM", "/usr/bin/chromium")


def _png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_heatmap_cells_follow_the_result() -> None:
    classes, subgroups, acc, n = cell_matrix(RESULT)
    assert classes == list(RESULT["class_accuracy"]) and subgroups == RESULT["settings"]["subgroup_names"]
    for c in RESULT["cells"]:
        i, j = classes.index(c["class"]), subgroups.index(c["subgroup"])
        assert acc[i, j] == c["accuracy"] and n[i, j] == c["n"]
    assert np.isnan(acc).sum() == len(classes) * len(subgroups) - len(RESULT["cells"])  # empty cells
    assert n.sum() == RESULT["n_images"]
    w, h = _png_size(heatmap_png(RESULT))
    assert w > 400 and h > 300
    with pytest.raises(ValueError, match="no \\(class, subgroup\\) cells"):
        heatmap_png({"dataset": "cifar10.1", "cells": []})


def _external_refs(html: str) -> list[str]:
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html, flags=re.I)
    refs += re.findall(r"url\(([^)]*)\)", html)
    return [r for r in refs if not (r.startswith("data:image/png;base64,") or r.startswith("#"))]


def test_page_is_self_contained_and_escapes_text() -> None:
    png = heatmap_png(RESULT)
    page = render_html(
        "t <b>",
        [Section("one", paragraphs=["<script>alert(1)</script> & https://example.org"], figures=[Figure(png, "cap")]),
         {"title": "two", "text": "plain", "html": table_html(["a", "b"], [[1, None], ["<x>", 2]])},
         {"title": "three", "figures": [(png, "tuple form")], "warnings": ["careful"]}],
    )
    assert _external_refs(page) == []
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; https://example.org" in page
    assert "<td>&lt;x&gt;</td>" in page and "<td>—</td>" in page
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == 2 and base64.b64decode(imgs[0]) == png
    with pytest.raises(ValueError, match="not PNG"):
        render_html("x", [Section("bad", figures=[Figure(b"GIF89a", "gif")])])
    with pytest.raises(ValueError, match="unknown section keys"):
        render_html("x", [{"title": "bad", "image": png}])


# --- headless Chromium, driven over the DevTools protocol on a pipe (no network port, no extra package) ---
class _Chromium:
    def __init__(self, binary: str, timeout: float = 60.0):
        self.timeout = timeout
        self.user_data = tempfile.mkdtemp(prefix="cifarb-chromium-")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def child_fds() -> None:  # the protocol pipe is fd 3 (commands in) and fd 4 (replies out)
            a, b = os.dup(to_r), os.dup(from_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", f"--user-data-dir={self.user_data}", "--remote-debugging-pipe",
             "--window-size=1200,900", "about:blank"],
            # Python's own descriptors are non-inheritable, so close_fds=False leaks nothing but 3 and 4
            close_fds=False, preexec_fn=child_fds, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        reply = self.wait(lambda m, i=self._id: m.get("id") == i)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait(self, predicate) -> dict:  # noqa: ANN001
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" not in msg:
                    self.events.append(msg)
                if predicate(msg):
                    return msg
            ready, _, _ = select.select([self._from_r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium exited")
            self._buf += chunk

    def render(self, url: str, expression: str = "0") -> tuple[bytes, list[str], object]:
        """Load `url`, wait for the load event, screenshot the page.

        Returns (png, console/page errors, the value of the JavaScript `expression` in the page).
        """
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session=session)
        start = len(self.events)
        self.send("Page.navigate", {"url": url}, session)
        self.wait(lambda m: m.get("method") == "Page.loadEventFired")
        value = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
        errors = []
        for ev in self.events[start:]:
            method, p = ev.get("method"), ev.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append(p["entry"].get("text", ""))
        return base64.b64decode(shot["data"]), errors, value.get("result", {}).get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_w)
        os.close(self._from_r)
        shutil.rmtree(self.user_data, ignore_errors=True)


@pytest.fixture(scope="module")
def chromium():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        reason = f"headless Chromium not found at {CHROMIUM} (apt-get install chromium); HTML render test skipped"
        print(reason)
        pytest.skip(reason)
    browser = _Chromium(CHROMIUM)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cifarb.cli import main

    page = tmp_path_factory.mktemp("html") / "report.html"
    runs = [FIXTURES / "cifar10-fastnet-standard-s0", FIXTURES / "cifar10-fastnet-augmix-s0",
            FIXTURES / "broken-truncated-result"]
    assert main(["report", *map(str, runs), "--html", str(page), "--no-progress"]) == 0
    return page


def test_report_page_is_self_contained(report_page: Path) -> None:
    html = report_page.read_text()
    assert _external_refs(html) == [] and "<script" not in html
    # scatter, severity overlay, 2 per-method severity curves, 2 mean heatmaps, 2 a_cg - m_c, 1 vs baseline
    assert html.count("<img ") == 1 + 1 + 2 + 2 + 2 + 1
    assert "Left out (never averaged in)" in html and "broken-truncated-result" in html
    for needle in ("Summary over seeds", "macro_std_excess", "Rank correlation across runs",
                   "Discrepancy and accuracy by corruption severity", "Class × subgroup accuracy per method",
                   "Cell accuracy minus class accuracy", "Difference from the baseline (standard)", "Provenance",
                   "Each method vs the baseline (standard)"):
        assert needle in html
    titles = re.findall(r"<h2>([^<]*)</h2>", html)
    assert len(titles) == len(set(titles))  # unique section titles
    assert "Class × subgroup accuracy per run" not in html  # per-run heatmaps only with --per-run-heatmaps
    assert "<pre>" not in html and "white-space: nowrap" in html
    sizes = [_png_size(base64.b64decode(b)) for b in re.findall(r'base64,([^"]+)"', html)]
    assert all(w > 300 and h > 200 for w, h in sizes)


STUDY_REPORT = REPO / "docs" / "study-cpu" / "report.html"
DECODED = "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 100).length"
# sections only the new kind of study report has (the committed docs/study-cpu one may predate them)
NEW_REPORT_SECTIONS = ("Summary over seeds", "Discrepancy and accuracy by corruption severity",
                       "Class × subgroup accuracy per method", "Cell accuracy minus class accuracy",
                       "Difference from the baseline", "Each method vs the baseline", "Provenance")


def _render_stats(png: bytes) -> dict[str, float]:
    """What a screenshot shows: size, distinct colours, the share of non-white and of coloured pixels."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return {"width": rgb.shape[1], "height": rgb.shape[0], "colours": len(np.unique(packed)),
            "non_white": float((rgb < 240).any(axis=2).mean()),
            "coloured": float((rgb.max(axis=2) - rgb.min(axis=2) > 40).mean())}


def _looks_rendered(stats: dict[str, float]) -> bool:
    # plots (colour maps, markers) give hundreds of colours and a few % of saturated pixels; text is grey
    return stats["colours"] > 500 and stats["non_white"] > 0.1 and stats["coloured"] > 0.03


@pytest.mark.parametrize("which", ["fixtures", "study-cpu"])
def test_report_renders_in_chromium_without_console_errors(chromium: _Chromium, report_page: Path,
                                                           which: str) -> None:
    page = report_page if which == "fixtures" else STUDY_REPORT
    if not page.exists():
        pytest.skip(f"{page} is not in this checkout")
    html = page.read_text()
    png, errors, n_decoded = chromium.render(page.resolve().as_uri(), DECODED)
    assert errors == []
    shot = Image.open(io.BytesIO(png)).convert("L")
    w, h = shot.size
    assert w >= 1000 and h > 3000  # the whole page: tables, scatter, severity curves, heatmaps
    assert np.asarray(shot).std() > 20  # not a blank page
    assert n_decoded == html.count("<img ") >= 9  # every inline image decoded and laid out
    stats = _render_stats(png)
    assert _looks_rendered(stats), stats
    if which == "fixtures" or "Provenance" in html:  # the new kind of report: its sections are all there
        assert all(title in html for title in NEW_REPORT_SECTIONS)
        titles = re.findall(r"<h2>([^<]*)</h2>", html)
        assert len(titles) == len(set(titles)) and "<pre>" not in html
    if which == "fixtures":
        assert n_decoded == 9
        (report_page.parent / "report.png").write_bytes(png)


def test_chromium_check_catches_errors(chromium: _Chromium, tmp_path: Path) -> None:
    # the negative controls: a missing image and a script error must both be reported, and a page of
    # text only (what a report whose plots failed would look like) must not pass for a rendered one
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="missing.png"><script>throw new Error("kaput")</script></body></html>')
    _, errors, _ = chromium.render(bad.as_uri())
    assert any("ERR_FILE_NOT_FOUND" in e for e in errors) and any("Uncaught" in e for e in errors)
    text = tmp_path / "text.html"
    text.write_text("<!DOCTYPE html><html><body>" + "<h2>Summary</h2><p>" + "MacroStd 12.3 % " * 400 + "</p>" * 3
                    + "</body></html>")
    png, errors, n_decoded = chromium.render(text.as_uri(), DECODED)
    assert errors == [] and n_decoded == 0 and not _looks_rendered(_render_stats(png))


def test_per_run_heatmaps_flag_and_figure_export(tmp_path: Path) -> None:
    from cifarb.cli import main

    page, figs = tmp_path / "r.html", tmp_path / "figs"
    run = FIXTURES / "cifar10-fastnet-standard-s0"  # one run keeps this cheap; the page test has two methods
    assert main(["report", str(run), "--html", str(page), "--no-progress", "--per-run-heatmaps",
                 "--figures", str(figs), "--bootstrap", "0", "--compare-bootstrap", "0"]) == 0
    html = page.read_text()
    # scatter, severity overlay and curves, mean heatmap, a_cg - m_c, and the per-run heatmap
    assert "Class × subgroup accuracy per run" in html and html.count("<img ") == 6
    names = sorted(p.name for p in figs.iterdir())
    assert "heatmap_standard.pdf" in names and "deviation_standard.svg" in names
    assert "run_cifar10-fastnet-standard-s0.pdf" in names and "severity_overlay.svg" in names
    assert len(names) == 2 * 6  # every figure of the page, as PDF and SVG
    for p in figs.iterdir():
        data = p.read_bytes()
        assert data.startswith(b"%PDF") if p.suffix == ".pdf" else b"<svg" in data[:2000]
    assert main(["report", str(run), "--figures", str(figs), "--figure-formats", "gif"]) == 2


def test_diverging_heatmaps_show_deviation_and_difference() -> None:
    from cifarb.report.figures import deviation_heatmap_png, difference_heatmap_png, mean_result

    other = json.loads((FIXTURES / "cifar10-fastnet-mixup-s1" / "eval" / "cifar10-b.json").read_text())
    mean = mean_result([RESULT, other])
    cells = {(c["class"], c["subgroup"]): c for c in mean["cells"]}
    for c in RESULT["cells"]:
        o = next((x for x in other["cells"] if (x["class"], x["subgroup"]) == (c["class"], c["subgroup"])), None)
        want = c["accuracy"] if o is None else (c["accuracy"] + o["accuracy"]) / 2
        assert cells[(c["class"], c["subgroup"])]["accuracy"] == pytest.approx(want)
    for png in (deviation_heatmap_png(mean), difference_heatmap_png(mean, RESULT)):
        w, h = _png_size(png)
        assert w > 400 and h > 300
