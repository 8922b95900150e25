"""One training loop for every model: (model, objective, dataset, config) on HF accelerate.

The same code runs on CPU, one GPU, or several with ``torchrun`` / ``accelerate launch`` (DDP).
Each optimizer step ``k`` draws its batch indices and seeds torch from ``(seed, k)``, so a run
that is killed and resumed from its checkpoint continues the very same loss curve.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from latentmed.data.notices import notify
from latentmed.errors import LatentmedError
from latentmed.io import write_json
from latentmed.train.accel import amp_autocast, check_precision, compile_module
from latentmed.train.checkpoint import load_checkpoint, recover_checkpoint, save_checkpoint
from latentmed.train.config import TrainConfig
from latentmed.train.ema import EMA
from latentmed.train.objective import EvalFn, Objective
from latentmed.train.runlock import StopSignals, TrainingStopped, check_run_dir, run_lock
from latentmed.train.runlog import RunLogger

BEST_DIR, BEST_JSON, EVAL_CSV = "best", "best.json", "eval.csv"


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model, its EMA copy, the final step and the logged rows."""

    model: nn.Module
    ema_model: nn.Module
    step: int
    history: list[dict] = field(default_factory=list)
    best: dict | None = None  # {"metric", "value", "step"} of RUN/best/ when checkpoint selection ran


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP / accelerate / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def step_seed(seed: int, step: int, rank: int = 0, micro: int = 0) -> int:
    """Deterministic seed of one micro-step."""
    return (seed * 1_000_003 + step * 9_176 + rank * 131 + micro * 7) % (2**31 - 1)


class StepBatchSampler(Sampler[list[int]]):
    """Yields one batch of indices per (step, micro-batch), drawn from ``(seed, step)`` without state.

    Batches are sampled without replacement within a step; in DDP each rank takes its slice of
    the global batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, steps: int, grad_accum: int = 1,
                 rank: int = 0, world_size: int = 1):
        self.n, self.bs, self.seed = n, batch_size, seed
        self.start, self.steps, self.accum = start_step, steps, grad_accum
        self.rank, self.world = rank, world_size

    def __iter__(self):
        global_bs = self.bs * self.world
        for step in range(self.start, self.steps):
            for micro in range(self.accum):
                g = torch.Generator().manual_seed(step_seed(self.seed, step, 0, micro))
                if global_bs <= self.n:
                    idx = torch.randperm(self.n, generator=g)[:global_bs]
                else:
                    idx = torch.randint(self.n, (global_bs,), generator=g)
                yield idx[self.rank * self.bs:(self.rank + 1) * self.bs].tolist()

    def __len__(self) -> int:
        return (self.steps - self.start) * self.accum


def _iterate_forever(loader: DataLoader):
    while True:
        yield from loader


def _to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def clip_per_group(accelerator: Any, optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    """Clip the gradient norm of each optimizer parameter group on its own (one group: the usual global clip).

    With several groups (e.g. autoencoder and energy of LSD-EBM) a large gradient in one group
    does not scale down the step of the others, as one global norm would.
    """
    groups = optimizer.param_groups
    if len(groups) == 1:
        accelerator.clip_grad_norm_(groups[0]["params"], max_norm)
        return
    accelerator.unscale_gradients()  # once (fp16 loss scaling); then plain per-group clipping
    for group in groups:
        torch.nn.utils.clip_grad_norm_(group["params"], max_norm)


class _BestKeeper:
    """Checkpoint selection: keeps the EMA model with the best ``select_metric`` in ``RUN/best/``.

    Every evaluation row goes to ``RUN/eval.csv``; ``RUN/best.json`` records ``{"metric", "value",
    "step"}`` and is read back on resume, so a resumed run compares against the best so far.
    """

    def __init__(self, out_dir: Path, config: TrainConfig, resume_step: int):
        self.out_dir, self.metric, self.mode = out_dir, config.select_metric, config.select_mode
        out_dir.mkdir(parents=True, exist_ok=True)
        self.log = RunLogger(out_dir, resume_step=resume_step, tensorboard=False, filename=EVAL_CSV)
        path = out_dir / BEST_JSON
        self.best = json.loads(path.read_text()) if self.metric and path.is_file() else None
        if self.best is not None and self.best.get("metric") != self.metric:
            self.best = None  # selected by another metric before: start over

    def __call__(self, ema_model: nn.Module, step: int, values: dict[str, float]) -> None:
        self.log.log(step, values)
        if not self.metric:
            return
        if self.metric not in values:
            raise LatentmedError(f"train.select_metric={self.metric!r} is not among the evaluation's metrics "
                                 f"({', '.join(values) or 'none'}); set it to one of them.")
        value = float(values[self.metric])
        if self.best is not None and not (value < self.best["value"] if self.mode == "min"
                                          else value > self.best["value"]):
            return
        if not hasattr(ema_model, "save_pretrained"):
            raise LatentmedError(f"checkpoint selection saves the best model with save_pretrained, which "
                                 f"{type(ema_model).__name__} lacks; add it or leave train.select_metric empty.")
        tmp, final, prev = self.out_dir / f".{BEST_DIR}.tmp", self.out_dir / BEST_DIR, self.out_dir / f"{BEST_DIR}.prev"
        shutil.rmtree(tmp, ignore_errors=True)
        ema_model.save_pretrained(tmp)
        shutil.rmtree(prev, ignore_errors=True)
        if final.exists():
            final.rename(prev)
        tmp.rename(final)
        shutil.rmtree(prev, ignore_errors=True)
        self.best = {"metric": self.metric, "value": value, "step": step}
        write_json(self.out_dir / BEST_JSON, self.best)

    def close(self) -> None:
        self.log.close()


def train(model: nn.Module, objective: Objective, dataset: Dataset, config: TrainConfig, out_dir: str | Path, *,
          collate_fn: Callable | None = None, preview_fn: Callable[[nn.Module, int, Path], None] | None = None,
          eval_fn: EvalFn | None = None, parameters: list[nn.Parameter] | list[dict] | None = None,
          save_model: bool = True, desc: str = "train") -> TrainResult:
    """Train ``model`` to minimise the mean of ``objective(model, batch, step)`` (per-sample values).

    - ``objective`` (:class:`~latentmed.train.objective.Objective`) is told the 0-based step of
      every call (e.g. the two-phase DAE objective switches phase by step), calls the model only
      through ``model(...)`` (it may be DDP-wrapped) and returns ``loss[B]`` or
      ``(loss[B], {name: float})`` for extra logged values.
    - Adam(W) with linear warm-up, gradient clipping and accumulation, EMA, bf16 autocast (CPU or
      GPU, ``mixed_precision``), fp16 with loss scaling (GPU), ``torch.compile`` (``compile``).
    - Resumes from ``out_dir/checkpoint`` when present; writes ``log.csv``, TensorBoard, checkpoints
      every ``checkpoint_every`` steps and at the end, and ``out_dir/model`` (EMA weights) via
      ``save_pretrained`` when the model has it.
    - ``preview_fn(ema_model, step, out_dir)`` runs every ``preview_every`` steps (main process).
    - ``eval_fn(ema_model, step) -> {metric: float}`` runs every ``eval_every`` steps (main
      process); rows go to ``out_dir/eval.csv`` and, with ``select_metric``, the best EMA model is
      kept in ``out_dir/best/`` (``save_pretrained``) and ``out_dir/best.json`` (``TrainResult.best``).
    - ``parameters`` restricts the optimised parameters (default: all that require grad); a list of
      parameter groups (``[{"params": [...]}, ...]``) gets its gradient norm clipped per group.
    - One training per ``out_dir`` (:func:`~latentmed.train.runlock.run_lock`); SIGTERM / SIGUSR1
      write a checkpoint after the current step and end with
      :class:`~latentmed.train.runlock.TrainingStopped` (resume: call again).
    """
    from accelerate import Accelerator

    out_dir = check_run_dir(out_dir)
    if not isinstance(dataset, IterableDataset) and len(dataset) == 0:
        raise LatentmedError("training data set is empty: point --data to a folder with images.")
    cpu = not torch.cuda.is_available()
    precision = check_precision(config.mixed_precision, "cpu" if cpu else "cuda")  # resolves "auto"
    # bf16 needs no loss scaling: our own autocast, on CPU as on GPU (accelerate's state is a
    # process-wide singleton, so runs with different precisions could not share one process).
    accelerator = Accelerator(cpu=cpu, mixed_precision="fp16" if precision == "fp16" else "no",
                              gradient_accumulation_steps=config.grad_accum)
    world = accelerator.num_processes
    params = parameters if parameters is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay) if config.weight_decay \
        else torch.optim.Adam(params, lr=config.lr)
    warm = max(1, config.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: min(1.0, (k + 1) / warm))
    ema = EMA(model, config.ema_decay)
    n, global_bs = (None if isinstance(dataset, IterableDataset) else len(dataset)), config.batch_size * world
    if n is not None and global_bs > n and accelerator.is_main_process:
        notify(None, f"batch size {global_bs} is larger than the {n} training image(s): each batch draws images with "
                     f"repeats; set train.batch_size (CLI: --batch-size) to {n} or less for batches without repeats")

    with contextlib.ExitStack() as held:
        if accelerator.is_main_process:
            held.enter_context(run_lock(out_dir))
        stop = held.enter_context(StopSignals())
        return _train_locked(model, objective, dataset, config, out_dir, accelerator, precision, optimizer, scheduler,
                             ema, stop, collate_fn=collate_fn, preview_fn=preview_fn, eval_fn=eval_fn,
                             save_model=save_model, desc=desc)


def _train_locked(model, objective, dataset, config, out_dir, accelerator, precision, optimizer, scheduler, ema,
                  stop: StopSignals, *, collate_fn, preview_fn, eval_fn, save_model, desc) -> TrainResult:
    """The body of :func:`train`, run while this process holds the run folder and catches stop signals."""
    from tqdm.auto import tqdm

    rank, world = accelerator.process_index, accelerator.num_processes
    is_main = accelerator.is_main_process
    start = 0
    if is_main:  # undo what a kill during a checkpoint write left behind
        for line in recover_checkpoint(out_dir):
            accelerator.print(f"Checkpoint: {line}.")
    accelerator.wait_for_everyone()
    ckpt = load_checkpoint(out_dir)
    if ckpt is not None:
        model_state, ema_state, state = ckpt
        from latentmed.pretrained import load_state_checked

        load_state_checked(model, model_state, str(out_dir / "checkpoint"))
        load_state_checked(ema.model, ema_state, str(out_dir / "checkpoint"))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ema.num_updates = int(state["ema_updates"])
        start = int(state["step"])
        if is_main:
            accelerator.print(f"Resuming {out_dir} from step {start}.")

    # The LR scheduler is not prepared: accelerate would step it once per process.
    model, optimizer = accelerator.prepare(model, optimizer)
    if config.compile:
        model = compile_module(model, accelerator.device.type)
    autocast = amp_autocast(accelerator.device.type, precision)
    ema.model.to(accelerator.device)

    if isinstance(dataset, IterableDataset):
        loader = DataLoader(dataset, batch_size=config.batch_size, collate_fn=collate_fn, num_workers=config.num_workers)
        batches = _iterate_forever(loader)
    else:
        sampler = StepBatchSampler(len(dataset), config.batch_size, config.seed, start, config.steps,
                                   config.grad_accum, rank, world)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=config.num_workers)
        batches = iter(loader)

    logger = RunLogger(out_dir, resume_step=start) if is_main else None
    bar = tqdm(total=config.steps, initial=start, desc=desc, disable=not (is_main and config.progress),
               dynamic_ncols=True)
    step, running, extras = start, [], {}
    keeper = _BestKeeper(out_dir, config, start) if is_main and eval_fn is not None and config.eval_every else None

    def _checkpoint(k: int) -> None:
        accelerator.wait_for_everyone()
        if is_main:
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": k,
                     "ema_updates": ema.num_updates}
            save_checkpoint(out_dir, unwrap(model).state_dict(), ema.state_dict(), state)

    try:
        model.train()
        while step < config.steps:
            for micro in range(config.grad_accum):
                batch = _to_device(next(batches), accelerator.device)
                torch.manual_seed(step_seed(config.seed, step, rank, micro))
                with accelerator.accumulate(model), accelerator.autocast(), autocast:
                    out = objective(model, batch, step)
                    per_sample, logs = out if isinstance(out, tuple) else (out, {})
                    loss = per_sample.float().mean()
                    if not torch.isfinite(loss):
                        raise LatentmedError(f"loss became {loss.item()} at step {step}: lower train.lr, check the "
                                             "data for non-finite values, or enable train.grad_clip.")
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.grad_clip > 0:
                        clip_per_group(accelerator, optimizer, config.grad_clip)
                    optimizer.step()
                    if accelerator.sync_gradients:
                        scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                running.append(loss.detach())
                for k, v in logs.items():
                    extras.setdefault(k, []).append(float(v))
            ema.update(unwrap(model))
            step += 1
            bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                mean_loss = accelerator.reduce(torch.stack(running).mean(), reduction="mean").item()
                values = {"loss": mean_loss, "lr": scheduler.get_last_lr()[0],
                          **{k: float(np.mean(v)) for k, v in extras.items()}}
                if logger is not None:
                    logger.log(step, values)
                bar.set_postfix(loss=f"{mean_loss:.4f}")
                running, extras = [], {}
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.steps:
                _checkpoint(step)
            if preview_fn is not None and config.preview_every and step % config.preview_every == 0 and is_main:
                preview_fn(ema.model, step, out_dir)
            if keeper is not None and step % config.eval_every == 0:
                keeper(ema.model, step, {k: float(v) for k, v in eval_fn(ema.model, step).items()})
                ema.model.eval()  # eval_fn may have switched modes; the EMA copy stays in eval mode
            signum = _stop_requested(stop, accelerator, world)
            if signum and step < config.steps:
                _checkpoint(step)
                raise TrainingStopped(f"training stopped by {signal.Signals(signum).name} after step {step} of "
                                      f"{config.steps}; checkpoint written to {out_dir / 'checkpoint'}. Run the same "
                                      "command to resume.", signum)
        _checkpoint(step)
    finally:
        bar.close()
        if logger is not None:
            logger.close()
        if keeper is not None:
            keeper.close()

    final = unwrap(model)
    if is_main and save_model and hasattr(final, "save_pretrained"):
        final.save_pretrained(out_dir / "model", state_dict=ema.state_dict())
    accelerator.wait_for_everyone()
    history = logger.read() if logger is not None else []
    return TrainResult(model=final, ema_model=ema.model, step=step, history=history,
                       best=keeper.best if keeper is not None else None)


def _stop_requested(stop: StopSignals, accelerator: Any, world: int) -> int:
    """The stop signal received by any process (0: none); in DDP every rank learns it at the same step."""
    if world == 1:
        return int(stop.received or 0)
    return int(accelerator.gather(torch.tensor([stop.received or 0], device=accelerator.device)).max().item())


__all__ = ["StepBatchSampler", "TrainResult", "clip_per_group", "step_seed", "train", "unwrap"]
