"""Model bundles: the inference artefact of a training run (or the bundled default model).

A bundle is a folder with ``wavesr.json`` and one safetensors file per network::

    {"format": "wavesr-bundle/1", "kind": "wavesr", "config": {...full WaveSRConfig...},
     "files": {"autoencoder": {"file": "autoencoder.safetensors", "sha256": "..."}, ...},
     "extras": {"latent_scale": ..., "cond_scale": ...}, "step": 1234}

Each file's SHA-256 is checked at load; a mismatch is a clear CheckpointError.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from wavesr.config import WaveSRConfig, config_from_dict
from wavesr.errors import CheckpointError, ConfigError
from wavesr.training.checkpoint import (
    PICKLE_SUFFIXES,
    load_state_into,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)
from wavesr.transformer import LatentDiffusionTransformer

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
    tensors = {}
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
        tensors[name] = load_tensors(path)
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
    """A bundle's LDT and its latent scales (the diffusion space is latent x scale)."""

    model: LatentDiffusionTransformer
    hf_scale: float
    cond_scale: float


def load_ldt(bundle: Bundle) -> LoadedLDT:
    """The LDT of a model bundle, in eval mode on the CPU, and its latent scales."""
    if "ldt" not in bundle.tensors:
        raise CheckpointError("bundle has no LDT weights", bundle.root)
    ldt = LatentDiffusionTransformer(bundle.config.ldt)
    load_state_into(ldt, bundle.tensors["ldt"], bundle.root)
    return LoadedLDT(
        ldt.eval(),
        hf_scale=float(bundle.extras.get("hf_scale", 1.0)),
        cond_scale=float(bundle.extras.get("cond_scale", 1.0)),
    )
