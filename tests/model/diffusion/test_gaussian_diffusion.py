from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from wavesr.errors import ConfigError
from wavesr.model.diffusion import GaussianDiffusion, create_diffusion
from wavesr.model.diffusion.schedules import get_named_beta_schedule

SHAPE = (2, 9, 7, 5)


def _t(values: list[int]) -> Tensor:
    return torch.tensor(values, dtype=torch.long)


def _x0(
    shape: tuple[int, ...] = SHAPE, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 0.5


class TinyModel(nn.Module):
    """A 1x1 conv whose output depends on the timestep; v in [-1, 1] via tanh."""

    def __init__(self, channels: int = 9, learn_sigma: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.channels = channels
        self.learn_sigma = learn_sigma
        self.conv = nn.Conv2d(channels, channels * (2 if learn_sigma else 1), 1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = self.conv(x) * (1 + t.float().view(-1, 1, 1, 1) / 1000)
        if not self.learn_sigma:
            return h
        return torch.cat([h[:, : self.channels], torch.tanh(h[:, self.channels :])], dim=1)


def _eps_oracle(diffusion: GaussianDiffusion, x0: Tensor, v: float = -1.0):
    """Model that knows x0; it receives ORIGINAL timesteps, so it uses the base alpha_bar."""
    base_alpha_bar = np.cumprod(1.0 - get_named_beta_schedule("cosine", 1000))

    def model(x_t: Tensor, t: Tensor) -> Tensor:
        ab = torch.from_numpy(base_alpha_bar)[t].to(x_t.dtype).view(-1, 1, 1, 1)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        return torch.cat([eps, torch.full_like(eps, v)], dim=1)

    return model


# ------------------------------------------------------------------ forward process
def test_q_sample_statistics() -> None:
    diffusion = create_diffusion(None)
    n = 200_000
    x0 = torch.full((n, 1, 1, 1), 0.7, dtype=torch.float64)
    for step in (10, 500, 900):
        t = torch.full((n,), step, dtype=torch.long)
        x_t = diffusion.q_sample(x0, t, noise=torch.randn(n, 1, 1, 1, dtype=torch.float64))
        ab = diffusion.alphas_cumprod[step]
        assert x_t.mean().item() == pytest.approx(math.sqrt(ab) * 0.7, abs=0.01)
        assert x_t.var().item() == pytest.approx(1 - ab, rel=0.02, abs=1e-3)
    mean, var, logvar = diffusion.q_mean_variance(x0[:2], _t([3, 3]))
    assert var[0].item() == pytest.approx(1 - diffusion.alphas_cumprod[3])
    torch.testing.assert_close(logvar, var.log())


def test_posterior_matches_bayes_rule() -> None:
    diffusion = create_diffusion(None, noise_schedule="linear", diffusion_steps=200)
    x0, x_t = _x0(dtype=torch.float64), _x0(seed=1, dtype=torch.float64)
    for step in (1, 50, 199):
        t = torch.full((SHAPE[0],), step, dtype=torch.long)
        mean, var, logvar = diffusion.q_posterior_mean_variance(x0, x_t, t)
        beta, alpha = diffusion.betas[step], 1 - diffusion.betas[step]
        ab_prev = diffusion.alphas_cumprod[step - 1]
        # Product of q(x_t | x_{t-1}) and q(x_{t-1} | x_0) as Gaussians in x_{t-1}.
        precision = 1 / (1 - ab_prev) + alpha / beta
        expected_mean = (
            math.sqrt(ab_prev) * x0 / (1 - ab_prev) + math.sqrt(alpha) * x_t / beta
        ) / precision
        torch.testing.assert_close(mean, expected_mean)
        assert var[0, 0, 0, 0].item() == pytest.approx(1 / precision, rel=1e-10)
        torch.testing.assert_close(logvar, var.log())
    mean0, var0, logvar0 = diffusion.q_posterior_mean_variance(x0, x_t, _t([0, 0]))
    torch.testing.assert_close(mean0, x0)  # at t = 0 the posterior collapses onto x0
    assert var0.abs().max().item() == 0.0
    assert logvar0[0, 0, 0, 0].item() == pytest.approx(math.log(diffusion.posterior_variance[1]))


def test_xstart_eps_round_trip() -> None:
    diffusion = create_diffusion(None)
    x0, noise = _x0(dtype=torch.float64), _x0(seed=3, dtype=torch.float64)
    t = _t([5, 700])
    x_t = diffusion.q_sample(x0, t, noise=noise)
    torch.testing.assert_close(diffusion.predict_xstart_from_eps(x_t, t, noise), x0)
    torch.testing.assert_close(diffusion.predict_eps_from_xstart(x_t, t, x0), noise)


def test_constants_cast_to_input_dtype() -> None:
    diffusion = create_diffusion(None)
    for dtype in (torch.float32, torch.float64):
        assert diffusion.q_sample(_x0(dtype=dtype), _t([1, 2])).dtype == dtype


# ------------------------------------------------------------------ model output / variance
def test_learned_range_endpoints() -> None:
    diffusion = create_diffusion(None)
    x = _x0()
    t = _t([0, 600])
    for v, expected in (
        (1.0, diffusion.log_betas),
        (-1.0, diffusion.posterior_log_variance_clipped),
    ):
        model = lambda x_t, tt, v=v: torch.cat([torch.zeros_like(x_t), torch.full_like(x_t, v)], 1)  # noqa: E731
        out = diffusion.p_mean_variance(model, x, t)
        for row, step in enumerate((0, 600)):
            assert out["log_variance"][row].flatten().tolist() == pytest.approx(
                [expected[step]] * x[0].numel(), rel=1e-5
            )
    # v = -1 at t = 0 is clipped to beta_tilde_1, not log(0).
    assert diffusion.posterior_log_variance_clipped[0] == pytest.approx(
        math.log(diffusion.posterior_variance[1])
    )
    mid = lambda x_t, tt: torch.cat([torch.zeros_like(x_t)] * 2, 1)  # noqa: E731
    out = diffusion.p_mean_variance(mid, x, _t([300, 300]))
    geo = 0.5 * (diffusion.log_betas[300] + diffusion.posterior_log_variance_clipped[300])
    assert out["log_variance"][0, 0, 0, 0].item() == pytest.approx(geo, rel=1e-5)


def test_fixed_small_variance_without_learn_sigma() -> None:
    diffusion = create_diffusion(None, learn_sigma=False)
    out = diffusion.p_mean_variance(lambda x, t: torch.zeros_like(x), _x0(), _t([10, 10]))
    assert out["variance"][0, 0, 0, 0].item() == pytest.approx(
        diffusion.posterior_variance[10], rel=1e-5
    )


def test_wrong_model_channels_and_bad_config() -> None:
    diffusion = create_diffusion(None)
    with pytest.raises(ValueError, match="learn_sigma=True"):
        diffusion.p_mean_variance(lambda x, t: x, _x0(), _t([1, 1]))
    with pytest.raises(ConfigError):
        create_diffusion(predict="v")
    with pytest.raises(ConfigError):
        create_diffusion(vlb_scaling="nats")
    with pytest.raises(ConfigError):
        create_diffusion(vlb_weight=-1.0)


# ------------------------------------------------------------------ training losses
@pytest.mark.parametrize("learn_sigma", [True, False])
def test_oracle_eps_model_has_zero_mse(learn_sigma: bool) -> None:
    diffusion = create_diffusion(None, learn_sigma=learn_sigma)
    x0, noise = _x0(), _x0(seed=5) * 2

    def oracle(x_t: Tensor, t: Tensor) -> Tensor:
        return torch.cat([noise, torch.zeros_like(noise)], 1) if learn_sigma else noise

    terms = diffusion.training_losses(oracle, x0, _t([3, 800]), noise=noise)
    assert set(terms) == {"loss", "mse", "vb"}
    assert terms["mse"].shape == (2,) and torch.all(terms["mse"] == 0)
    if not learn_sigma:
        assert torch.all(terms["vb"] == 0) and torch.equal(terms["loss"], terms["mse"])


def test_oracle_x0_model_has_zero_mse() -> None:
    diffusion = create_diffusion(None, predict="x0")
    x0 = _x0()
    oracle = lambda x_t, t: torch.cat([x0, torch.zeros_like(x0)], 1)  # noqa: E731
    terms = diffusion.training_losses(oracle, x0, _t([0, 999]))
    assert torch.all(terms["mse"] == 0)


def test_true_posterior_gives_zero_kl() -> None:
    # Exact mean and v = -1 (variance beta_tilde) make p equal q(x_{t-1} | x_t, x_0): KL = 0.
    diffusion = create_diffusion(None)
    x0 = _x0(dtype=torch.float64)
    terms = diffusion.training_losses(_eps_oracle(diffusion, x0), x0, _t([5, 400]))
    assert terms["vb"].abs().max().item() < 1e-8


def test_vb_nonnegative_and_hybrid_mapping() -> None:
    model = TinyModel()
    x0 = _x0()
    t = _t([0, 0, 1, 250, 998, 999])
    x0 = torch.cat([x0, x0, x0])
    for weight, scaling, coef in (
        (1e-4, "per-dim-bits", 0.1),
        (1e-3, "per-dim-bits", 1.0),
        (1e-4, "raw", 1e-4),
    ):
        diffusion = create_diffusion(None, vlb_weight=weight, vlb_scaling=scaling)
        assert diffusion.vb_coefficient == pytest.approx(coef)
        terms = diffusion.training_losses(model, x0, t, noise=_x0((6, 9, 7, 5), seed=9))
        assert torch.all(terms["vb"] >= 0) and torch.all(terms["vb"] > 0)
        torch.testing.assert_close(terms["loss"], terms["mse"] + coef * terms["vb"])
    spaced = create_diffusion("ddim50", vlb_weight=1e-3)
    assert spaced.vb_coefficient == pytest.approx(0.05)  # lambda * T with T = 50 spaced steps


def test_vb_gradient_reaches_only_the_variance() -> None:
    diffusion = create_diffusion(None)
    a = torch.tensor(0.3, requires_grad=True)  # mean parameter
    b = torch.tensor(0.2, requires_grad=True)  # variance parameter

    def model(x_t: Tensor, t: Tensor) -> Tensor:
        return torch.cat([a * x_t, torch.tanh(b) * torch.ones_like(x_t)], 1)

    x0 = _x0()
    terms = diffusion.training_losses(model, x0, _t([0, 300]))
    terms["vb"].sum().backward()
    assert a.grad is None or a.grad.item() == 0.0
    assert b.grad is not None and b.grad.abs().item() > 0
    a.grad, b.grad = None, None
    terms = diffusion.training_losses(model, x0, _t([0, 300]))
    terms["mse"].sum().backward()
    assert a.grad is not None and a.grad.abs().item() > 0
    assert b.grad is None or b.grad.item() == 0.0


def test_spaced_training_passes_original_timesteps() -> None:
    diffusion = create_diffusion("ddim10")
    seen: list[Tensor] = []

    def model(x_t: Tensor, t: Tensor) -> Tensor:
        seen.append(t.clone())
        return torch.zeros(x_t.shape[0], 18, *x_t.shape[2:])

    diffusion.training_losses(model, _x0(), _t([1, 9]))
    assert seen[0].tolist() == [100, 900]


# ------------------------------------------------------------------ sampling
@pytest.mark.parametrize("method", ["p_sample_loop", "ddim_sample_loop"])
def test_sampling_shape_and_reproducibility(method: str) -> None:
    diffusion = create_diffusion("10")
    model = TinyModel()
    run = lambda seed, **kw: getattr(diffusion, method)(  # noqa: E731
        model, SHAPE, generator=torch.Generator().manual_seed(seed), **kw
    )
    a, b, c = run(1), run(1), run(2)
    assert a.shape == SHAPE and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert torch.equal(run(1, progress=True), a)


def test_ddim_eta_one_is_stochastic_given_fixed_start() -> None:
    diffusion = create_diffusion("ddim10")
    model, start = TinyModel(), _x0(seed=4)
    run = lambda eta, seed: diffusion.ddim_sample_loop(  # noqa: E731
        model, SHAPE, eta=eta, noise=start, generator=torch.Generator().manual_seed(seed)
    )
    assert torch.equal(run(0.0, 1), run(0.0, 2))  # eta = 0 ignores the generator
    assert not torch.allclose(run(1.0, 1), run(1.0, 2))


def test_sampling_loop_visits_original_timesteps() -> None:
    diffusion = create_diffusion("ddim5")
    seen: list[int] = []

    def model(x: Tensor, t: Tensor) -> Tensor:
        seen.append(int(t[0]))
        return torch.zeros(x.shape[0], 18, *x.shape[2:])

    diffusion.p_sample_loop(model, SHAPE, generator=torch.Generator().manual_seed(0))
    assert seen == [800, 600, 400, 200, 0]


@pytest.mark.parametrize("respacing", ["ddim20", "7"])
def test_ddim_with_oracle_recovers_x0(respacing: str) -> None:
    diffusion = create_diffusion(respacing)
    x0 = _x0()
    out = diffusion.ddim_sample_loop(
        _eps_oracle(diffusion, x0), SHAPE, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)


def test_ancestral_with_oracle_recovers_x0() -> None:
    diffusion = create_diffusion("ddim20")
    x0 = _x0()
    out = diffusion.p_sample_loop(
        _eps_oracle(diffusion, x0), SHAPE, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("sampler", "loop"), [("ddim", "ddim_sample_loop"), ("ancestral", "p_sample_loop")]
)
def test_sample_loop_dispatches_on_the_sampler(sampler: str, loop: str) -> None:
    diffusion, model = create_diffusion("ddim4"), TinyModel()
    shape = (1, 9, 4, 3)
    kwargs = dict(model_kwargs={}, clip_denoised=True, device="cpu")
    got = diffusion.sample_loop(
        model, shape, sampler=sampler, eta=0.5, generator=torch.Generator().manual_seed(3), **kwargs
    )
    extra = {"eta": 0.5} if sampler == "ddim" else {}
    want = getattr(diffusion, loop)(
        model, shape, generator=torch.Generator().manual_seed(3), **extra, **kwargs
    )
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_min_snr_weights_match_the_formula() -> None:
    """Min-SNR-gamma: eps MSE weighted min(SNR, g) / SNR, x0 MSE min(SNR, g) (Hang et al.)."""
    betas = get_named_beta_schedule("cosine", 1000)
    ab = np.cumprod(1.0 - betas)
    t = _t([0, 300, 999])
    snr = ab[[0, 300, 999]] / (1 - ab[[0, 300, 999]])
    eps = GaussianDiffusion(betas, loss_weighting="min-snr", min_snr_gamma=5.0)
    x0 = GaussianDiffusion(betas, predict="x0", loss_weighting="min-snr", min_snr_gamma=5.0)
    np.testing.assert_allclose(eps.mse_weight(t).numpy(), np.minimum(snr, 5) / snr, rtol=1e-6)
    np.testing.assert_allclose(x0.mse_weight(t).numpy(), np.minimum(snr, 5), rtol=1e-6)
    assert eps.mse_weight(t)[0] < 0.01 and eps.mse_weight(t)[2] == pytest.approx(1.0)
    uniform = GaussianDiffusion(betas)
    assert torch.equal(uniform.mse_weight(t), torch.ones(3))


def test_min_snr_loss_is_the_weighted_mse() -> None:
    d = create_diffusion(loss_weighting="min-snr", min_snr_gamma=2.0, learn_sigma=False)
    model = TinyModel(learn_sigma=False)
    x0, t = _x0(), _t([10, 900])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
    out = d.training_losses(model, x0, t, noise=noise)
    torch.testing.assert_close(out["loss"], d.mse_weight(t) * out["mse"])


def test_bad_loss_weighting_is_a_config_error() -> None:
    betas = get_named_beta_schedule("cosine", 10)
    with pytest.raises(ConfigError, match="loss_weighting"):
        GaussianDiffusion(betas, loss_weighting="snr")
    with pytest.raises(ConfigError, match="min_snr_gamma"):
        GaussianDiffusion(betas, loss_weighting="min-snr", min_snr_gamma=0.0)
