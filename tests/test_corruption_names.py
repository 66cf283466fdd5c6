"""Unknown corruption names get one message with a did-you-mean wherever names are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from cifarb.cli import main
from cifarb.data.corruption_names import unknown_corruptions
from cifarb.data.registry import CIFAR_C_CORRUPTIONS
from cifarb.errors import CifarbError, UsageError

FIXTURES = Path(__file__).resolve().parent / "fixtures_runs"


def test_the_message() -> None:
    assert unknown_corruptions(["fog", "snow"]) is None
    msg = unknown_corruptions(["fgo"])
    assert msg.startswith("unknown corruption 'fgo' (did you mean 'fog'?); choose from: gaussian_noise, ")
    assert msg.endswith(", ".join(CIFAR_C_CORRUPTIONS))
    msg = unknown_corruptions(["fog", "gausian_noise", "xyz", "xyz"])
    assert msg.startswith("unknown corruptions 'gausian_noise' (did you mean 'gaussian_noise'?), 'xyz';")
    assert "did you mean" not in msg.split("'xyz'")[1]  # nothing close: no guess
    msg = unknown_corruptions(["standrad"], ["fog"], groups=("all", "standard"), where="x.parquet")
    assert msg == ("unknown corruption 'standrad' (did you mean 'standard'?) in x.parquet; choose from: fog "
                   "(or all, standard)")


def test_make_c(tmp_path: Path, capsys) -> None:
    assert main(["data", "make-c", "--dataset", "cifar10", "--out", str(tmp_path / "c"), "--root",
                 str(tmp_path), "--corruptions", "snow,fgo"]) == 2
    assert "unknown corruption 'fgo' (did you mean 'fog'?)" in capsys.readouterr().err
    assert main(["data", "make-c", "--dataset", "cifar10", "--out", str(tmp_path / "c"), "--root",
                 str(tmp_path), "--corruptions", "extar"]) == 2
    assert "(did you mean 'extra'?)" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_generator_registry() -> None:
    from cifarb.data.corruptions import check_name

    assert check_name("snow").name == "snow"
    with pytest.raises(CifarbError, match=r"unknown corruption 'snwo' \(did you mean 'snow'\?\)"):
        check_name("snwo")


def test_eval_corruptions(tmp_path: Path, capsys) -> None:
    # the names are checked when the data is read, before the model is even loaded
    assert main(["eval", "--model", str(tmp_path / "no-model.pt"), "--dataset", "cifar10-c", "--root",
                 str(tmp_path), "--corruptions", "fog,jpeg_compresion"]) == 1
    err = capsys.readouterr().err
    assert "unknown corruption 'jpeg_compresion' (did you mean 'jpeg_compression'?)" in err


def test_compare_corruption() -> None:
    from cifarb.report.compare import compare_runs

    runs = FIXTURES / "cifar10-fastnet-standard-s0", FIXTURES / "cifar10-fastnet-mixup-s0"
    # the suggestion comes from the corruptions the predictions hold (fog, gaussian_noise)
    with pytest.raises(UsageError, match=r"--corruption: unknown corruption 'fgo' \(did you mean 'fog'\?\) in "):
        compare_runs(*runs, "cifar10-c", corruption="fgo", severity=3, bootstrap=0)
    with pytest.raises(UsageError, match=r"'snow' in .*; choose from: fog, gaussian_noise$"):
        compare_runs(*runs, "cifar10-c", corruption="snow", severity=3, bootstrap=0)
