"""The CLI front end: --help, --version, exit codes, python -m, and no torch at parser build time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cifarb import __version__
from cifarb.cli import COMMAND_MODULES, main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Exit status" in out
    assert "data" in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_unknown_command_is_usage_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_every_command_has_help(name, capsys):
    assert main([name, "--help"]) == 0
    assert "usage" in capsys.readouterr().out


def test_python_dash_m_and_parser_do_not_import_torch():
    code = (
        "import sys; from cifarb.cli import build_parser; build_parser(); "
        "assert 'torch' not in sys.modules, 'building the parser imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    out = subprocess.run(
        [sys.executable, "-m", "cifarb", "--version"], capture_output=True, text=True, timeout=120, check=True
    )
    assert __version__ in out.stdout
