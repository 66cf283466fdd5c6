"""The BibTeX has one source (cifarb/citations.bib): every entry parses, and the data registry cites from it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from cifarb import citations
from cifarb.citations import CITATIONS, parse_bib
from cifarb.data import registry

SRC = Path(citations.__file__).parent


def test_every_entry_of_the_bib_file_is_read():
    text = (SRC / citations.BIB_FILE).read_text(encoding="utf-8")
    keys = re.findall(r"^@\w+\{([^,]+),$", text, re.M)
    assert keys == list(CITATIONS) and len(keys) == len(set(keys))
    assert text.count("\n% for: ") == len(keys)


def test_the_bib_file_ships_as_package_data():
    pyproject = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert citations.BIB_FILE in pyproject["tool"]["setuptools"]["package-data"]["cifarb"]


def test_registry_sources_cite_the_entries_cifarb_cite_prints():
    for name, source in registry.SOURCES.items():
        keys = re.findall(r"^@\w+\{([^,]+),$", source.citation, re.M)
        assert keys and source.citation == "\n\n".join(CITATIONS[k].bibtex for k in keys), name
    assert re.findall(r"^@\w+\{([^,]+),", registry.SOURCES["cifar10.1"].citation, re.M) == [
        "recht2018cifar", "recht2019imagenet"]


def test_parse_bib_refuses_a_repeated_key():
    entry = "% for: x\n@misc{k,\n  title = {t},\n  year = {2020}\n}\n"
    assert list(parse_bib(entry)) == ["k"]
    with pytest.raises(ValueError, match="'k' appears twice"):
        parse_bib(entry + "\n" + entry)
