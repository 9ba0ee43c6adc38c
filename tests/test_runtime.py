from __future__ import annotations

import pytest
import torch

from wavesr.errors import ConfigError
from wavesr.runtime import resolve_device, set_threads


def test_auto_device_is_cuda_only_when_torch_sees_one() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"


def test_set_threads() -> None:
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        set_threads(None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="at least 1"):
        set_threads(0)
