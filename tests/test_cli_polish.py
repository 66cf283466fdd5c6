"""CLI and doc polish: help texts, summaries, suggestions, completion, citations; one check per rough edge."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from cifarb.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures_runs"


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*argv, "--help"]) == 0
    return capsys.readouterr().out


def test_metrics_help_percent_and_formats_epilog(capsys) -> None:
    text = _help(["metrics"], capsys)
    assert "95% CIs" in text and "%%" not in text
    assert ".csv or .parquet any subset of the test set" in text and "index,prediction" in text


def test_no_design_md_references_in_shipped_code_or_docs() -> None:
    hits = [str(p.relative_to(REPO)) for base in ("src", "docs") for p in (REPO / base).rglob("*")
            if p.is_file() and p.suffix in {".py", ".md", ".json", ".toml", ".txt", ".html"}
            and "DESIGN.md" in p.read_text(encoding="utf-8", errors="replace")]
    assert hits == []


def test_data_where_explains_the_size_column(tmp_path: Path, capsys) -> None:
    assert main(["data", "where", "cifar10", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"data_batch_1 - md5:", out)  # the contract form, SIZE_OR_-
    assert "# SIZE '-': the source publishes no size for that extracted file" in out


def test_data_verify_summary_and_trust_local_hint(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(b"not the official file")
    assert main(["data", "verify", "cifar10", "--root", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert all(line.split(" ")[0] in ("OK", "MISMATCH", "MISSING") for line in captured.out.splitlines())
    assert "cifar10: 7 files, 0 OK, 1 MISMATCH, 6 MISSING" in captured.err
    assert "--trust-local" in captured.err and "prefix set" in captured.err


def test_train_and_eval_summaries_use_percent() -> None:
    from cifarb.eval.table import summary_line
    from cifarb.metrics.table import format_result

    b = json.loads((FIXTURES / "cifar10-fastnet-standard-s0" / "eval" / "cifar10-b.json").read_text())
    line = summary_line(b)
    assert line == (f"cifar10-b: accuracy {100 * b['accuracy']:.2f} %, MacroStd {100 * b['macro_std']:.2f} % "
                    f"(noise floor {100 * b['macro_std_null']:.2f} %, excess {100 * b['macro_std_excess']:+.2f} pp)")
    assert "summary_line(result)" in (REPO / "src/cifarb/train/engine.py").read_text()
    c = json.loads((FIXTURES / "cifar10-fastnet-standard-s0" / "eval" / "cifar10-c-local.json").read_text())
    worst = next(x for x in format_result(c).splitlines() if x.startswith("worst cell"))
    assert "mean over corruption x severity pairs" in worst and "no cell has" not in worst


def test_report_on_a_study_glob_ignores_the_study_own_files(tmp_path: Path, capsys) -> None:
    study = tmp_path / "study"
    for p in FIXTURES.glob("cifar10-fastnet-standard-*"):
        shutil.copytree(p, study / p.name)
    (study / "_logs").mkdir()
    (study / "_logs" / "a.log").write_text("x")
    (study / "_study.json").write_text('{"baseline": "standard"}')
    (study / "report.html").write_text("<html></html>")
    args = [str(p) for p in sorted(study.iterdir())]  # what the shell makes of runs/study/*
    assert main(["report", *args, "--strict", "--bootstrap", "0", "--compare-bootstrap", "0"]) == 0
    assert "left out" not in capsys.readouterr().err


def test_flow_sample_and_encode_default_device_is_auto() -> None:
    parser = build_parser()
    for argv in (["flow", "sample", "f.pt", "--n", "4", "--out", "g.png"],
                 ["flow", "encode", "f.pt", "--dataset", "cifar10", "--out", "z.npz"],
                 ["flow", "train", "--config", "tiny", "--dataset", "cifar10"],
                 ["eval", "--model", "resnet20", "--dataset", "cifar10-b"]):
        assert parser.parse_args(argv).device == "auto"


def test_did_you_mean(capsys) -> None:
    from cifarb.augment.registry import get_factory
    from cifarb.errors import CifarbError

    assert main(["trian"]) == 2
    assert "did you mean 'train'?" in capsys.readouterr().err
    assert main(["report", "x", "--bootsrap", "3"]) == 2
    assert "did you mean '--bootstrap'?" in capsys.readouterr().err
    assert main(["metrics", "p.csv", "--dataset", "cifar10b"]) == 2
    assert "did you mean 'cifar10-b'?" in capsys.readouterr().err
    assert main(["data", "where", "cifar01"]) == 1
    assert "did you mean 'cifar10'?" in capsys.readouterr().err
    assert main(["study", "cpu-slic", "--dry-run"]) == 1
    assert "did you mean 'cpu-slice'?" in capsys.readouterr().err
    with pytest.raises(CifarbError, match="did you mean 'mixup'"):
        get_factory("mixpu")


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completion_script_completes(tmp_path: Path, capsys) -> None:
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "c.sh"
    script.write_text(capsys.readouterr().out)
    probe = f"""source {script}
t() {{ COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMPREPLY=(); _cifarb; echo "${{COMPREPLY[*]}}"; }}
t cifarb tr; t cifarb data v; t cifarb metrics --dataset ''; t cifarb compare --boot
"""
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[:2] == ["train", "verify"] and out[2].startswith("cifar10-b cifar100-b") and out[3] == "--bootstrap"
    assert main(["completion", "zsh"]) == 0
    assert capsys.readouterr().out.startswith("#compdef cifarb\n")


def test_cite_adds_wrn_airbench_torchvision_and_cifarb(capsys) -> None:
    assert main(["cite"]) == 0
    out = capsys.readouterr().out
    for key in ("jordan2024airbench", "torchvision2016", "@misc{cifarb"):
        assert key in out
    assert main(["cite", "wrn28_10", "fastnet", "resnet50_imagenet"]) == 0
    out = capsys.readouterr().out
    assert out.count("@inproceedings{zagoruyko2016wide,") == 1 and "Wide Residual Networks" in out


def test_citation_cff_matches_the_package() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML not installed; CITATION.cff not parsed")
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert str(cff["version"]) == project["version"] and cff["license"] == "MIT"
    assert cff["title"].startswith("cifarb") and cff["authors"]
    assert any("Better May Not Be Fairer" in r["title"] for r in cff["references"])
