"""Latent Diffusion Transformer (LDT): DiT blocks with adaLN-Zero plus cross-attention.

Modelled on facebookresearch/DiT ``models.py``. The class label of DiT is replaced by the LR LL
latent, which enters either through a cross-attention sub-layer in every block (the paper's
choice) or by concatenation to the input channels before patch embedding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesr.errors import ConfigError

# cross-attention: the paper's; concat: the condition joins the input channels (spatially aligned);
# concat+cross-attention: both (docs/design.md, "Making the LDT learn").
CONDITIONING_MODES = ("cross-attention", "concat", "concat+cross-attention")


@dataclass
class LDTConfig:
    """Architecture of the LDT (see ``ldt_preset`` for named sizes)."""

    in_channels: int = 9  # 3 HR high-frequency bands x 3 latent channels
    cond_channels: int = 3  # LR LL latent channels
    patch_size: int = 2
    hidden_size: int = 256
    depth: int = 6
    num_heads: int = 4
    mlp_ratio: float = 4.0
    conditioning: str = "cross-attention"  # one of CONDITIONING_MODES
    learn_sigma: bool = True  # output = [eps (or x0), variance interpolation v]
    cond_patch_size: int = 1  # patch size of the condition tokens for cross-attention

    def __post_init__(self) -> None:
        for name in ("in_channels", "cond_channels", "patch_size", "hidden_size", "depth"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"LDT {name} must be >= 1, got {getattr(self, name)}")
        if self.num_heads < 1 or self.hidden_size % self.num_heads:
            raise ConfigError(
                f"LDT hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.hidden_size % 4:
            raise ConfigError(f"LDT hidden_size must be a multiple of 4, got {self.hidden_size}")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"LDT mlp_ratio must be > 0, got {self.mlp_ratio}")
        if self.cond_patch_size < 1:
            raise ConfigError(f"LDT cond_patch_size must be >= 1, got {self.cond_patch_size}")
        if self.conditioning not in CONDITIONING_MODES:
            raise ConfigError(
                f"LDT conditioning must be one of {CONDITIONING_MODES}, got {self.conditioning!r}"
            )

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels


LDT_PRESETS: dict[str, dict] = {
    "tiny": {"hidden_size": 32, "depth": 2, "num_heads": 2},
    "cpu": {"hidden_size": 192, "depth": 8, "num_heads": 4, "patch_size": 4, "cond_patch_size": 4},
    "paper": {
        "hidden_size": 384,  # DiT-S width and depth
        "depth": 12,
        "num_heads": 6,
        "patch_size": 4,
        "cond_patch_size": 2,
    },
}


def ldt_preset(name: str, **overrides) -> LDTConfig:
    """Named LDT size ("tiny", "cpu", "paper"), with optional field overrides."""
    if name not in LDT_PRESETS:
        raise ConfigError(f"unknown LDT preset {name!r}; choose from {sorted(LDT_PRESETS)}")
    unknown = set(overrides) - {f.name for f in fields(LDTConfig)}
    if unknown:
        raise ConfigError(f"unknown LDT config field(s): {sorted(unknown)}")
    return LDTConfig(**{**LDT_PRESETS[name], **overrides})


# ---------------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------------


def sincos_1d(dim: int, pos: Tensor) -> Tensor:
    """(M,) positions -> (M, dim) embedding [sin | cos] as in MAE/DiT."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    args = pos.to(torch.float64)[:, None] * omega[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def sincos_2d(dim: int, gh: int, gw: int, step: float = 1.0, offset: float = 0.0) -> Tensor:
    """(gh*gw, dim) embedding of a row-major token grid: half the channels rows, half columns.

    Position of token (i, j) is ``offset + step * (i, j)``.
    """
    rows = offset + step * torch.arange(gh, dtype=torch.float64)
    cols = offset + step * torch.arange(gw, dtype=torch.float64)
    r, c = torch.meshgrid(rows, cols, indexing="ij")
    return torch.cat([sincos_1d(dim // 2, r.flatten()), sincos_1d(dim // 2, c.flatten())], dim=1)


class TimestepEmbedder(nn.Module):
    """Sinusoidal timestep features followed by a two-layer MLP (DiT)."""

    def __init__(self, hidden_size: int, frequency_size: int = 256) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    @staticmethod
    def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return F.pad(emb, (0, dim % 2))

    def forward(self, t: Tensor) -> Tensor:
        freq = self.timestep_embedding(t, self.frequency_size)
        return self.mlp(freq.to(self.mlp[0].weight.dtype))


# ---------------------------------------------------------------------------------------------
# Transformer blocks
# ---------------------------------------------------------------------------------------------


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def _heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, N, D) -> (B, heads, N, D / heads)."""
    b, n, d = x.shape
    return x.view(b, n, num_heads, d // num_heads).transpose(1, 2)


def _merge(x: Tensor) -> Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (_heads(part, self.num_heads) for part in self.qkv(x).chunk(3, dim=-1))
        return self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))


class CrossAttention(nn.Module):
    """Queries from the latent tokens, keys and values from the condition tokens."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        q = _heads(self.q(x), self.num_heads)
        k, v = (_heads(part, self.num_heads) for part in self.kv(context).chunk(2, dim=-1))
        return self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))


class LDTBlock(nn.Module):
    """DiT block (adaLN-Zero) with an optional gated cross-attention between attention and MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, cross_attention: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads)
        self.norm_cross = nn.LayerNorm(dim, eps=1e-6) if cross_attention else None
        self.cross_attn = CrossAttention(dim, num_heads) if cross_attention else None
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim)
        )
        # shift/scale/gate for attention and MLP (+ a gate for cross-attention)
        self.num_mod = 7 if cross_attention else 6
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, self.num_mod * dim))

    def forward(self, x: Tensor, c: Tensor, context: Tensor | None = None) -> Tensor:
        mod = self.adaLN_modulation(c).chunk(self.num_mod, dim=1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod[:6]
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        if self.cross_attn is not None:
            x = x + mod[6].unsqueeze(1) * self.cross_attn(self.norm_cross(x), context)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


def _pad_to_multiple(img: Tensor, multiple: int) -> Tensor:
    """Replicate-pad bottom/right to multiples of `multiple` (any size works, unlike reflect)."""
    ph, pw = (-img.shape[-2]) % multiple, (-img.shape[-1]) % multiple
    return F.pad(img, (0, pw, 0, ph), mode="replicate") if ph or pw else img


class LatentDiffusionTransformer(nn.Module):
    """Predicts (eps, v) for the noised HR high-frequency latent given the LR LL latent."""

    def __init__(self, config: LDTConfig) -> None:
        super().__init__()
        self.config = config
        dim, p = config.hidden_size, config.patch_size
        cross = config.conditioning.endswith("cross-attention")
        self.concat_condition = config.conditioning.startswith("concat")
        in_ch = config.in_channels + (config.cond_channels if self.concat_condition else 0)
        self.x_embedder = nn.Conv2d(in_ch, dim, p, stride=p)
        self.cond_embedder = (
            nn.Conv2d(config.cond_channels, dim, config.cond_patch_size, config.cond_patch_size)
            if cross
            else None
        )
        self.t_embedder = TimestepEmbedder(dim)
        self.blocks = nn.ModuleList(
            LDTBlock(dim, config.num_heads, config.mlp_ratio, cross) for _ in range(config.depth)
        )
        self.final_layer = FinalLayer(dim, p, config.out_channels)
        self._pos_cache: dict[tuple, Tensor] = {}
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT initialisation: xavier linears, zero adaLN modulation and zero final layer.

        The cross-attention output projection stays xavier: its adaLN gate is already zero, and
        zeroing both would leave each with zero gradient forever.
        """

        def basic_init(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

        self.apply(basic_init)
        for conv in (self.x_embedder, self.cond_embedder):
            if conv is not None:  # like nn.Linear, as DiT's patch embedding
                nn.init.xavier_uniform_(conv.weight.view(conv.weight.shape[0], -1))
                nn.init.zeros_(conv.bias)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for layer in [b.adaLN_modulation[-1] for b in self.blocks] + [
            self.final_layer.adaLN_modulation[-1],
            self.final_layer.linear,
        ]:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _pos_embed(self, gh: int, gw: int, step: float, offset: float, like: Tensor) -> Tensor:
        key = (gh, gw, step, offset, like.device, like.dtype)
        if key not in self._pos_cache:
            emb = sincos_2d(self.config.hidden_size, gh, gw, step, offset)
            self._pos_cache[key] = emb.to(device=like.device, dtype=like.dtype)
        return self._pos_cache[key]

    def _tokens(self, conv: nn.Conv2d, img: Tensor, step: float, offset: float) -> Tensor:
        """Patchify + linear embed + 2-D sin-cos position: (B, C, H, W) -> (B, N, D)."""
        grid = conv(_pad_to_multiple(img, conv.stride[0]))
        tokens = grid.flatten(2).transpose(1, 2)
        return tokens + self._pos_embed(grid.shape[-2], grid.shape[-1], step, offset, tokens)

    def _unpatchify(self, x: Tensor, gh: int, gw: int) -> Tensor:
        """(B, gh*gw, p*p*C) -> (B, C, gh*p, gw*p)."""
        p, c = self.config.patch_size, self.config.out_channels
        x = x.reshape(x.shape[0], gh, gw, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, gh * p, gw * p)

    def _check_inputs(self, x: Tensor, t: Tensor, cond: Tensor) -> None:
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must be (B, {cfg.in_channels}, h, w), got {tuple(x.shape)}")
        expected = (x.shape[0], cfg.cond_channels, *x.shape[-2:])
        if tuple(cond.shape) != expected:
            raise ValueError(f"cond must have shape {expected}, got {tuple(cond.shape)}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """x: (B, in, h, w) noised latent; t: (B,) timesteps; cond: (B, cond, h, w) LR LL latent.

        Returns (B, out_channels, h, w).
        """
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        self._check_inputs(x, t, cond)
        cfg = self.config
        h, w = x.shape[-2:]
        p = cfg.patch_size
        gh, gw = -(-h // p), -(-w // p)
        context = None
        if self.concat_condition:
            x = torch.cat([x, cond], dim=1)
        if self.cond_embedder is not None:
            # Put condition tokens on the latent-token grid (patch centres in units of p), so the
            # two sin-cos embeddings agree on where each token lies.
            cp = cfg.cond_patch_size
            context = self._tokens(self.cond_embedder, cond, cp / p, (cp - p) / (2 * p))
        tokens = self._tokens(self.x_embedder, x, 1.0, 0.0)
        c = self.t_embedder(t)
        for block in self.blocks:
            tokens = block(tokens, c, context)
        out = self._unpatchify(self.final_layer(tokens, c), gh, gw)
        return out[..., :h, :w]
