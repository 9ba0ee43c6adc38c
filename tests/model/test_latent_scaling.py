"""The latent <-> diffusion-space map: global vs per-channel standardisation, bundle round trip."""

from __future__ import annotations

import pytest
import torch

from wavesr.model.latent_scaling import LatentScaling


def _values() -> torch.Tensor:
    """Three channels of 4 samples: spreads 1, 10 and 0.1 around means 0, 5 and -1."""
    base = torch.tensor([-1.0, 1.0, -1.0, 1.0])
    return torch.stack([base, 5 + 10 * base, -1 + 0.1 * base])


def test_per_channel_gives_zero_mean_unit_std_in_every_channel() -> None:
    scaling = LatentScaling.measure(_values(), "per-channel")
    std = torch.tensor([-1.0, 1.0, -1.0, 1.0]).std()  # unbiased, as torch.std
    torch.testing.assert_close(scaling.shift, torch.tensor([0.0, 5.0, -1.0]))
    torch.testing.assert_close(scaling.scale, 1 / (std * torch.tensor([1.0, 10.0, 0.1])))
    z = _values().T.reshape(4, 3, 1, 1)
    x = scaling.to_diffusion(z)
    torch.testing.assert_close(x.mean(dim=0).flatten(), torch.zeros(3))
    torch.testing.assert_close(x.std(dim=0).flatten(), torch.ones(3))


def test_global_is_one_scale_and_no_shift() -> None:
    values = _values()
    scaling = LatentScaling.measure(values, "global")
    expected = 1 / values.double().flatten().std()
    torch.testing.assert_close(scaling.scale, torch.full((3,), float(expected)))
    assert torch.equal(scaling.shift, torch.zeros(3))


def test_round_trip_and_zero_sample_is_the_mean_latent() -> None:
    scaling = LatentScaling.measure(_values(), "per-channel")
    z = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(scaling.from_diffusion(scaling.to_diffusion(z)), z)
    mean = scaling.from_diffusion(torch.zeros(1, 3, 1, 1)).flatten()
    torch.testing.assert_close(mean, torch.tensor([0.0, 5.0, -1.0]))


def test_extras_round_trip_and_old_float_bundles() -> None:
    scaling = LatentScaling.measure(_values(), "per-channel")
    again = LatentScaling.from_extras(*scaling.to_extras(), n=3)
    torch.testing.assert_close(again.scale, scaling.scale)
    torch.testing.assert_close(again.shift, scaling.shift)
    old = LatentScaling.from_extras(3.5, None, n=3)  # bundles before per-channel scaling
    assert old.scale.tolist() == [3.5] * 3 and old.shift.tolist() == [0.0] * 3
    with pytest.raises(ValueError, match="3 values"):
        LatentScaling.from_extras([1.0, 2.0], None, n=3)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="latent scaling"):
        LatentScaling.measure(_values(), "per-band")
