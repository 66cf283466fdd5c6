"""`cifarb cite` and the BibTeX table: well-formed entries, defaults, and names that add entries."""

from __future__ import annotations

import re

import pytest

from cifarb.citations import CITATIONS, DEFAULT_KEYS, METHOD_KEYS, bibtex
from cifarb.cli import main
from cifarb.models.zoo import ZOO
from cifarb.reference import load_reference

ENTRY = re.compile(r"^@(\w+)\{([\w.-]+),\n(.*)\n\}$", re.S)


@pytest.mark.parametrize("key", list(CITATIONS))
def test_every_entry_is_well_formed_bibtex(key):
    text = CITATIONS[key].bibtex
    m = ENTRY.match(text)
    assert m, text
    assert m.group(1) in {"inproceedings", "article", "techreport", "misc"}
    assert m.group(2) == key
    assert text.count("{") == text.count("}")
    fields = dict(re.findall(r"^\s+(\w+)\s*=\s*(.+?),?$", m.group(3), re.M))
    assert {"author", "title", "year"} <= set(fields)
    assert re.fullmatch(r"\{(19|20)\d\d\}", fields["year"])


def test_referenced_keys_exist():
    for keys in [DEFAULT_KEYS, *METHOD_KEYS.values(), *(c.citations for c in ZOO.values())]:
        assert set(keys) <= set(CITATIONS)


def test_cite_prints_the_default_entries(capsys):
    assert main(["cite"]) == 0
    out = capsys.readouterr().out
    assert out == bibtex()
    keys = re.findall(r"^@\w+\{([\w.-]+),", out, re.M)
    assert keys == list(DEFAULT_KEYS)
    assert "Better May Not Be Fairer: A Study on Subgroup Discrepancy in Image Classification" in out
    assert "Chiu, Ming-Chang and Chen, Pin-Yu and Ma, Xuezhe" in out
    assert "Learning Multiple Layers of Features from Tiny Images" in out


def test_cite_names_add_entries_once(capsys):
    assert main(["cite", "mixup", "flowaug", "resnet56", "devries2017cutout"]) == 0
    keys = re.findall(r"^@\w+\{([\w.-]+),", capsys.readouterr().out, re.M)
    assert len(keys) == len(set(keys))
    assert {"zhang2018mixup", "ma2021decoupling", "kingma2018glow", "devries2017cutout"} <= set(keys)


def test_cite_list_all_and_unknown(capsys):
    assert main(["cite", "--list"]) == 0
    listed = capsys.readouterr().out.split("\n\n")[0].splitlines()
    # the reference models' citations (cifarb/reference/cards.json) follow the built-in ones
    reference = list(load_reference().citations)
    assert [line.split()[0] for line in listed] == list(CITATIONS) + reference
    assert main(["cite", "--all"]) == 0
    assert len(re.findall(r"^@\w+\{", capsys.readouterr().out, re.M)) == len(CITATIONS) + len(reference)
    assert main(["cite", "imagenet"]) == 2
    assert "unknown citation 'imagenet'" in capsys.readouterr().err
