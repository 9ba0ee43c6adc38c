"""CLI sub-commands other than `train`; each module exposes ``register(subparsers)``."""

from __future__ import annotations

from collections.abc import Callable


def registered() -> list[Callable]:
    registers = []
    for name in ("sr", "evaluate", "benchmark", "demo", "info"):
        try:
            module = __import__(f"wavesr.commands.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"wavesr.commands.{name}":
                raise
            continue
        registers.append(module.register)
    return registers
