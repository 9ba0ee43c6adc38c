"""Watching stage 2 learn: what the LDT's deterministic estimate is worth, per band.

A fixed set of training-split slices, held out of the latent cache, is encoded once. Every
``validate_every`` steps the LDT draws its temperature-0 estimate of their generated latents
(20-step DDIM from zero noise) and we log

- R^2 per band against the encoded HR latents, relative to zeros: 1 - sum (est - z)^2 / sum z^2
  (0 = no better than predicting all-zero latents, 1 = exact);
- the decoded PSNR of zeros, of the estimate and of the encoded latents (the oracle);
- the band energy ratio (decoded / HR, pooled over the slices) in the radial bands B4-B8 of
  `wavesr.evaluation.metrics.band_energy`, of a temperature-1 sample and of the noise control
  (`wavesr-noise-latents`: the same starting noise, decoded without the LDT). The LDT's texture
  is worth its training only where its ratio is nearer 1 than the control's.

A model that learns nothing shows R^2 <= 0 and an estimate PSNR at the zero baseline.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from wavesr.config import WaveSRConfig
from wavesr.data.bank import SliceBank
from wavesr.model.autoencoder import FrequencyAutoencoder
from wavesr.model.degrade import degrade, pad_to_multiple
from wavesr.model.latent_scaling import LatentScaling
from wavesr.model.transformer import LatentDiffusionTransformer
from wavesr.model.wavelet import dwt2, idwt2

GENERATED_BANDS = ("LH", "HL", "HH", "LLdetail")  # order of the generated latent channels
ESTIMATE_STEPS = 20
ENERGY_BANDS = 10  # radial bands of the spectrum, as evaluation/metrics.py's band_energy
LOGGED_ENERGY_BANDS = (4, 5, 6, 7, 8)  # B4-B8 (1-based): what the LR lacks at x4


def validation_indices(n: int, k: int) -> list[int]:
    """``k`` evenly spaced slice indices of ``n`` (all of them when k >= n)."""
    if k >= n:
        return list(range(n))
    return sorted({int((i + 0.5) * n / k) for i in range(k)})


def band_r2(
    estimate: Tensor, target: Tensor, latent_channels: int = 3, *, about_mean: bool = False
) -> dict[str, float]:
    """R^2 of each generated band of (B, C, h, w) latents: 1 - SSE / sum (target - ref)^2, ref
    = zeros (the issue's "no better than zeros"), or each channel's mean with ``about_mean`` (the
    classic explained variance: a constant per channel scores 0)."""
    reference = target.mean(dim=(0, 2, 3), keepdim=True) if about_mean else 0.0
    out = {}
    for b in range(target.shape[1] // latent_channels):
        ch = slice(b * latent_channels, (b + 1) * latent_channels)
        sse = float(((estimate[:, ch] - target[:, ch]) ** 2).sum())
        spread = target[:, ch] - (reference[:, ch] if about_mean else reference)
        out[GENERATED_BANDS[b]] = 1.0 - sse / max(float((spread**2).sum()), 1e-12)
    return out


def pooled_band_energy(images: Tensor, n_bands: int = ENERGY_BANDS) -> Tensor:
    """(B, 1, H, W) -> (n_bands,) spectral energy per radial band, summed over the slices:
    `wavesr.evaluation.metrics.band_energy` (edge radius, exact integer band edges) in torch,
    which the training layer may not import."""
    h, w = images.shape[-2:]
    power = (torch.fft.fft2(images.double(), norm="ortho").abs() ** 2).sum(dim=(0, 1))
    ky = torch.fft.fftfreq(h, 1.0 / h).round().long()
    kx = torch.fft.fftfreq(w, 1.0 / w).round().long()
    num = (2 * n_bands * ky[:, None] * w) ** 2 + (2 * n_bands * kx[None, :] * h) ** 2
    bounds = (torch.arange(1, n_bands) * h * w) ** 2
    band = torch.searchsorted(bounds, num.flatten(), right=True)
    return torch.zeros(n_bands, dtype=torch.float64).index_add_(0, band, power.flatten().cpu())


def mean_psnr(sr: Tensor, hr: Tensor) -> float:
    """Mean over slices of PSNR (data range 1)."""
    mse = ((sr.clamp(0, 1) - hr) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(1.0 / mse)).mean())


class LDTValidator:
    """The held-out slices, their encoded latents and the two fixed PSNR baselines."""

    def __init__(self, autoencoder: FrequencyAutoencoder, hr: Tensor, config: WaveSRConfig) -> None:
        from wavesr.model.build import degradation_of

        self.config, self.autoencoder = config, autoencoder.eval()
        device = next(autoencoder.parameters()).device
        hr, self.size = pad_to_multiple(hr.to(device), autoencoder.stride * config.ldt.patch_size)
        _, lr_up = degrade(hr, degradation_of(config), seed=0)
        with torch.no_grad():
            latents = autoencoder.encode_pair(lr_up, hr).mode()
        self.ll_latent, self.target = autoencoder.split_latents(latents)
        self.lr_bands, self.hr = dwt2(lr_up), hr
        self.psnr_zero = self._psnr(torch.zeros_like(self.target))
        self.psnr_oracle = self._psnr(self.target)
        self.hr_energy = pooled_band_energy(hr)

    @classmethod
    def from_bank(
        cls, autoencoder: FrequencyAutoencoder, bank: SliceBank, indices: list[int], config
    ) -> LDTValidator:
        """Slices ``indices`` of the bank, at the largest shape among them (others zero-padded)."""
        h = max(bank.slices[i].shape[0] for i in indices)
        w = max(bank.slices[i].shape[1] for i in indices)
        hr = torch.zeros(len(indices), 1, h, w)
        for row, i in enumerate(indices):
            s = torch.from_numpy(bank.slices[i])
            hr[row, 0, : s.shape[0], : s.shape[1]] = s
        return cls(autoencoder, hr, config)

    @torch.no_grad()
    def _decoded(self, generated: Tensor) -> Tensor:
        return idwt2(self.autoencoder.decode(self.ll_latent, generated, self.lr_bands))

    def _psnr(self, generated: Tensor) -> float:
        return mean_psnr(self._decoded(generated), self.hr)

    def _energy_ratios(self, name: str, generated: Tensor) -> dict[str, float]:
        """``val_energy_<name>_B<k>``: decoded / HR spectral energy in band k, pooled."""
        energy = pooled_band_energy(self._decoded(generated).clamp(0, 1))
        ratio = energy / self.hr_energy.clamp_min(1e-30)
        return {f"val_energy_{name}_B{k}": float(ratio[k - 1]) for k in LOGGED_ENERGY_BANDS}

    def _pipeline(self, ldt, hf: LatentScaling, cond: LatentScaling):
        from wavesr.model.pipeline import WaveSRPipeline

        device = self.ll_latent.device
        return WaveSRPipeline(
            self.config, self.autoencoder, ldt, hf_scaling=hf, cond_scaling=cond, device=device
        )

    @torch.no_grad()
    def estimate(
        self,
        ldt: LatentDiffusionTransformer,
        hf: LatentScaling,
        cond: LatentScaling,
        temperature: float = 0.0,
    ) -> Tensor:
        """The LDT's estimate (temperature 0) or sample of the generated latents (latent
        space), from seed 0's starting noise."""
        return self._pipeline(ldt, hf, cond).sample_high_frequency_latents(
            self.ll_latent,
            steps=ESTIMATE_STEPS,
            seed=0,
            sampler="ddim",
            progress=False,
            temperature=temperature,
        )

    def noise_control(self, hf: LatentScaling) -> Tensor:
        """Seed 0's starting noise mapped out of the diffusion space: what the temperature-1
        sample starts from, i.e. the training latents' per-channel mean and std."""
        noise = torch.randn(self.target.shape, generator=torch.Generator().manual_seed(0))
        return hf.from_diffusion(noise.to(self.target.device))

    def __call__(
        self, ldt: LatentDiffusionTransformer, hf: LatentScaling, cond: LatentScaling
    ) -> dict[str, float]:
        estimate = self.estimate(ldt, hf, cond)
        latent_channels = self.config.autoencoder.latent_channels
        r2 = band_r2(estimate, self.target, latent_channels)
        values = {f"val_r2_{band}": v for band, v in r2.items()}
        values["val_r2_mean"] = float(np.mean(list(r2.values())))
        explained = band_r2(estimate, self.target, latent_channels, about_mean=True)
        values["val_ev_mean"] = float(np.mean(list(explained.values())))
        values.update(
            val_psnr_zero=self.psnr_zero,
            val_psnr_estimate=self._psnr(estimate),
            val_psnr_oracle=self.psnr_oracle,
        )
        values.update(self._energy_ratios("ldt", self.estimate(ldt, hf, cond, temperature=1.0)))
        values.update(self._energy_ratios("noise", self.noise_control(hf)))
        return values


def read_validation(metrics_csv: Path) -> dict[str, list[float]]:
    """The ``val_*`` columns of a run's metrics.csv (rows that have them), plus their steps."""
    if not metrics_csv.is_file():
        return {}
    columns: dict[str, list[float]] = {}
    with metrics_csv.open() as handle:
        for row in csv.DictReader(handle):
            if not row.get("val_r2_mean"):
                continue
            for key, value in row.items():
                if key == "step" or key.startswith("val_"):
                    columns.setdefault(key, []).append(float(value))
    return columns


def verdict(values: dict[str, float]) -> str:
    """One line on the last validation: says so when some band has R^2 <= 0."""
    r2 = {k.removeprefix("val_r2_"): v for k, v in values.items() if k.startswith("val_r2_")}
    bands = ", ".join(f"{k} {v:.3f}" for k, v in r2.items() if k != "mean")
    line = (
        f"validation R^2 per band: {bands} (mean {r2.get('mean', math.nan):.3f}; explained "
        f"variance {values.get('val_ev_mean', math.nan):.3f}); decoded PSNR "
        f"zeros {values['val_psnr_zero']:.2f} / LDT {values['val_psnr_estimate']:.2f} / "
        f"oracle {values['val_psnr_oracle']:.2f} dB"
    )
    failing = [k for k, v in r2.items() if k != "mean" and not v > 0]
    if failing:
        line += f". WARNING: R^2 <= 0 in {', '.join(failing)}: no better than zeros there"
    return line


def plot_validation(metrics_csv: Path, out: Path) -> Path | None:
    """R^2 per band and the three decoded PSNRs against the step; None when nothing to plot."""
    columns = read_validation(metrics_csv)
    if not columns.get("step"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = columns["step"]
    energy = {k: v for k, v in columns.items() if k.startswith("val_energy_")}
    fig, axes = plt.subplots(1, 3 if energy else 2, figsize=(15 if energy else 10, 3.6))
    left, right = axes[:2]
    for key in sorted(k for k in columns if k.startswith("val_r2_")):
        left.plot(steps, columns[key], label=key.removeprefix("val_r2_"), marker=".")
    left.axhline(0.0, color="k", lw=0.8)
    left.set(xlabel="step", ylabel="R^2 vs zeros", title="LDT estimate, per band")
    left.legend(fontsize=8)
    for key, label in (("zero", "zero latents"), ("estimate", "LDT (T=0)"), ("oracle", "oracle")):
        right.plot(steps, columns[f"val_psnr_{key}"], label=label, marker=".")
    right.set(xlabel="step", ylabel="PSNR (dB)", title="decoded, validation slices")
    right.legend(fontsize=8)
    if energy:
        _plot_energy(axes[2], steps, energy)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _plot_energy(ax, steps: list[float], energy: dict[str, list[float]]) -> None:
    """Band energy ratios: the LDT's temperature-1 sample solid, the noise control dashed."""
    colours = {}
    for key in sorted(energy):
        _, _, source, band = key.split("_")
        colour = colours.setdefault(band, f"C{len(colours)}")
        style = "-" if source == "ldt" else "--"
        label = band if source == "ldt" else None
        ax.plot(steps, energy[key], style, color=colour, label=label, marker=".")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xlabel="step", ylabel="energy / HR", title="band energy: LDT T=1 (solid), noise (--)")
    ax.legend(fontsize=8)
