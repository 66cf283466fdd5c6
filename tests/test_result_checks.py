"""One check of a stored result JSON behind reports (report.load) and the study's "evaluation done" test."""

from __future__ import annotations

import json

from cifarb.report.load import check_result, read_result
from cifarb.study.runner import check_result_file


def _write(path, obj):
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj, encoding="utf-8")
    return path


def test_the_study_and_the_report_reject_the_same_broken_values(tmp_path):
    minimal = {"dataset": "cifar10-b", "n_images": 100, "accuracy": 0.5, "macro_std": 0.1}
    path = _write(tmp_path / "cifar10-b.json", minimal)
    assert check_result_file(path, ("cifar10-b",)) is None  # the keys a study needs are enough for it
    assert "lacks required keys" in read_result(path)[1]  # a report needs more
    for bad, reason in [({"accuracy": 1.5}, "accuracy = 1.5 is not a fraction"),
                        ({"macro_std_excess": 3.0}, "macro_std_excess = 3.0 is outside"),
                        ({"cells": [{"n": 7}]}, "cells hold 7 images but n_images is 100")]:
        _write(path, {**minimal, **bad})
        assert reason in check_result_file(path, ("cifar10-b",))
        assert reason in check_result({**minimal, **bad}, required=tuple(minimal), schema=False)


def test_the_study_check_keeps_its_accepted_names_and_read_errors(tmp_path):
    path = _write(tmp_path / "cifar10-c.json", {"dataset": "cifar10-c-local", "n_images": 1, "accuracy": 0.5,
                                                 "macro_std": None})
    assert check_result_file(path, ("cifar10-c", "cifar10-c-local")) is None
    assert "expected one of ['cifar10-c']" in check_result_file(path, ("cifar10-c",))
    assert check_result_file(tmp_path / "none.json", ("cifar10-c",)) == "missing"
    assert "unreadable or truncated JSON" in check_result_file(_write(path, '{"dataset": "ci'), ("cifar10-c",))
    assert "is not a fraction" in check_result_file(
        _write(path, {"dataset": "cifar10-c", "n_images": 1, "accuracy": None, "macro_std": None}), ("cifar10-c",))
