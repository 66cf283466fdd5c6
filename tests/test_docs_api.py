"""docs/python-api.md is executed top to bottom, and docs/datasets.md's worked example is rerun."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cifarb.cli import main

REPO = Path(__file__).resolve().parents[1]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


@pytest.mark.slow  # evaluates the bundled ResNet20 on 1,017 images: ~5 s idle, ~20 s on a loaded machine
def test_python_api_walkthrough_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    code = blocks((REPO / "docs/python-api.md").read_text(), "python")
    assert len(code) >= 10
    namespace: dict = {}
    for i, block in enumerate(code):
        try:
            exec(compile(block, f"docs/python-api.md block {i + 1}", "exec"), namespace)
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"docs/python-api.md block {i + 1} failed: {exc!r}\n{block}") from exc
    assert (tmp_path / "cifar10b.png").stat().st_size > 10_000
    assert namespace["res"].accuracy > 0.85  # the pretrained ResNet20 on the bundled sample
    import matplotlib.pyplot as plt

    plt.close("all")


def test_datasets_worked_example_output_is_what_the_command_prints(tmp_path, monkeypatch, capsys):
    text = (REPO / "docs/datasets.md").read_text()
    for name, body in re.findall(r"<!-- file: (\S+) -->\n```csv\n(.*?)```", text, flags=re.S):
        (tmp_path / name).write_text(body)
    command = re.search(r"<!-- command -->\n```bash\n(.*?)\n```", text, flags=re.S).group(1)
    expected = re.search(r"<!-- output -->\n```text\n(.*?)```", text, flags=re.S).group(1)
    argv = shlex.split(command)
    assert argv[0] == "cifarb"
    monkeypatch.chdir(tmp_path)
    assert main(argv[1:]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(expected.rstrip("\n"))
    assert (tmp_path / "result.json").exists()
