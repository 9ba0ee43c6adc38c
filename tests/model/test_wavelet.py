import pytest
import torch

from wavesr.model.wavelet import SUBBANDS, dwt2, dwt2_any, idwt2, idwt2_any, split_bands


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (3, 2, 16, 10), (1, 1, 224, 224)])
def test_perfect_reconstruction_even(shape):
    x = torch.rand(shape, dtype=torch.float32)
    assert (idwt2(dwt2(x)) - x).abs().max() < 1e-5


@pytest.mark.parametrize("size", [(7, 7), (9, 12), (121, 90), (1, 3)])
def test_perfect_reconstruction_odd(size):
    x = torch.rand(2, 1, *size)
    bands, orig = dwt2_any(x)
    assert bands.shape[-2:] == ((size[0] + 1) // 2, (size[1] + 1) // 2)
    assert (idwt2_any(bands, orig) - x).abs().max() < 1e-5


def test_parseval_and_known_values():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    bands = dwt2(x).flatten()
    # LL = sum/2, LH = (top - bottom)/2, HL = (left - right)/2, HH = (diag - antidiag)/2
    assert torch.allclose(bands, torch.tensor([5.0, -2.0, -1.0, 0.0]))
    y = torch.rand(4, 1, 32, 32)
    assert torch.allclose(dwt2(y).pow(2).sum(), y.pow(2).sum(), rtol=1e-5)


def test_band_semantics():
    rows = torch.arange(8.0).view(1, 1, 8, 1).expand(1, 1, 8, 8) % 2  # varies along height only
    named = split_bands(dwt2(rows))
    assert set(named) == set(SUBBANDS)
    assert named["LH"].abs().sum() > 0
    assert named["HL"].abs().sum() == 0 and named["HH"].abs().sum() == 0


def test_differentiable():
    x = torch.rand(1, 1, 6, 6, requires_grad=True)
    dwt2(x).pow(2).sum().backward()
    assert torch.allclose(x.grad, 2 * x.detach(), atol=1e-6)


def test_rejects_odd_input():
    with pytest.raises(ValueError):
        dwt2(torch.rand(1, 1, 5, 6))
