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
from wavesr.training.checkpoint import load_tensors, read_json, save_tensors, write_json

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


def load_bundle(root: str | Path, *, verify: bool = True) -> Bundle:
    root = Path(root)
    if root.is_file() and root.name == MANIFEST:
        root = root.parent
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"not a WaveSR model folder (no {MANIFEST})", root)
    manifest = read_json(manifest_path)
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"unknown bundle format {manifest.get('format')!r}", manifest_path)
    try:
        config = config_from_dict(manifest["config"])
    except ConfigError as exc:
        raise CheckpointError(f"invalid config in bundle: {exc}", manifest_path) from exc
    tensors = {}
    for name, entry in manifest.get("files", {}).items():
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
        step=int(manifest.get("step", 0)),
    )
