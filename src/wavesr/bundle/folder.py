"""Model bundles: the inference artefact of a training run (or the bundled default model).

A bundle is a folder with ``wavesr.json`` and one safetensors file per network::

    {"format": "wavesr-bundle/1", "kind": "wavesr", "config": {...full WaveSRConfig...},
     "files": {"autoencoder": {"file": "autoencoder.safetensors", "sha256": "..."}, ...},
     "extras": {"hf_scale": [...], "hf_shift": [...], "cond_scale": [...], ...}, "step": 1234}

Each file's SHA-256 is checked at load, and its safetensors header against the network the
config describes (`wavesr.bundle.weights_check`), before any tensor is read; a mismatch is a clear
CheckpointError.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from wavesr.bundle.checkpoint_io import (
    PICKLE_SUFFIXES,
    load_state_into,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)
from wavesr.bundle.weights_check import check_weights, network_of
from wavesr.config import WaveSRConfig, config_from_dict
from wavesr.errors import CheckpointError, ConfigError
from wavesr.model.autoencoder import FrequencyAutoencoder
from wavesr.model.latent_scaling import LatentScaling
from wavesr.model.pipeline import WaveSRPipeline
from wavesr.model.transformer import LatentDiffusionTransformer, LDTConfig

FORMAT = "wavesr-bundle/1"
MANIFEST = "wavesr.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Bundle:
    root: Path
    kind: str
    config: WaveSRConfig
    tensors: dict[str, dict[str, torch.Tensor]]
    extras: dict = field(default_factory=dict)
    step: int = 0


def save_bundle(
    root: Path,
    kind: str,
    config: WaveSRConfig,
    networks: dict[str, dict[str, torch.Tensor]],
    *,
    extras: dict | None = None,
    step: int = 0,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write each network's weights (optionally cast, e.g. to fp16) and the manifest last."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, state in networks.items():
        path = root / f"{name}.safetensors"
        cast = {
            k: (v.to(dtype) if dtype is not None and v.dtype.is_floating_point else v)
            for k, v in state.items()
        }
        save_tensors(cast, path)
        files[name] = {"file": path.name, "sha256": sha256_of(path)}
    manifest = {
        "format": FORMAT,
        "kind": kind,
        "step": step,
        "config": config.to_dict(),
        "files": files,
        "extras": extras or {},
    }
    write_json(manifest, root / MANIFEST)
    return root / MANIFEST


def _manifest_root(root: Path) -> Path:
    """The bundle folder for `root`; a weights file given instead is refused with the reason."""
    if root.is_file() and root.name == MANIFEST:
        return root.parent
    if root.is_file():
        if root.suffix in PICKLE_SUFFIXES:
            load_tensors(root)  # raises: pickle checkpoints are refused, with the reason
        raise CheckpointError(
            f"expected a model folder holding {MANIFEST} (from `wavesr train`), got a file", root
        )
    if not root.exists():
        raise CheckpointError("not a WaveSR model folder (no such folder)", root)
    return root


def _check_manifest(manifest: object, path: Path) -> dict:
    """Structure checks, so that a damaged manifest is a clear error, not a KeyError."""
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{MANIFEST} must hold a JSON object", path)
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"unknown bundle format {manifest.get('format')!r}", path)
    files = manifest.get("files")
    if not isinstance(manifest.get("config"), dict) or not isinstance(files, dict):
        raise CheckpointError("manifest needs a 'config' object and a 'files' object", path)
    for name, entry in files.items():
        ok = isinstance(entry, dict) and all(
            isinstance(entry.get(k), str) and entry[k] for k in ("file", "sha256")
        )
        if not ok or Path(entry["file"]).name != entry["file"]:
            raise CheckpointError(
                f"manifest entry {name!r} needs a plain 'file' name and its 'sha256'", path
            )
    if not isinstance(manifest.get("kind"), str) or not isinstance(
        manifest.get("extras", {}), dict
    ):
        raise CheckpointError("manifest needs a 'kind' string ('extras' must be an object)", path)
    return manifest


def copy_bundle(source: str | Path, destination: str | Path) -> None:
    """Copy a bundle's manifest and weight files (checked) into another folder."""
    bundle = load_bundle(source)
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    manifest = read_json(bundle.root / MANIFEST)
    for entry in manifest["files"].values():  # weights first, the manifest last (as save_bundle)
        shutil.copyfile(bundle.root / entry["file"], destination / f".{entry['file']}.part")
        os.replace(destination / f".{entry['file']}.part", destination / entry["file"])
    write_json(manifest, destination / MANIFEST)


def load_bundle(root: str | Path, *, verify: bool = True) -> Bundle:
    root = _manifest_root(Path(root))
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"not a WaveSR model folder (no {MANIFEST})", root)
    manifest = _check_manifest(read_json(manifest_path), manifest_path)
    try:
        config = config_from_dict(manifest["config"])
    except ConfigError as exc:
        raise CheckpointError(f"invalid config in bundle: {exc}", manifest_path) from exc
    for name, entry in manifest["files"].items():
        path = root / entry["file"]
        if not path.is_file():
            raise CheckpointError(f"weights file {entry['file']} is missing", root)
        if verify and sha256_of(path) != entry["sha256"]:
            raise CheckpointError(
                f"SHA-256 mismatch for {entry['file']}: the weights are corrupt or were changed "
                f"(expected {entry['sha256'][:12]}..., got {sha256_of(path)[:12]}...)",
                path,
            )
        network = network_of(manifest["kind"], name)
        if network is not None:  # the config must build exactly these tensors: check the header
            check_weights(root, network, path, config, MANIFEST)
    # Only once every file has passed are the tensors read.
    tensors = {
        name: load_tensors(root / entry["file"]) for name, entry in manifest["files"].items()
    }
    return Bundle(
        root=root,
        kind=manifest["kind"],
        config=config,
        tensors=tensors,
        extras=manifest.get("extras", {}),
        step=int(manifest.get("step", 0) or 0),
    )


@dataclass
class LoadedLDT:
    """A bundle's LDT and its latent scalings (the diffusion space is ``scaling.to_diffusion``)."""

    model: LatentDiffusionTransformer
    hf: LatentScaling  # the generated latents
    cond: LatentScaling  # the LR LL latent that conditions the LDT


def latent_scalings(extras: dict, ldt: LDTConfig) -> tuple[LatentScaling, LatentScaling]:
    """The scalings stored in a bundle's extras (one float in bundles made before per-channel
    scaling, per-channel lists since); 1 / no shift where absent."""
    try:
        hf = LatentScaling.from_extras(
            extras.get("hf_scale", 1.0), extras.get("hf_shift"), ldt.in_channels
        )
        cond = LatentScaling.from_extras(
            extras.get("cond_scale", 1.0), extras.get("cond_shift"), ldt.cond_channels
        )
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"invalid latent scales in bundle extras: {exc}", None) from exc
    return hf, cond


def scaling_extras(hf: LatentScaling, cond: LatentScaling) -> dict:
    """The bundle extras that :func:`latent_scalings` reads back."""
    (hf_scale, hf_shift), (cond_scale, cond_shift) = hf.to_extras(), cond.to_extras()
    return {
        "hf_scale": hf_scale,
        "hf_shift": hf_shift,
        "cond_scale": cond_scale,
        "cond_shift": cond_shift,
    }


def load_ldt(bundle: Bundle) -> LoadedLDT:
    """The LDT of a model bundle, in eval mode on the CPU, and its latent scalings."""
    if "ldt" not in bundle.tensors:
        raise CheckpointError("bundle has no LDT weights", bundle.root)
    ldt = LatentDiffusionTransformer(bundle.config.ldt)
    load_state_into(ldt, bundle.tensors["ldt"], bundle.root)
    hf, cond = latent_scalings(bundle.extras, bundle.config.ldt)
    return LoadedLDT(ldt.eval(), hf=hf, cond=cond)


def load_autoencoder(bundle: Bundle, device: str | torch.device = "cpu") -> FrequencyAutoencoder:
    if "autoencoder" not in bundle.tensors:
        raise CheckpointError("bundle has no autoencoder weights", bundle.root)
    model = FrequencyAutoencoder(bundle.config.autoencoder)
    load_state_into(model, bundle.tensors["autoencoder"], bundle.root)
    return model.to(device).eval()


def load_pipeline(path: str | Path | Bundle, device: str = "cpu") -> WaveSRPipeline:
    """The inference pipeline of a bundle folder (or a loaded Bundle), on `device`."""
    bundle = path if isinstance(path, Bundle) else load_bundle(path)
    autoencoder = load_autoencoder(bundle, device)
    if "ldt" not in bundle.tensors:
        return WaveSRPipeline(bundle.config, autoencoder, None, device=device)
    ldt = load_ldt(bundle)
    return WaveSRPipeline(
        bundle.config,
        autoencoder,
        ldt.model,
        hf_scaling=ldt.hf,
        cond_scaling=ldt.cond,
        device=device,
    )
