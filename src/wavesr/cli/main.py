"""The `wavesr` command line: train, sr, evaluate, benchmark, demo, info.

User errors (bad input, bad config, unsafe checkpoint) print one line on stderr and exit with 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wavesr.cli.commands import (
    add_config_args,
    add_max_voxels,
    positive_float,
    positive_int,
    unit_fraction,
)
from wavesr.errors import OutputError, WaveSRError

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), like every other wavesr error."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_train(args: argparse.Namespace) -> int:
    from wavesr.training.engine import shutdown_distributed

    try:
        return _train(args)
    finally:
        shutdown_distributed()  # under torchrun: before exit, or gloo may abort the process


def _train(args: argparse.Namespace) -> int:
    from wavesr.bundle.weights_check import check_training_start
    from wavesr.config import load_config
    from wavesr.training import run

    overrides = list(args.overrides)
    config = load_config(args.config, overrides)
    if args.data:
        config.data.paths = [str(p) for p in args.data]
    if args.max_steps is not None:
        stages = {
            "autoencoder": [config.autoencoder_training],
            "ldt": [config.ldt_training],
            "wavesr": [
                config.autoencoder_training,
                config.ldt_training,
                config.decoder_training,
            ],
        }
        for stage in stages.get(args.model, [config.baseline_training]):
            stage.train.max_steps = args.max_steps
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OutputError("the run folder (--out) is an existing file", out)
    check_training_start(args.model, config, out, resume=args.resume)
    common = dict(max_minutes=args.max_minutes, resume=args.resume, progress=not args.quiet)
    if args.model == "autoencoder":
        result = run.train_autoencoder(
            config,
            out,
            init_from=args.init_from,
            freeze_encoder=args.freeze_encoder,
            robust_to=args.robust_to,
            robust_fraction=args.robust_fraction,
            robust_latents=args.robust_latents,
            **common,
        )
    elif args.model == "wavesr":
        result = run.train_wavesr(
            config, out, init_from=args.init_from, freeze_encoder=args.freeze_encoder, **common
        )
    elif args.model == "ldt":
        if not args.autoencoder:
            raise WaveSRError("wavesr train ldt needs --autoencoder RUN_AE (a stage-1 run folder)")
        result = run.train_ldt(
            config, Path(args.autoencoder), out, init_from=args.init_from, **common
        )
    else:
        from wavesr.baselines.train import train_baseline

        result = train_baseline(args.model, config, out, **common)
    print(
        f"{args.model}: {result.status} at step {result.step}, last loss {result.last_loss:.5g}; "
        f"model in {result.run_dir}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wavesr", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train",
        help="train a model: wavesr (both stages, then the bundle), or one stage (autoencoder, "
        "ldt), or a baseline (edsr, pixel-diffusion)",
    )
    p.add_argument("model", choices=["wavesr", "autoencoder", "ldt", "edsr", "pixel-diffusion"])
    add_config_args(p)
    p.add_argument("--data", nargs="+", type=Path, help="training data folders / files")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--autoencoder", type=Path, help="stage-1 run folder (for `ldt`)")
    p.add_argument(
        "--max-minutes", type=positive_float, default=None, help="stop cleanly after N minutes"
    )
    p.add_argument(
        "--max-steps", type=positive_int, default=None, help="override the stage's max_steps"
    )
    p.add_argument(
        "--init-from",
        type=Path,
        help="autoencoder / ldt / wavesr: start from this run's matching weights (fine-tuning); "
        "an ldt run also keeps its latent scales",
    )
    p.add_argument(
        "--freeze-encoder",
        action="store_true",
        help="autoencoder / wavesr: keep the --init-from encoder fixed (an LDT trained on it "
        "stays valid)",
    )
    p.add_argument(
        "--robust-to",
        type=Path,
        help="autoencoder: fine-tune the decoder on latents predicted by this model's LDT "
        "(with --init-from and --freeze-encoder)",
    )
    p.add_argument(
        "--robust-fraction",
        type=unit_fraction,
        default=0.5,
        help="with --robust-to: share of each batch that gets LDT-predicted latents (default 0.5)",
    )
    p.add_argument(
        "--robust-latents",
        choices=("one-step", "sampled"),
        default="one-step",
        help="with --robust-to: the LDT's one-step x0 prediction from a random timestep "
        "(default) or the DDIM sample of inference (diffusion.sample_steps, .temperature)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_max_voxels(p)
    p.set_defaults(func=_cmd_train)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands():
    """Sub-commands that live in their own modules (kept out of this file's imports)."""
    from wavesr.cli.commands import registered

    return registered()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from wavesr.data.types import voxel_limit

    try:
        with voxel_limit(getattr(args, "max_voxels", None)):
            return int(args.func(args) or 0)
    except WaveSRError as exc:
        if args.debug:
            raise
        print(f"wavesr: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        # The environment refused (permission denied, disk full, ...): not a wavesr bug.
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"wavesr: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("wavesr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
