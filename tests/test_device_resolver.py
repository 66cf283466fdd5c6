"""The one `--device` resolver (cifarb._device) that train, eval, DDP and the flows share."""

from __future__ import annotations

import pytest
import torch

from cifarb._device import resolve_device
from cifarb.errors import CifarbError, UsageError
from cifarb.eval.evaluate import resolve_device as eval_resolve
from cifarb.train.ddp import DistInfo, device_for


def test_names_and_auto():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(" CPU ")
    assert resolve_device(None) == resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert eval_resolve is resolve_device


def test_malformed_and_unsupported_names_are_usage_errors():
    with pytest.raises(UsageError, match="unknown --device 'tpu9'"):
        resolve_device("tpu9")
    with pytest.raises(UsageError, match="'meta' is not supported here; use auto, cpu, mps, cuda or cuda:N"):
        resolve_device("meta")
    with pytest.raises(UsageError, match="'mps' is not supported here; use auto, cpu, cuda or cuda:N"):
        device_for("mps", DistInfo())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_a_missing_gpu_is_a_user_error_everywhere():
    for resolve in (resolve_device, lambda d: device_for(d, DistInfo())):
        with pytest.raises(CifarbError, match="no CUDA device is available here") as err:
            resolve("cuda:0")
        assert not isinstance(err.value, UsageError)
