"""CLI sub-commands other than `train`; each module exposes ``register(subparsers)``.
Part of cli (the top layer): may import everything below.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

MAX_SEED = 2**32


def registered() -> list[Callable]:
    registers = []
    for name in ("sr", "evaluate", "benchmark", "ablate", "demo", "info", "export"):
        try:
            module = __import__(f"wavesr.cli.commands.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"wavesr.cli.commands.{name}":
                raise
            continue
        registers.append(module.register)
    return registers


def add_config_args(
    p: argparse.ArgumentParser,
    set_help: str = "override a config value, e.g. --set ldt_training.train.batch_size=16",
) -> None:
    """--config (a preset or a YAML file) and repeatable --set KEY=VALUE overrides."""
    p.add_argument("--config", default="cpu", help="preset name (cpu, paper, tiny) or YAML file")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=set_help
    )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def unit_fraction(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def seed_int(text: str) -> int:
    """argparse type: a random seed in [0, 2**32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < MAX_SEED:
        raise argparse.ArgumentTypeError(f"must lie in [0, 2**32), got {value}")
    return value


def add_self_ensemble(p: argparse.ArgumentParser, applies_to: str) -> None:
    """``--self-ensemble N``: the through-plane model averaged over N flips of each reformat."""
    p.add_argument(
        "--self-ensemble",
        type=int,
        default=None,
        choices=[1, 2, 4],
        metavar="N",
        help=f"{applies_to}: average the model over N flips of each reformat (1, 2 or 4; "
        "test-time augmentation as in EDSR+; N times the time; default 1: off)",
    )


def add_max_voxels(p: argparse.ArgumentParser) -> None:
    """``--max-voxels N``: the most voxels an input's header may promise (default 2**28)."""
    p.add_argument(
        "--max-voxels",
        type=positive_int,
        default=None,
        metavar="N",
        help="read inputs whose header promises up to N voxels (default 2**28 = 268,435,456; "
        "larger ones are refused before their data are read)",
    )


def add_device(p: argparse.ArgumentParser, choices: list[str] | None = None) -> None:
    """``--device``, default "auto": a CUDA GPU when torch sees one, else the CPU."""
    p.add_argument(
        "--device",
        default="auto",
        choices=choices,
        help="auto: cuda when torch sees a GPU, else cpu (default auto)",
    )


def add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads N``: torch's CPU threads (torch.set_num_threads)."""
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="CPU threads for torch (default: torch's own choice, usually the core count)",
    )
