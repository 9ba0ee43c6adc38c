"""The training loop shared by every model: accelerate, checkpoints, resume, logging, faults.

A *task* supplies the model and the loss of one step; the engine does the rest:
- HF accelerate: the same code runs on CPU, one GPU, or several processes (DDP, torchrun or
  ``accelerate launch``), with mixed precision as a flag;
- a learning rate of linear warm-up then cosine decay, computed from the step (no scheduler state);
- batches that depend only on (seed, step, rank), so ``resume`` continues bit-for-bit;
- checkpoints (safetensors + JSON, atomic, last N kept), ``max_minutes``, SIGINT / SIGTERM saving
  a checkpoint before exiting, and a NaN / inf loss stopping with the last good checkpoint kept;
- tqdm progress with loss and throughput, CSV metrics and TensorBoard scalars.
"""

from __future__ import annotations

import copy
import csv
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from accelerate import Accelerator
from torch import nn
from tqdm.auto import tqdm

from wavesr.bundle.checkpoint_io import checkpoint_dirs, load_state_into
from wavesr.config import StageConfig
from wavesr.errors import WaveSRError
from wavesr.training.checkpoint import load_checkpoint, save_checkpoint


class TrainingError(WaveSRError):
    """Training stopped because of a fault (NaN loss and the like)."""


class Task(Protocol):
    name: str

    def build_model(self) -> nn.Module: ...

    def compute_loss(self, model: nn.Module, step: int, rank: int) -> dict[str, torch.Tensor]: ...

    def export(self, model: nn.Module, run_dir: Path, step: int) -> None: ...

    # Optional: ``extra_state() -> dict[str, Tensor]`` and ``load_extra_state(tensors)``, state
    # the task keeps itself (an auxiliary network and its optimizer), saved in the checkpoints.


def shutdown_distributed() -> None:
    """Destroy the process group (after a barrier) before the interpreter exits.

    Left to interpreter finalisation, gloo's worker threads may still hold work objects with
    Python references and abort the process (SIGABRT; pytorch/pytorch PR 179291 describes it):
    the cause of the intermittent failure of tests/training/test_ddp.py.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def validate_task(task: Task, model: nn.Module, ema: EMA | None) -> dict[str, float]:
    """``task.validate`` (optional) on the weights that would be exported (EMA when on)."""
    if not hasattr(task, "validate"):
        return {}
    if ema is not None:
        model = copy.deepcopy(model)
        model.load_state_dict(ema.shadow)
    was_training = model.training
    model.eval()
    try:
        return task.validate(model)
    finally:
        model.train(was_training)


@dataclass
class TrainResult:
    step: int
    status: str  # "finished", "time-limit", "interrupted"
    last_loss: float
    run_dir: Path


def learning_rate(step: int, stage: StageConfig) -> float:
    """Linear warm-up to ``lr`` then cosine decay to ``min_lr`` at ``max_steps``."""
    opt, total = stage.optim, max(1, stage.train.max_steps)
    if opt.warmup_steps and step <= opt.warmup_steps:
        return opt.lr * step / opt.warmup_steps
    if opt.schedule == "constant":
        return opt.lr
    progress = min(1.0, (step - opt.warmup_steps) / max(1, total - opt.warmup_steps))
    return opt.min_lr + 0.5 * (opt.lr - opt.min_lr) * (1 + math.cos(math.pi * progress))


def make_optimizer(params, stage: StageConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if stage.optim.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=stage.optim.lr, weight_decay=stage.optim.weight_decay)


def any_rank(accelerator: Accelerator, *flags: bool) -> list[bool]:
    """Each flag, true if it is true on any process (so that all ranks stop together)."""
    if accelerator.num_processes == 1:
        return [bool(f) for f in flags]
    votes = torch.tensor([float(f) for f in flags], device=accelerator.device)
    return [v > 0 for v in accelerator.reduce(votes, reduction="sum").tolist()]


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step) * 64 + rank + 1


class _StopFlag:
    """Turns SIGINT / SIGTERM into a request to checkpoint and stop after the current step."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum, _frame) -> None:
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class MetricsLog:
    """CSV (always) and TensorBoard (when available) scalars, main process only."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.csv"
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                self.writer = None

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled or not values:
            return
        header = self._header()
        if header is None or not set(values) <= set(header):
            self._widen((header or ["step"]) + [k for k in values if k not in (header or [])])
            header = self._header()
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=header).writerow({"step": step, **values})
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def _header(self) -> list[str] | None:
        if not self.path.exists():
            return None
        with self.path.open(newline="") as handle:
            return next(csv.reader(handle), None)

    def _widen(self, header: list[str]) -> None:
        """Rewrite the CSV with more columns (validation rows log other keys than loss rows)."""
        rows = []
        if self.path.exists():
            with self.path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class EMA:
    """Exponential moving average of a module's floating-point parameters and buffers.

    The decay warms up as min(decay, (1 + step) / (10 + step)) (diffusers' EMAModel): with a
    fixed 0.999 a 600-step run would export weights that are still half the initialisation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        decay = self.decay if step is None else min(self.decay, (1 + step) / (10 + step))
        for key, value in model.state_dict().items():
            shadow = self.shadow[key]
            if shadow.device != value.device:  # built before the model moved to the accelerator
                shadow = self.shadow[key] = shadow.to(value.device)
            if value.dtype.is_floating_point:
                shadow.lerp_(value.detach(), 1.0 - decay)
            else:
                shadow.copy_(value)


def train(
    task: Task,
    stage: StageConfig,
    run_dir: Path,
    *,
    config_dict: dict,
    max_minutes: float | None = None,
    resume: bool = False,
    progress: bool = True,
    accelerator: Accelerator | None = None,
) -> TrainResult:
    """Run (or resume) one training stage in ``run_dir``."""
    run_dir = Path(run_dir)
    accelerator = accelerator or Accelerator(
        mixed_precision=stage.train.mixed_precision, cpu=not torch.cuda.is_available()
    )
    main = accelerator.is_main_process
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    tcfg = stage.train
    torch.manual_seed(tcfg.seed)
    model = task.build_model()
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], stage)
    ema = EMA(model, tcfg.ema_decay) if tcfg.ema_decay > 0 else None
    start_step, elapsed_before = 0, 0.0
    existing = checkpoint_dirs(run_dir)
    if resume and existing:
        ckpt = load_checkpoint(existing[-1])
        load_state_into(model, ckpt["model"], existing[-1])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ema is not None and "ema" in ckpt:
            ema.shadow = ckpt["ema"]
        if "extra" in ckpt and hasattr(task, "load_extra_state"):
            task.load_extra_state(ckpt["extra"])
        start_step, elapsed_before = ckpt["state"]["step"], ckpt["state"].get("elapsed_s", 0.0)
    elif existing and not resume:
        raise WaveSRError(f"{run_dir} already holds checkpoints; pass --resume or a new --out")
    model, optimizer = accelerator.prepare(model, optimizer)
    rank = accelerator.process_index
    log = MetricsLog(run_dir, main)
    started = time.monotonic()
    status, last_loss, step = "finished", float("nan"), start_step
    saved = {"step": start_step if start_step else None}

    def checkpoint(at_step: int) -> None:
        saved["step"] = at_step
        if main:
            save_checkpoint(
                run_dir,
                at_step,
                accelerator.unwrap_model(model).state_dict(),
                optimizer.state_dict(),
                {
                    "elapsed_s": elapsed_before + time.monotonic() - started,
                    "config": config_dict,
                    "task": task.name,
                },
                ema.shadow if ema else None,
                keep_last=tcfg.keep_last,
                extra_state=task.extra_state() if hasattr(task, "extra_state") else None,
            )
        accelerator.wait_for_everyone()

    bar = tqdm(
        total=tcfg.max_steps,
        initial=start_step,
        desc=f"train {task.name}",
        disable=not (progress and main),
        dynamic_ncols=True,
    )
    window_start, window_steps = time.monotonic(), 0
    with _StopFlag() as stop:
        model.train()
        for step in range(start_step + 1, tcfg.max_steps + 1):
            lr = learning_rate(step, stage)
            for group in optimizer.param_groups:
                group["lr"] = lr
            torch.manual_seed(step_seed(tcfg.seed, step, rank))
            with accelerator.autocast():
                losses = task.compute_loss(model, step, rank)
            loss = losses["loss"]
            finite = bool(torch.isfinite(loss.detach()).all())
            if any_rank(accelerator, not finite)[0]:
                bar.close()
                kept = checkpoint_dirs(run_dir)
                where = f"; last good checkpoint kept at {kept[-1]}" if kept else ""
                value = "non-finite on another process" if finite else float(loss.detach())
                raise TrainingError(f"loss became {value} at step {step}{where}")
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            if stage.optim.grad_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), stage.optim.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(accelerator.unwrap_model(model), step)
            last_loss = float(loss.detach())
            window_steps += 1
            if step % tcfg.log_every == 0 or step == tcfg.max_steps:
                seconds = (time.monotonic() - window_start) / max(1, window_steps)
                values = {k: float(v.detach().mean()) for k, v in losses.items()}
                values.update(
                    lr=lr,
                    seconds_per_step=seconds,
                    samples_per_s=tcfg.batch_size * accelerator.num_processes / seconds,
                )
                log.log(step, values)
                bar.set_postfix(loss=f"{last_loss:.4g}", it_s=f"{1 / seconds:.2f}")
                window_start, window_steps = time.monotonic(), 0
            bar.update(1)
            minutes = (time.monotonic() - started) / 60
            time_up = max_minutes is not None and minutes >= max_minutes
            interrupted, time_up = any_rank(accelerator, stop.requested is not None, time_up)
            if interrupted or time_up:
                status = "interrupted" if interrupted else "time-limit"
                break
            if step % tcfg.checkpoint_every == 0:
                checkpoint(step)
            if main and tcfg.validate_every and step % tcfg.validate_every == 0:
                validated = validate_task(task, accelerator.unwrap_model(model), ema)
                log.log(step, validated)
    bar.close()
    if main and tcfg.validate_every and step % tcfg.validate_every and step > start_step:
        log.log(step, validate_task(task, accelerator.unwrap_model(model), ema))
    if saved["step"] != step:  # decided the same way on every rank (no file-system look-up)
        checkpoint(step)
    if main:
        export_model = accelerator.unwrap_model(model)
        if ema is not None:
            export_model.load_state_dict(ema.shadow)
        task.export(export_model, run_dir, step)
    log.close()
    accelerator.wait_for_everyone()
    return TrainResult(step=step, status=status, last_loss=last_loss, run_dir=run_dir)
