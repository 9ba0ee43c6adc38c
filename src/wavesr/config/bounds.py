"""Upper bounds on every size field of a config: a typo is an error, not an allocation.

The limits are generous (several times the `paper` preset, which trains on GPUs) but finite, and
docs/reliability.md lists them. They apply wherever a config comes from: presets, YAML files,
``--set`` overrides and the config inside a model bundle. A config within every field's limit can
still describe a network too large to build;
`wavesr.bundle.weights_check.check_network_size` bounds its parameter count before training starts.
"""

from __future__ import annotations

import math
from typing import Any

from wavesr.errors import ConfigError

# A WaveSRConfig (wavesr.config), not imported: wavesr.config imports this module.
WaveSRConfig = Any

SIZE_LIMITS: dict[str, float] = {
    "autoencoder.latent_channels": 64,
    "autoencoder.base_channels": 1024,
    "autoencoder.channel_mult_last": 16,
    "autoencoder.layers_per_block": 16,
    "autoencoder.norm_num_groups": 1024,
    "autoencoder.cond_channels": 4096,
    "autoencoder.final_layers": 64,
    "ldt.in_channels": 512,
    "ldt.cond_channels": 64,
    "ldt.patch_size": 32,
    "ldt.hidden_size": 4096,
    "ldt.depth": 128,
    "ldt.num_heads": 128,
    "ldt.mlp_ratio": 16,
    "ldt.cond_patch_size": 32,
    "diffusion.num_timesteps": 100_000,
    "diffusion.sample_steps": 100_000,
    "data.size": 4096,
    "data.crop": 4096,
    "data.cache_max_slices": 10_000_000,
    "baselines.edsr_blocks": 256,
    "baselines.edsr_channels": 1024,
    "baselines.unet_channels": 1024,
}
STAGE_LIMITS: dict[str, float] = {
    "train.batch_size": 4096,
    "train.max_steps": 10**9,
    "train.log_every": 10**9,
    "train.checkpoint_every": 10**9,
    "train.keep_last": 1000,
    "optim.warmup_steps": 10**9,
}
STAGES = ("autoencoder_training", "ldt_training", "baseline_training")
MAX_UNET_LEVELS = 8
MAX_UNET_MULT = 32
MAX_WIDTH = 4096  # channels of the widest autoencoder or U-Net level
MAX_BATCH_PIXELS = 2**30  # batch_size x crop x crop of one training batch (4 GiB as float32)
MAX_SEED = 2**32


def check_size_limits(config: WaveSRConfig) -> None:
    """ConfigError for the first size above its limit. Called by `WaveSRConfig.validate` before
    its own checks, which divide by ``autoencoder.downsample``: that is checked here first."""
    downsample_ok = config.autoencoder.downsample in (2, 4, 8)
    for ok, message in [
        (downsample_ok, "autoencoder.downsample must be 2, 4 or 8"),
        *size_limit_checks(config),
    ]:
        if not ok:
            raise ConfigError(f"invalid config: {message}")


def size_limit_checks(config: WaveSRConfig) -> list[tuple[bool, str]]:
    """(ok, message) for each bound."""
    limits = dict(SIZE_LIMITS)
    for stage in STAGES:
        limits.update({f"{stage}.{key}": limit for key, limit in STAGE_LIMITS.items()})
    checks = [_at_most(key, _get(config, key), limit) for key, limit in limits.items()]
    return checks + _derived_checks(config)


def _derived_checks(config: WaveSRConfig) -> list[tuple[bool, str]]:
    """Products of fields that size one allocation, and the baselines' lower bounds."""
    ae, b = config.autoencoder, config.baselines
    n_down = int(math.log2(ae.downsample)) if ae.downsample in (2, 4, 8) else 0
    widest = min(ae.base_channels * 2**n_down, ae.base_channels * ae.channel_mult_last)
    mults = list(b.unet_mults)
    checks = [
        _at_most(
            "the widest autoencoder level (base_channels x 2**levels, at most x channel_mult_last)",
            widest,
            MAX_WIDTH,
        ),
        (
            1 <= len(mults) <= MAX_UNET_LEVELS,
            f"baselines.unet_mults needs 1 to {MAX_UNET_LEVELS} levels, got {len(mults)}",
        ),
        (
            all(1 <= m <= MAX_UNET_MULT for m in mults),
            f"baselines.unet_mults must lie in [1, {MAX_UNET_MULT}], got {mults}",
        ),
        _at_most(
            "the widest U-Net level (unet_channels x max(unet_mults))",
            b.unet_channels * max(mults, default=1),
            MAX_WIDTH,
        ),
        (
            min(b.edsr_blocks, b.edsr_channels, b.unet_channels) >= 1,
            "baselines.edsr_blocks, edsr_channels and unet_channels must be >= 1",
        ),
    ]
    for stage in STAGES:
        train = getattr(config, stage).train
        pixels = train.batch_size * config.data.crop**2
        checks.append(
            _at_most(f"{stage}.train.batch_size x data.crop**2", pixels, MAX_BATCH_PIXELS)
        )
        checks.append(
            (
                0 <= train.seed < MAX_SEED,
                f"{stage}.train.seed must lie in [0, 2**32), got {train.seed}",
            )
        )
    return checks


def _at_most(key: str, value: Any, limit: float) -> tuple[bool, str]:
    # `value <= limit` is False for NaN too: a NaN size is as unusable as a huge one.
    return value <= limit, f"{key} must be <= {limit:,}, got {value} (limits: docs/reliability.md)"


def _get(config: WaveSRConfig, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node
