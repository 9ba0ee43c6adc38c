"""Gaussian diffusion: forward process, hybrid training loss, ancestral and DDIM sampling.

Same maths as guided-diffusion / DiT (eps or x0 prediction, IDDPM learned-range variance,
L_simple + weighted VLB), written for WaveSR. Schedule constants are float64 numpy arrays and
are cast to the dtype of the tensor they multiply.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from wavesr.errors import ConfigError
from wavesr.model.diffusion.losses import discretized_gaussian_log_likelihood, normal_kl

PREDICTIONS = ("eps", "x0")
VLB_SCALINGS = ("per-dim-bits", "raw")
LOSS_WEIGHTINGS = ("uniform", "min-snr")

Model = Callable[..., Tensor]


def mean_flat(x: Tensor) -> Tensor:
    """Mean over all non-batch dimensions."""
    return x.mean(dim=tuple(range(1, x.ndim)))


def _extract(arr: np.ndarray, t: Tensor, like: Tensor) -> Tensor:
    """``arr[t]`` as a (B, 1, ..., 1) tensor with ``like``'s dtype and device."""
    values = torch.from_numpy(arr).to(dtype=like.dtype).to(like.device)[t.to(like.device)]
    return values.view(-1, *([1] * (like.ndim - 1)))


def _randn(
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    # Draw on the generator's own device so a CPU generator also drives GPU sampling reproducibly.
    gen_device = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=dtype).to(device)


def _last(steps: Iterator[dict[str, Tensor]]) -> dict[str, Tensor]:
    return deque(steps, maxlen=1)[0]


def _resolve_device(model: Model, noise: Tensor | None, device: Any) -> torch.device:
    if device is not None:
        return torch.device(device)
    if noise is not None:
        return noise.device
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        first = next(iter(parameters()), None)
        if first is not None:
            return first.device
    return torch.device("cpu")


class GaussianDiffusion:
    """Diffusion process over ``len(betas)`` steps, indices 0 (least noise) .. T-1.

    ``predict``: what the model's mean channels are, "eps" (the noise) or "x0".
    ``learn_sigma``: the model also outputs v (same channels) interpolating the log variance
    between beta_tilde_t (v=-1) and beta_t (v=1); otherwise the variance is fixed to beta_tilde_t.
    ``vlb_weight`` / ``vlb_scaling``: loss = mse + vb_coefficient * vb, see ``vb_coefficient``.
    ``loss_weighting``: "uniform" (L_simple) or "min-snr" (Min-SNR-gamma, Hang et al. 2023: the
    MSE of step t is weighted as an x0 loss by min(SNR_t, gamma), see ``mse_weight``).
    """

    def __init__(
        self,
        betas: np.ndarray | Sequence[float],
        *,
        predict: str = "eps",
        learn_sigma: bool = True,
        vlb_weight: float = 1e-4,
        vlb_scaling: str = "per-dim-bits",
        loss_weighting: str = "uniform",
        min_snr_gamma: float = 5.0,
    ) -> None:
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ConfigError(
                f"loss_weighting must be one of {LOSS_WEIGHTINGS}, got {loss_weighting!r}"
            )
        if not (math.isfinite(min_snr_gamma) and min_snr_gamma > 0):
            raise ConfigError(f"min_snr_gamma must be a finite number > 0, got {min_snr_gamma}")
        if predict not in PREDICTIONS:
            raise ConfigError(f"predict must be one of {PREDICTIONS}, got {predict!r}")
        if vlb_scaling not in VLB_SCALINGS:
            raise ConfigError(f"vlb_scaling must be one of {VLB_SCALINGS}, got {vlb_scaling!r}")
        if not (math.isfinite(vlb_weight) and vlb_weight >= 0):
            raise ConfigError(f"vlb_weight must be a finite number >= 0, got {vlb_weight}")
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size == 0:
            raise ConfigError(f"betas must be a non-empty 1-D array, got shape {betas.shape}")
        if not ((betas > 0).all() and (betas <= 1).all()):
            raise ConfigError("betas must lie in (0, 1]")

        self.predict = predict
        self.learn_sigma = learn_sigma
        self.vlb_weight = float(vlb_weight)
        self.vlb_scaling = vlb_scaling
        self.loss_weighting = loss_weighting
        self.min_snr_gamma = float(min_snr_gamma)
        self.betas = betas
        self.num_timesteps = int(betas.shape[0])
        # Model timestep for each index; the identity here, the kept original steps when respaced.
        self.timestep_map = np.arange(self.num_timesteps, dtype=np.int64)
        self._set_constants(betas)

    def _set_constants(self, betas: np.ndarray) -> None:
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.alphas_cumprod_next = np.append(self.alphas_cumprod[1:], 0.0)
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.log_one_minus_alphas_cumprod = np.log(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
        self.log_betas = np.log(betas)

        # Posterior q(x_{t-1} | x_t, x_0); its variance is beta_tilde_t.
        self.posterior_variance = (
            betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        )
        # beta_tilde_0 = 0: its log is clipped to beta_tilde_1 (to beta_0 for a 1-step chain).
        first = self.posterior_variance[1] if self.num_timesteps > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.append(first, self.posterior_variance[1:]))
        self.posterior_mean_coef1 = (
            betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        )
        self.posterior_mean_coef2 = (
            (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        )

    @property
    def vb_coefficient(self) -> float:
        """Multiplier of the per-sample VLB term (bits/dim) in ``loss``.

        "per-dim-bits": vlb_weight * num_timesteps (the one-sample estimate of L_vlb = sum_t L_t is
        T * L_t, so vlb_weight is IDDPM's lambda; 1e-3 reproduces guided-diffusion / DiT).
        "raw": vlb_weight.
        """
        scale = self.num_timesteps if self.vlb_scaling == "per-dim-bits" else 1
        return self.vlb_weight * scale

    # ----------------------------------------------------------------- forward process
    def q_mean_variance(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mean, variance and log variance of q(x_t | x_0)."""
        mean = _extract(self.sqrt_alphas_cumprod, t, x0) * x0
        variance = _extract(1.0 - self.alphas_cumprod, t, x0).expand_as(x0)
        log_variance = _extract(self.log_one_minus_alphas_cumprod, t, x0).expand_as(x0)
        return mean, variance, log_variance

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """Sample x_t ~ q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)."""
        if noise is None:
            noise = torch.randn_like(x0)
        if noise.shape != x0.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} != x0 shape {tuple(x0.shape)}")
        return (
            _extract(self.sqrt_alphas_cumprod, t, x0) * x0
            + _extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise
        )

    def q_posterior_mean_variance(
        self, x0: Tensor, x_t: Tensor, t: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Mean, variance and clipped log variance of q(x_{t-1} | x_t, x_0)."""
        if x0.shape != x_t.shape:
            raise ValueError(f"x0 shape {tuple(x0.shape)} != x_t shape {tuple(x_t.shape)}")
        mean = (
            _extract(self.posterior_mean_coef1, t, x_t) * x0
            + _extract(self.posterior_mean_coef2, t, x_t) * x_t
        )
        variance = _extract(self.posterior_variance, t, x_t).expand_as(x_t)
        log_variance = _extract(self.posterior_log_variance_clipped, t, x_t).expand_as(x_t)
        return mean, variance, log_variance

    def predict_xstart_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        return (
            _extract(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t
            - _extract(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps
        )

    def predict_eps_from_xstart(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        return (_extract(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0) / _extract(
            self.sqrt_recipm1_alphas_cumprod, t, x_t
        )

    # ----------------------------------------------------------------- model output
    def _model_timesteps(self, t: Tensor) -> Tensor:
        """Indices of this process -> the original timesteps the model was trained with."""
        return torch.from_numpy(self.timestep_map).to(t.device)[t]

    def _run_model(
        self, model: Model, x: Tensor, t: Tensor, model_kwargs: dict | None
    ) -> tuple[Tensor, Tensor | None]:
        """Call the model; return (mean-parameter prediction, v or None) in ``x``'s dtype."""
        output = model(x, self._model_timesteps(t), **(model_kwargs or {})).to(x.dtype)
        channels = x.shape[1] * (2 if self.learn_sigma else 1)
        if output.shape != (x.shape[0], channels, *x.shape[2:]):
            raise ValueError(
                f"model output shape {tuple(output.shape)} != expected "
                f"{(x.shape[0], channels, *x.shape[2:])} (learn_sigma={self.learn_sigma})"
            )
        if self.learn_sigma:
            pred, v = output.split(x.shape[1], dim=1)
            return pred, v
        return output, None

    def _log_variance(self, v: Tensor | None, x: Tensor, t: Tensor) -> Tensor:
        min_log = _extract(self.posterior_log_variance_clipped, t, x)
        if v is None:
            return min_log.expand_as(x)
        # IDDPM learned range: v = -1 -> log beta_tilde_t (clipped), v = 1 -> log beta_t.
        max_log = _extract(self.log_betas, t, x)
        frac = (v + 1) / 2
        return frac * max_log + (1 - frac) * min_log

    def _mean_variance(
        self,
        pred: Tensor,
        v: Tensor | None,
        x: Tensor,
        t: Tensor,
        clip_denoised: bool,
        denoised_fn: Callable[[Tensor], Tensor] | None = None,
    ) -> dict[str, Tensor]:
        log_variance = self._log_variance(v, x, t)
        if v is None:
            variance = _extract(self.posterior_variance, t, x).expand_as(x)
        else:
            variance = torch.exp(log_variance)
        pred_xstart = pred if self.predict == "x0" else self.predict_xstart_from_eps(x, t, pred)
        if denoised_fn is not None:
            pred_xstart = denoised_fn(pred_xstart)
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x, t)
        return {
            "mean": mean,
            "variance": variance,
            "log_variance": log_variance,
            "pred_xstart": pred_xstart,
        }

    def p_mean_variance(
        self,
        model: Model,
        x: Tensor,
        t: Tensor,
        clip_denoised: bool = False,
        denoised_fn: Callable[[Tensor], Tensor] | None = None,
        model_kwargs: dict | None = None,
    ) -> dict[str, Tensor]:
        """p(x_{t-1} | x_t): dict with "mean", "variance", "log_variance", "pred_xstart"."""
        pred, v = self._run_model(model, x, t, model_kwargs)
        return self._mean_variance(pred, v, x, t, clip_denoised, denoised_fn)

    # ----------------------------------------------------------------- training
    def mse_weight(self, t: Tensor) -> Tensor:
        """Per-sample weight of the MSE term at timesteps ``t`` (B,).

        Min-SNR-gamma weights the x0 error by min(SNR, gamma); an eps error equals the x0 error
        times SNR, so the eps MSE gets min(SNR, gamma) / SNR (Hang et al. 2023, Eq. 8-9).
        """
        if self.loss_weighting == "uniform":
            return torch.ones(t.shape, dtype=torch.float32, device=t.device)
        snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)
        clipped = np.minimum(snr, self.min_snr_gamma)
        weight = clipped / snr if self.predict == "eps" else clipped
        return torch.from_numpy(weight).to(device=t.device, dtype=torch.float32)[t]

    def _vb_terms_bpd(
        self, x0: Tensor, x_t: Tensor, t: Tensor, mean: Tensor, log_variance: Tensor
    ) -> Tensor:
        """Per-sample L_t in bits/dim: KL to the posterior for t > 0, decoder NLL at t = 0."""
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x0, x_t, t)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, mean, log_variance)) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, means=mean, log_scales=0.5 * log_variance)
        nll = mean_flat(nll) / math.log(2.0)
        return torch.where(t.to(x0.device) == 0, nll, kl)

    def training_losses(
        self,
        model: Model,
        x0: Tensor,
        t: Tensor,
        model_kwargs: dict | None = None,
        noise: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Per-sample "loss" = mse_weight(t) * "mse" + vb_coefficient * "vb" (vb in bits/dim, mean
        detached); "mse" is the unweighted error of the model's target."""
        if noise is None:
            noise = torch.randn_like(x0)
        x_t = self.q_sample(x0, t, noise=noise)
        pred, v = self._run_model(model, x_t, t, model_kwargs)
        target = noise if self.predict == "eps" else x0
        mse = mean_flat((target - pred) ** 2)
        if v is None:
            vb = torch.zeros_like(mse)
        else:
            # Only the variance learns from the VLB; the mean is trained by the MSE alone.
            out = self._mean_variance(pred.detach(), v, x_t, t, clip_denoised=False)
            vb = self._vb_terms_bpd(x0, x_t, t, out["mean"], out["log_variance"])
        weighted = self.mse_weight(t).to(mse.dtype) * mse
        return {"loss": weighted + self.vb_coefficient * vb, "mse": mse, "vb": vb}

    # ----------------------------------------------------------------- sampling
    def p_sample(
        self,
        model: Model,
        x: Tensor,
        t: Tensor,
        *,
        clip_denoised: bool = False,
        model_kwargs: dict | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """One ancestral step x_t -> x_{t-1}; no noise is added at t = 0."""
        out = self.p_mean_variance(model, x, t, clip_denoised, model_kwargs=model_kwargs)
        noise = _randn(x.shape, generator, x.device, x.dtype)
        nonzero = (t != 0).to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
        sample = out["mean"] + nonzero * torch.exp(0.5 * out["log_variance"]) * noise
        return {"sample": sample, "pred_xstart": out["pred_xstart"]}

    def ddim_sample(
        self,
        model: Model,
        x: Tensor,
        t: Tensor,
        *,
        eta: float = 0.0,
        clip_denoised: bool = False,
        model_kwargs: dict | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """One DDIM step to the previous index of this (possibly respaced) process."""
        out = self.p_mean_variance(model, x, t, clip_denoised, model_kwargs=model_kwargs)
        eps = self.predict_eps_from_xstart(x, t, out["pred_xstart"])
        alpha_bar = _extract(self.alphas_cumprod, t, x)
        alpha_bar_prev = _extract(self.alphas_cumprod_prev, t, x)
        sigma = (
            eta
            * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar))
            * torch.sqrt(1 - alpha_bar / alpha_bar_prev)
        )
        mean = (
            out["pred_xstart"] * torch.sqrt(alpha_bar_prev)
            + torch.sqrt((1 - alpha_bar_prev - sigma**2).clamp(min=0)) * eps
        )
        noise = _randn(x.shape, generator, x.device, x.dtype)
        nonzero = (t != 0).to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
        return {"sample": mean + nonzero * sigma * noise, "pred_xstart": out["pred_xstart"]}

    def _loop(
        self,
        step: Callable[[Tensor, Tensor], dict[str, Tensor]],
        model: Model,
        shape: Sequence[int],
        noise: Tensor | None,
        generator: torch.Generator | None,
        progress: bool,
        device: Any,
    ) -> Iterator[dict[str, Tensor]]:
        shape = tuple(int(s) for s in shape)
        device = _resolve_device(model, noise, device)
        if noise is not None:
            if tuple(noise.shape) != shape:
                raise ValueError(f"noise shape {tuple(noise.shape)} != requested shape {shape}")
            x = noise.to(device)
        else:
            x = _randn(shape, generator, device, torch.float32)
        indices: Any = range(self.num_timesteps - 1, -1, -1)
        if progress:
            from tqdm.auto import tqdm

            indices = tqdm(indices, desc="sampling")
        for i in indices:
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            with torch.no_grad():
                out = step(x, t)
            yield out
            x = out["sample"]

    def p_sample_loop_progressive(
        self,
        model: Model,
        shape: Sequence[int],
        *,
        model_kwargs: dict | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        clip_denoised: bool = False,
        device: Any = None,
    ) -> Iterator[dict[str, Tensor]]:
        """Yield {"sample", "pred_xstart"} after each ancestral step, from t = T-1 down to 0."""

        def step(x: Tensor, t: Tensor) -> dict[str, Tensor]:
            return self.p_sample(
                model,
                x,
                t,
                clip_denoised=clip_denoised,
                model_kwargs=model_kwargs,
                generator=generator,
            )

        yield from self._loop(step, model, shape, noise, generator, progress, device)

    def p_sample_loop(
        self,
        model: Model,
        shape: Sequence[int],
        *,
        model_kwargs: dict | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        clip_denoised: bool = False,
        device: Any = None,
    ) -> Tensor:
        """Ancestral sampling from N(0, I) (or ``noise``) down to x_0."""
        final = _last(
            self.p_sample_loop_progressive(
                model,
                shape,
                model_kwargs=model_kwargs,
                noise=noise,
                generator=generator,
                progress=progress,
                clip_denoised=clip_denoised,
                device=device,
            )
        )
        return final["sample"]

    def ddim_sample_loop_progressive(
        self,
        model: Model,
        shape: Sequence[int],
        *,
        eta: float = 0.0,
        model_kwargs: dict | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        clip_denoised: bool = False,
        device: Any = None,
    ) -> Iterator[dict[str, Tensor]]:
        """Yield {"sample", "pred_xstart"} after each DDIM step."""

        def step(x: Tensor, t: Tensor) -> dict[str, Tensor]:
            return self.ddim_sample(
                model,
                x,
                t,
                eta=eta,
                clip_denoised=clip_denoised,
                model_kwargs=model_kwargs,
                generator=generator,
            )

        yield from self._loop(step, model, shape, noise, generator, progress, device)

    def ddim_sample_loop(
        self,
        model: Model,
        shape: Sequence[int],
        *,
        eta: float = 0.0,
        model_kwargs: dict | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        clip_denoised: bool = False,
        device: Any = None,
    ) -> Tensor:
        """DDIM sampling (eta = 0: deterministic) over this process's steps."""
        final = _last(
            self.ddim_sample_loop_progressive(
                model,
                shape,
                eta=eta,
                model_kwargs=model_kwargs,
                noise=noise,
                generator=generator,
                progress=progress,
                clip_denoised=clip_denoised,
                device=device,
            )
        )
        return final["sample"]

    def sample_loop(
        self, model: Model, shape: Sequence[int], *, sampler: str, eta: float = 0.0, **kwargs: Any
    ) -> Tensor:
        """`ddim_sample_loop` (with `eta`) for sampler "ddim", else ancestral `p_sample_loop`.

        ``kwargs`` go to the loop: model_kwargs, noise, generator, progress, clip_denoised,
        device.
        """
        if sampler == "ddim":
            return self.ddim_sample_loop(model, shape, eta=eta, **kwargs)
        return self.p_sample_loop(model, shape, **kwargs)
