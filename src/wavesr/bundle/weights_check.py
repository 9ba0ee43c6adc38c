"""Weights against the config that will build their network, before anything is allocated.

Each network is built on PyTorch's ``meta`` device (shapes only, no memory) from the config; its
state-dict shapes must equal those the safetensors header promises. A mismatch is reported as the
config field that explains it, found by rebuilding with the values the weights imply, else as the
first differing tensor. Used for every bundle (`load_bundle`: ``sr --model``, ``--init-from``,
``--robust-to``, ``--autoencoder``, ``export``, the baselines' weights) and for ``train --resume``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from wavesr.bundle.safetensors_header import read_header
from wavesr.config import WaveSRConfig
from wavesr.errors import CheckpointError, ConfigError
from wavesr.model.transformer import CONDITIONING_MODES

Shapes = dict[str, tuple[int, ...]]
MAX_PARAMETERS = 2**31  # one network; 8 GiB as float32, about four times that while training
MAX_TRIALS = 64  # rebuilds spent on naming the config field behind a mismatch
# String fields that change shapes, and the values they can take.
CHOICES = {("ldt", "conditioning"): CONDITIONING_MODES}


@dataclass(frozen=True)
class Network:
    label: str  # for messages: "the LDT"
    section: str  # the config section holding its size fields
    build: Callable[[WaveSRConfig], nn.Module]


def _autoencoder(config: WaveSRConfig) -> nn.Module:
    from wavesr.model.autoencoder import FrequencyAutoencoder

    return FrequencyAutoencoder(config.autoencoder)


def _ldt(config: WaveSRConfig) -> nn.Module:
    from wavesr.model.transformer import LatentDiffusionTransformer

    return LatentDiffusionTransformer(config.ldt)


def _edsr(config: WaveSRConfig) -> nn.Module:
    from wavesr.baselines.edsr import EDSR

    return EDSR.from_config(config.baselines)


def _unet(config: WaveSRConfig) -> nn.Module:
    from wavesr.baselines.pixel_diffusion import build_unet

    return build_unet(config)


AUTOENCODER = Network("the autoencoder", "autoencoder", _autoencoder)
LDT = Network("the LDT", "ldt", _ldt)
EDSR_NET = Network("the EDSR network", "baselines", _edsr)
UNET = Network("the pixel-diffusion U-Net", "baselines", _unet)
# `wavesr train MODEL` -> (run sub-folder, network) for each network it trains
TRAINED: dict[str, tuple[tuple[str, Network], ...]] = {
    "autoencoder": (("", AUTOENCODER),),
    "ldt": (("", LDT),),
    "wavesr": (("autoencoder", AUTOENCODER), ("ldt", LDT), ("decoder", AUTOENCODER)),
    "edsr": (("", EDSR_NET),),
    "pixel-diffusion": (("", UNET),),
}


def network_of(kind: str, entry: str) -> Network | None:
    """The network a bundle of ``kind`` builds from its manifest entry ``entry`` (None: none)."""
    if entry == "autoencoder":
        return AUTOENCODER
    if entry == "ldt":
        return LDT
    if entry == "network":
        return {"edsr": EDSR_NET, "pixel-diffusion": UNET}.get(kind)
    return None


def expected_shapes(network: Network, config: WaveSRConfig) -> Shapes:
    """State-dict shapes of ``network`` built from ``config``, allocating nothing."""
    with torch.device("meta"):
        module = network.build(config)
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def check_weights(
    root: Path, network: Network, path: Path, config: WaveSRConfig, config_name: str
) -> None:
    """CheckpointError (naming ``root``) unless the weights file ``path`` fits ``network`` as
    ``config`` describes it; ``config_name`` says where the config came from, for the message."""
    found = {name: info.shape for name, info in read_header(path).items()}
    expected = expected_shapes(network, config)
    if found == expected:
        return
    field = _explaining_field(network, config, expected, found)
    if field is not None:
        name, ours, theirs = field
        raise CheckpointError(
            f"config and weights disagree: {network.section}.{name} is {ours} in {config_name} "
            f"but {theirs} in {path.name}",
            root,
        )
    other = _other_network(network, config, found)
    if other is not None:
        raise CheckpointError(
            f"{path.name} holds {other.label}'s weights, not {network.label}'s "
            "(the manifest points at the wrong file)",
            root,
        )
    raise CheckpointError(
        f"weights do not match the model architecture in {config_name}: "
        f"{_difference(expected, found, path.name)}",
        root,
    )


def check_network_size(network: Network, config: WaveSRConfig) -> None:
    """ConfigError when ``network`` as ``config`` describes it has more than MAX_PARAMETERS."""
    count = sum(math.prod(shape) for shape in expected_shapes(network, config).values())
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"invalid config: {network.label} would have {count:,} parameters "
            f"({count * 4 / 2**30:,.0f} GiB as float32), above the limit 2**31; "
            f"lower the sizes in {network.section}.*"
        )


def check_training_start(model: str, config: WaveSRConfig, out: Path, *, resume: bool) -> None:
    """Before `wavesr train MODEL`: each network it trains must be buildable (MAX_PARAMETERS),
    and with ``resume`` the latest checkpoint must fit the network the config describes."""
    from wavesr.bundle.checkpoint_io import checkpoint_dirs

    for folder, network in TRAINED.get(model, ()):
        check_network_size(network, config)
        existing = checkpoint_dirs(Path(out) / folder) if resume else []
        if existing:
            latest = existing[-1]
            check_weights(latest, network, latest / "model.safetensors", config, "the config")


def _explaining_field(
    network: Network, config: WaveSRConfig, expected: Shapes, found: Shapes
) -> tuple[str, object, object] | None:
    """(field, config value, weights' value) when changing one field of the network's config
    section makes every shape match; None when no single field does."""
    section = getattr(config, network.section)
    trials = 0
    for spec in dataclasses.fields(section):
        value = getattr(section, spec.name)
        if type(value) is bool:
            options = [not value]
        elif type(value) is int:
            options = _candidates(network, config, spec.name, value, expected, found)
        elif type(value) is float:
            options = _ratios(value, expected, found)
        else:
            options = [c for c in CHOICES.get((network.section, spec.name), ()) if c != value]
        for candidate in options:
            if trials >= MAX_TRIALS:
                return None
            trials += 1
            if _shapes_with(network, config, spec.name, candidate) == found:
                return spec.name, value, candidate
    return None


def _candidates(
    network: Network, config: WaveSRConfig, name: str, value: int, expected: Shapes, found: Shapes
) -> list[int]:
    """Values of the field ``name`` that could explain the mismatch, most likely first: those that
    scale or shift a differing dimension onto the weights', one that accounts for the number of
    tensors (depth, blocks) and the neighbours (for fields with few valid values)."""
    out: list[int] = []
    differing = [k for k in expected if k in found and expected[k] != found[k]][:16]
    for key in differing:
        for ours, theirs in zip(expected[key], found[key]):
            if ours != theirs:
                if ours and (theirs * value) % ours == 0:
                    out.append(theirs * value // ours)
                out.append(value + theirs - ours)
    if set(expected) != set(found):
        more = _shapes_with(network, config, name, value + 1)
        if more is not None and len(more) != len(expected):
            step, gap = len(more) - len(expected), len(found) - len(expected)
            if gap % step == 0:
                out.append(value + gap // step)
    out += [value * 2, value // 2, value + 1, value - 1]
    return [c for c in dict.fromkeys(out) if 1 <= c <= 2**20 and c != value][:8]


def _ratios(value: float, expected: Shapes, found: Shapes) -> list[float]:
    """A float field (``mlp_ratio``) scales some widths: the values that scale them onto the
    weights' widths."""
    out = []
    for key in [k for k in expected if k in found and expected[k] != found[k]][:16]:
        for ours, theirs in zip(expected[key], found[key]):
            if ours and ours != theirs:
                out.append(value * theirs / ours)
    return list(dict.fromkeys(out))[:8]


def _shapes_with(network: Network, config: WaveSRConfig, name: str, value: object) -> Shapes | None:
    section = getattr(config, network.section)
    try:
        changed = dataclasses.replace(section, **{name: value})
        return expected_shapes(network, dataclasses.replace(config, **{network.section: changed}))
    except Exception:  # a value this field cannot take (the constructors say so): not the answer
        return None


def _other_network(network: Network, config: WaveSRConfig, found: Shapes) -> Network | None:
    """The network of this config whose tensor names the weights hold instead (a swapped file)."""
    for other in (AUTOENCODER, LDT, EDSR_NET, UNET):
        if other is not network:
            try:
                names = set(expected_shapes(other, config))
            except Exception:  # this config cannot build it: it cannot be the one either
                continue
            if names == set(found):
                return other
    return None


def _difference(expected: Shapes, found: Shapes, file: str) -> str:
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [k for k in expected if k in found and expected[k] != found[k]]
    counts = f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong-shape"
    if wrong:
        key = wrong[0]
        example = f"{key}: the config gives {expected[key]}, {file} holds {found[key]}"
    elif missing:
        example = f"{missing[0]} is not in {file}"
    else:
        example = f"{file} holds {unexpected[0]}, which the config does not build"
    return f"{counts} tensors (e.g. {example})"
